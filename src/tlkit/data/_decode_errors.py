"""Error translation for the input pipeline: missing files, and decode failures inside tf.data.

A failure inside a ``tf.data`` graph can only surface as a TensorFlow error; the
pipeline's decode stage puts the file path in its message
(:func:`tlkit.data._decode.decode_error_message`), and :func:`decode_errors`
turns such an error back into :class:`~tlkit.errors.ImageDecodeError`.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Iterator

from tlkit._files import file_problem
from tlkit.errors import ImageDecodeError

__all__ = ["as_decode_error", "check_exists", "decode_errors"]

# TensorFlow prints the message C-escaped (quote as backslash-quote, non-ASCII bytes as octal).
_ERROR_RE = re.compile(
    r"ImageDecodeError: (cannot (?:read|decode) image file \\?'(.*?)\\?': "
    r"(?:it is|the file)[^\]\n]*)"
)


def check_exists(paths: list[str], missing_ok: bool = False) -> None:
    """Raise :class:`~tlkit.errors.ImageDecodeError` naming the files of ``paths`` that
    are missing, or that the pipeline must not read.

    Each path is checked with ``os.stat`` only (:func:`tlkit._files.file_problem`),
    never opened: a named pipe, socket or device (or a symlink to one), a folder,
    or a file over :data:`tlkit._files.MAX_FILE_BYTES` is refused with its reason,
    whatever ``missing_ok`` says (reading one would hang or exhaust memory).
    Missing files are refused unless ``missing_ok``.

    Examples
    --------
    >>> check_exists([])
    >>> check_exists(["/no/such/file.png"])
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: 1 image file(s) of the split are missing: '/no/such/file.png'. Restore them, or make a new split.
    >>> check_exists(["/dev/zero"], missing_ok=True)
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: refused to read image file '/dev/zero': not a regular file: a character device. Remove it from the split, or replace it with the image file.
    """
    missing = []
    for p in paths:
        reason = file_problem(p)
        if reason is None:
            continue
        if not reason.startswith("missing"):
            err = ImageDecodeError(
                f"refused to read image file {p!r}: {reason}. Remove it from the split, or "
                "replace it with the image file."
            )
            err.path = p  # type: ignore[attr-defined]
            raise err
        missing.append(p)
    if missing and not missing_ok:
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
