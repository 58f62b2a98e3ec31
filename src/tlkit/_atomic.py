"""Atomic writes: every file and folder tlkit writes appears whole or not at all.

Each writer here writes into a temporary sibling of the target (same folder, so
on the same file system), then renames it into place with :func:`os.replace`.
A failure half-way (full disk, converter error, Ctrl-C) leaves the target as it
was and removes the temporary; a reader never sees half a file.

They never replace what is not theirs to replace:

- :func:`atomic_write_bytes`, :func:`atomic_write_text` and :func:`atomic_file`
  replace a regular file (a report writer overwriting its own previous report),
  but refuse a folder, a symbolic link or any other non-regular file at the
  target (:class:`~tlkit.errors.OutputPathError`, or the ``error`` given);
- :func:`atomic_folder` fills a new folder and renames it into place; an
  existing non-empty folder at the target is refused unless ``replace=True``
  (the caller has checked that the folder is its own), and then it is moved
  aside, the new one renamed in, and only then the old one removed.

Temporary names start with a dot and hold ``.tlkit-tmp-`` and a random token
(the suffix is kept), so they never clash with a user's files.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from tlkit._atomic import atomic_write_text
>>> path = Path(tempfile.mkdtemp()) / "report.md"
>>> atomic_write_text(path, "# Report\\n").read_text()
'# Report\\n'
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from tlkit.errors import OutputPathError

__all__ = [
    "atomic_file",
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_replaceable_file",
    "temp_sibling",
]

_TMP_TAG = ".tlkit-tmp-"


def temp_sibling(path: str | os.PathLike[str], tag: str = _TMP_TAG) -> Path:
    """A fresh name beside ``path`` that does not exist yet: ``model.tflite`` -> ``.model.tlkit-tmp-XXXX.tflite``.

    The suffix is kept, for writers that insist on one (the LiteRT exporter).
    """
    p = Path(path)
    while True:
        candidate = p.with_name(f".{p.stem}{tag}{secrets.token_hex(4)}{p.suffix}")
        if not os.path.lexists(candidate):
            return candidate


def check_replaceable_file(
    path: str | os.PathLike[str], *, error: type[Exception] = OutputPathError
) -> Path:
    """``path`` if nothing is there or a regular file is; refuse a folder, link or device.

    Raises
    ------
    tlkit.errors.OutputPathError
        (or ``error``) naming the path and what is there.
    """
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p
    if not stat.S_ISREG(st.st_mode):
        raise error(
            f"{str(p)!r} is {_what(st.st_mode)}, not a regular file; tlkit writes a file there "
            "and never replaces a folder, link or special file: move it away or choose "
            "another output path"
        )
    return p


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, error: type[Exception] = OutputPathError
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, then rename); return the path.

    A regular file at ``path`` is replaced; a folder, link or special file is
    refused with ``error`` (:class:`~tlkit.errors.OutputPathError` by default).
    """
    p = check_replaceable_file(path, error=error)
    tmp = temp_sibling(p)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_replaceable_file(p, error=error)
        os.replace(tmp, p)
    except BaseException:
        _remove(tmp)
        raise
    return p


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    error: type[Exception] = OutputPathError,
) -> Path:
    """Write ``text`` to ``path`` atomically, like :func:`atomic_write_bytes`; return the path."""
    return atomic_write_bytes(path, text.encode(encoding), error=error)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], *, error: type[Exception] = OutputPathError
) -> Iterator[Path]:
    """Yield a temporary sibling path to write a file at; rename it onto ``path`` on success.

    For writers that take a path (a converter, an exporter). The temporary does
    not exist when yielded. If the block raises, or writes no regular file, the
    temporary is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "model.bin"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_bytes(b"weights")
    >>> target.read_bytes()
    b'weights'
    """
    p = check_replaceable_file(path, error=error)
    tmp = temp_sibling(p)
    try:
        yield tmp
        if not tmp.is_file() or tmp.is_symlink():
            raise error(f"nothing was written for {str(p)!r}; it is left as it was")
        check_replaceable_file(p, error=error)
        os.replace(tmp, p)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(
    path: str | os.PathLike[str],
    *,
    replace: bool = False,
    error: type[Exception] = OutputPathError,
) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to create. Nothing, or an empty folder, may be there; a
        non-empty folder only with ``replace=True``; a file, link or special
        file never.
    replace : bool
        Replace a non-empty folder at ``path`` (the caller has checked it is
        one it wrote). It is renamed aside, the new folder renamed in, then
        the old one removed; if the rename in fails, the old one is put back.
    error : type
        The exception raised on a refused path (default
        :class:`~tlkit.errors.OutputPathError`).

    If the block raises, the temporary folder is removed and ``path`` is left
    as it was.
    """
    p = Path(path)
    _check_folder_target(p, replace, error)
    tmp = temp_sibling(p)
    os.mkdir(tmp)
    try:
        yield tmp
        _check_folder_target(p, replace, error)
        _swap_in(tmp, p)
    except BaseException:
        _remove(tmp)
        raise


# -- helpers ------------------------------------------------------------------------------------


def _check_folder_target(p: Path, replace: bool, error: type[Exception]) -> None:
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise error(
            f"{str(p)!r} is {_what(st.st_mode)}; tlkit writes a folder there and never replaces "
            "a file, link or special file: move it away or choose another output path"
        )
    if not replace and any(os.scandir(p)):
        raise error(
            f"{str(p)!r} is a folder that is not empty; tlkit does not replace it: move it away "
            "or choose another output path"
        )


def _swap_in(tmp: Path, p: Path) -> None:
    if not os.path.lexists(p):
        os.rename(tmp, p)
        return
    aside = temp_sibling(p, ".tlkit-old-")
    os.rename(p, aside)
    try:
        os.rename(tmp, p)
    except BaseException:
        os.rename(aside, p)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:  # pragma: no cover - best effort clean-up
        pass


def _what(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"
