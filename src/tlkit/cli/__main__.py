"""``python -m tlkit.cli``: the same as the ``tlkit`` command."""

import sys

from tlkit.cli import main

sys.exit(main())
