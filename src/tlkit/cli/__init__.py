"""The ``tlkit`` command line.

Each subcommand lives in its own module ``tlkit.cli._<name>`` with
``add_parser(subparsers)``, which builds the parser (with
:func:`tlkit.cli._common.add_command`, so ``--help`` has an example and
``--debug`` exists) and sets ``run(args) -> int`` as its default. Register a
command by adding its name to ``_COMMANDS``, one line per command (a ``-`` in
the name is a ``_`` in the module name). A module
may define ``FLAG_NAMES`` (library argument -> flag, for an argument whose
flag is not named after it; an argument error's ``.argument`` is shown as its
flag, see :func:`tlkit.cli._common.flag_names`) and ``FLAG_VALUES``
(``(argument, value)`` -> flag, for an argument value that is a flag of its
own: ``("on_mismatch", "skip")`` is ``--skip-missing``), which
:func:`tlkit.cli._common.as_flags` applies to the ``name=value`` advice of
library messages. Advice no flag can follow (a Python function to call) is the
command's own concern: it checks the condition before calling the library, or
catches the error and says it in its own words.

Exit status: 0 done, 2 usage error, 1 failure with a one-line reason on
stderr (traceback with ``--debug``). Results go to stdout, progress to stderr.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
tlkit ...
0
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

# One line per command, in --help order: tlkit.cli._<name> defines it.
_COMMANDS = (
    "split",
    "audit",
    "backbones",
    "train",
    "predict",
    "compare",
    "export",
    "cv",
    "learning-curve",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"tlkit.cli._{name.replace('-', '_')}") for name in _COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tlkit`` command."""
    from tlkit._version import __version__

    parser = argparse.ArgumentParser(
        prog="tlkit",
        description="Transfer learning, done honestly. 'tlkit COMMAND --help' shows examples.",
        epilog="exit status: 0 done, 1 failed (one-line reason on stderr), 2 usage error",
    )
    parser.add_argument("--version", action="version", version=f"tlkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _modules():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tlkit`` command; returns the exit status."""
    from tlkit.cli._common import UsageError, as_flags, flag_names, one_line, quiet_native_stderr

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False))
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sub = getattr(args, "_parser", parser)
    module = sys.modules.get(args.run.__module__)
    values = getattr(module, "FLAG_VALUES", {})
    names = getattr(module, "FLAG_NAMES", {})
    # C++ logs of TensorFlow and friends only with --debug (and never under a capturing test).
    quiet = not debug and sys.stderr is sys.__stderr__
    try:
        with quiet_native_stderr(quiet):
            return int(args.run(args))
    except KeyboardInterrupt:
        print(f"tlkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"tlkit {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        print(f"usage: see 'tlkit {args.command} --help'", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            traceback.print_exc()
        reason = _reason(exc)
        reason = one_line(as_flags(flag_names(reason, exc, sub, names), sub, values))
        hint = "" if debug else " (--debug shows the traceback)"
        if _is_user_error(exc):
            hint = ""
        print(f"tlkit {args.command}: error: {reason}{hint}", file=sys.stderr)
        return 1


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    if not text:
        return type(exc).__name__
    if _is_user_error(exc):
        return text
    return f"{type(exc).__name__}: {text}"


def _is_user_error(exc: BaseException) -> bool:
    from tlkit.errors import TlkitError

    return isinstance(exc, (TlkitError, FileNotFoundError, PermissionError, IsADirectoryError))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
