"""Error translation for the input pipeline: missing files, and decode failures inside tf.data.

A failure inside a ``tf.data`` graph can only surface as a TensorFlow error; the
pipeline's decode stage puts the file path in its message
(:func:`tlkit.data._decode.decode_error_message`), and :func:`decode_errors`
turns such an error back into :class:`~tlkit.errors.ImageDecodeError`.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
from collections.abc import Iterator

from tlkit.errors import ImageDecodeError

__all__ = ["as_decode_error", "check_exists", "decode_errors"]

# TensorFlow prints the message C-escaped (quote as backslash-quote, non-ASCII bytes as octal).
_ERROR_RE = re.compile(
    r"ImageDecodeError: (cannot (?:read|decode) image file \\?'(.*?)\\?': "
    r"(?:it is|the file)[^\]\n]*)"
)


def check_exists(paths: list[str]) -> None:
    """Raise :class:`~tlkit.errors.ImageDecodeError` naming the files of ``paths`` that are missing.

    Examples
    --------
    >>> check_exists([])
    >>> check_exists(["/no/such/file.png"])
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: 1 image file(s) of the split are missing: '/no/such/file.png'. Restore them, or make a new split.
    """
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        err = ImageDecodeError(
            f"{len(missing)} image file(s) of the split are missing: {shown}{more}. "
            "Restore them, or make a new split."
        )
        err.path = missing[0]  # type: ignore[attr-defined]
        raise err


@contextlib.contextmanager
def decode_errors() -> Iterator[None]:
    """Turn the pipeline's decode failures into :class:`~tlkit.errors.ImageDecodeError`.

    Inside a TensorFlow graph an error can only be a TensorFlow error; the
    pipeline's carries the file path in its message. Within this context, such
    an error is re-raised as ``ImageDecodeError`` with the path in ``.path``.

    Examples
    --------
    >>> with decode_errors():
    ...     raise RuntimeError("ImageDecodeError: cannot read image file 'a.png': it is missing")
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: cannot read image file 'a.png': it is missing
    """
    try:
        yield
    except Exception as exc:
        converted = as_decode_error(exc)
        if converted is None:
            raise
        raise converted from exc


def as_decode_error(exc: BaseException) -> ImageDecodeError | None:
    """The :class:`~tlkit.errors.ImageDecodeError` a TensorFlow error stands for, if any."""
    match = _ERROR_RE.search(str(exc))
    if match is None:
        return None
    path = _unescape(match.group(2))
    err = ImageDecodeError(_unescape(match.group(1).strip()))
    err.path = path  # type: ignore[attr-defined]
    return err


def _unescape(text: str) -> str:
    """Undo TensorFlow's C escaping of a message fragment."""
    try:
        raw = codecs.escape_decode(text.encode("utf-8"))[0]
    except ValueError:
        return text
    return raw.decode("utf-8", errors="replace")
