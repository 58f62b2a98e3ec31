"""What every ``tlkit`` subcommand shares: parsers with examples, errors in flag terms, logs.

Conventions
-----------
* ``--help`` on every command ends with an example.
* Exit status 0: done; 2: usage error (bad or missing arguments); 1: failure,
  with a one-line reason on stderr (the traceback only with ``--debug``).
* Machine-readable output goes to stdout, progress and logs to stderr.
* Reasons name command-line flags (``--on-conflict drop``), never the Python
  arguments they map to (``on_conflict='drop'``). An argument error names its
  argument (``.argument`` of :class:`~tlkit.errors.InvalidArgumentError` and
  :class:`~tlkit.errors.ArgumentTypeError`); :func:`flag_names` shows it as
  the command's flag.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from tlkit.errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "UsageError",
    "add_command",
    "add_image_size",
    "as_flags",
    "check_backbone",
    "flag_names",
    "log",
    "one_line",
    "quiet_native_stderr",
]


class UsageError(InvalidArgumentError):
    """A command-line argument is wrong in a way argparse cannot see: exit status 2.

    A :class:`~tlkit.errors.TlkitError` (and a ``ValueError``) like every error
    caused by user input.
    """


def add_image_size(p: argparse.ArgumentParser, help: str) -> None:
    """``--image-size N``."""
    p.add_argument("--image-size", type=int, default=None, help=help)


def add_command(
    sub: Any, name: str, *, help: str, description: str, examples: list[str]
) -> argparse.ArgumentParser:
    """A subcommand parser whose ``--help`` ends with worked examples and which takes ``--debug``."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    p = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback and TensorFlow's own logs on failure",
    )
    p.set_defaults(_parser=p)
    return p


def log(message: str) -> None:
    """Progress for people: to stderr, never mixed with stdout's results."""
    print(message, file=sys.stderr, flush=True)


_PY_ARG = re.compile(
    r"\b([a-z][a-z0-9_]*)="
    r"(?:('([^']*)'|\"([^\"]*)\"|True|False|None|[\w\-]+(?:\.[\w\-]+)*)|(?![\w'\"\[({]))"
)


def as_flags(
    message: str,
    parser: argparse.ArgumentParser,
    values: dict[tuple[str, str], str] | None = None,
) -> str:
    """Rewrite Python arguments in ``message`` as this command's flags.

    Every ``name=value`` becomes ``values[(name, value)]`` when a command maps
    that argument value to a flag of its own (its ``FLAG_VALUES``:
    ``("on_mismatch", "skip")`` is ``--skip-missing``); else, when ``name`` is
    the destination of a flag of ``parser``, ``--flag value`` (``--flag`` alone
    for ``=True``, and for a bare ``name=`` that names the argument only).
    Other words are left as they are: the rewrite reads arguments, never phrases.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--on-conflict")
    >>> _ = p.add_argument("--allow-small-classes", action="store_true")
    >>> _ = p.add_argument("--val")
    >>> as_flags("pass on_conflict='drop' or allow_small_classes=True", p)
    'pass --on-conflict drop or --allow-small-classes'
    >>> as_flags("lower the val= share, or set image_size=64.", p)
    'lower the --val share, or set image_size=64.'
    >>> as_flags("or pass on_mismatch='skip'", p, {("on_mismatch", "skip"): "--skip-missing"})
    'or pass --skip-missing'
    """
    values = values or {}
    dests = _flags_by_dest(parser)

    def repl(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(3) if m.group(3) is not None else m.group(4)
        if value is None:
            value = m.group(2)
        if value is not None and (name, value) in values:
            return values[(name, value)]
        flag = dests.get(name)
        if flag is None:
            return m.group(0)
        return flag if value in (None, "True") else f"{flag} {value}"

    return _PY_ARG.sub(repl, message)


def flag_names(
    message: str, exc: BaseException, parser: argparse.ArgumentParser, names: dict[str, str]
) -> str:
    """Show the argument an argument error names as this command's flag.

    When ``exc`` is an :class:`~tlkit.errors.InvalidArgumentError` or
    :class:`~tlkit.errors.ArgumentTypeError` whose ``argument`` the command
    takes as a flag (``names`` first: a command's ``FLAG_NAMES``, for library
    arguments named unlike their flag; then the destinations of ``parser``'s
    flags), the argument's name becomes the flag in ``message``. Any other
    message is returned as it is.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--batch-size", type=int)
    >>> err = InvalidArgumentError("batch_size must be an int >= 1, got 0", argument="batch_size")
    >>> flag_names(str(err), err, p, {})
    '--batch-size must be an int >= 1, got 0'
    >>> err = InvalidArgumentError("alpha must be > 0", argument="alpha")
    >>> flag_names(str(err), err, p, {})
    'alpha must be > 0'
    """
    argument = getattr(exc, "argument", None)
    if not isinstance(exc, (InvalidArgumentError, ArgumentTypeError)) or not argument:
        return message
    flag = names.get(argument) or _flags_by_dest(parser).get(argument)
    if flag is None:
        return message
    # the first mention: check_* messages start with the name; later words may be advice
    return re.sub(rf"(?<![\w-]){re.escape(argument)}\b(?!=)", flag, message, count=1)


def check_backbone(name: str) -> None:
    """Refuse an unknown ``--backbone`` before anything loads, pointing at ``tlkit backbones``.

    The library's own message points Python users at ``list_backbones()``;
    the command line says it in its own words (a :class:`~tlkit.errors.BackboneError`).
    """
    from tlkit.backbones import list_backbones, unknown_backbone_message
    from tlkit.errors import BackboneError

    if name not in list_backbones():
        raise BackboneError(unknown_backbone_message(name, listing="tlkit backbones"))


def _flags_by_dest(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {
        a.dest: max(a.option_strings, key=len)
        for a in parser._actions  # argparse keeps them here; there is no public accessor
        if a.option_strings
    }


def one_line(message: str, keep: int = 3) -> str:
    r"""Collapse a multi-line message to one line, listing at most ``keep`` of its middle lines.

    Examples
    --------
    >>> one_line("2 files missing:\n  a.png\n  b.png\nRestore them.")
    '2 files missing: a.png; b.png; Restore them.'
    >>> one_line("5 missing:\n a\n b\n c\n d\n e\nRestore them.", keep=2)
    '5 missing: a; b; ... (3 more); Restore them.'
    """
    lines = [part.strip() for part in str(message).splitlines() if part.strip()]
    if len(lines) <= 2:
        return " ".join(lines)
    first, middle, last = lines[0], lines[1:-1], lines[-1]
    if len(middle) > keep:
        middle = [*middle[:keep], f"... ({len(middle) - keep} more)"]
    return f"{first} {'; '.join([*middle, last])}"


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Send what C++ libraries write to file descriptor 2 to /dev/null; Python's stderr still works.

    TensorFlow, the TFLite converter and ONNX Runtime log from C++ straight to
    descriptor 2, which ``TF_CPP_MIN_LOG_LEVEL`` no longer silences. Python's
    ``sys.stderr`` is pointed at a copy of the real stderr meanwhile, so
    progress, warnings and error messages still show.
    """
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded): nothing to do
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    old_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        new = sys.stderr
        sys.stderr = old_stderr
        new.close()
