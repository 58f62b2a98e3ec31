"""The ``tlkit`` command line.

Each subcommand lives in its own module with ``add_parser(subparsers)``; the
module registers a ``run(args) -> int`` function as the parser's default.

Examples
--------
>>> main(["--version"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tlkit.cli import _audit, _backbones, _split

_COMMANDS = [_split, _audit, _backbones]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tlkit`` command."""
    from tlkit import __version__

    parser = argparse.ArgumentParser(prog="tlkit", description="Transfer learning, done honestly.")
    parser.add_argument("--version", action="version", version=f"tlkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tlkit`` command; returns the exit status."""
    from tlkit.errors import TlkitError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except (TlkitError, ValueError, TypeError, OSError) as exc:
        print(f"tlkit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
