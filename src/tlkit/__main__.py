"""``python -m tlkit``: the same as the ``tlkit`` command."""

import sys

from tlkit.cli import main

sys.exit(main())
