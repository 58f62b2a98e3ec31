"""Find the image files of a folder-per-class tree and check that each decodes.

Nothing is dropped silently: every file that does not become a sample is
returned as a :class:`SkippedFile` with the reason. Files are read through
:mod:`tlkit._files`: a named pipe, socket or device (or a symlink to one) is
skipped with that reason without being opened, and files and images over the
documented limits are skipped naming the limit.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tlkit._files import image_problem, read_file
from tlkit._validation import check_choice
from tlkit.errors import DatasetError, FileLimitError, InvalidArgumentError

__all__ = [
    "SKIP_CODES",
    "SUPPORTED_FORMATS",
    "FileInfo",
    "SkippedFile",
    "inspect_file",
    "inspect_files",
    "list_class_tree",
]

#: Pillow format names the input pipeline decodes (``tf.io.decode_image``).
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP"})

_EXIF_ORIENTATION = 0x0112

# Folders with at least this many files get a progress bar by default.
PROGRESS_THRESHOLD = 2000


#: The codes of :attr:`SkippedFile.code`, one per kind of reason (see :class:`SkippedFile`).
SKIP_CODES = (
    "hidden",
    "outside_class",
    "broken_symlink",
    "symlink_loop",
    "unreadable",
    "refused",
    "empty",
    "not_an_image",
    "unsupported_format",
    "too_large",
    "undecodable",
    "label_conflict",
    "missing",
    "changed",
    "unknown",
)


@dataclass(frozen=True)
class SkippedFile:
    """A file that did not enter the split, and why.

    ``reason`` is the text for people; ``code`` the kind of reason, for code
    to match on (never match on ``reason``). The codes (:data:`SKIP_CODES`):

    * ``"hidden"``: a hidden file or folder (``.DS_Store``, ``Thumbs.db``, ``.git/``);
    * ``"outside_class"``: a file beside the class folders, in none of them;
    * ``"broken_symlink"``: a symlink whose target does not exist;
    * ``"symlink_loop"``: a symlinked folder already scanned;
    * ``"unreadable"``: a file or folder the operating system would not read or list;
    * ``"refused"``: not read: not a regular file (a pipe, socket or device, a
      broken symlink or loop), or over the file-size limit (``MAX_FILE_BYTES``);
    * ``"empty"``: a file of 0 bytes;
    * ``"not_an_image"``: Pillow cannot identify the format;
    * ``"unsupported_format"``: an image format (or BMP variant) the input pipeline cannot decode;
    * ``"too_large"``: over the pixel limit (``MAX_IMAGE_PIXELS``);
    * ``"undecodable"``: a truncated or damaged image;
    * ``"label_conflict"``: identical content under several classes (``on_conflict=``);
    * ``"missing"``, ``"changed"``: listed in a manifest, and gone or changed on disk since;
    * ``"unknown"``: not recorded: the default, and every skip of a manifest of
      format version 1 (written before codes; nothing is guessed from its reason).

    Examples
    --------
    >>> SkippedFile("cat/.DS_Store", "hidden file", "hidden").code
    'hidden'
    >>> SkippedFile("cat/.DS_Store", "hidden file").to_dict()
    {'path': 'cat/.DS_Store', 'reason': 'hidden file', 'code': 'unknown'}
    """

    path: str
    reason: str
    code: str = "unknown"

    def __post_init__(self) -> None:
        check_choice("code", self.code, SKIP_CODES)

    def to_dict(self) -> dict[str, str]:
        """Return the record as a JSON-ready dict."""
        return {"path": self.path, "reason": self.reason, "code": self.code}


@dataclass(frozen=True)
class FileInfo:
    """What scanning learnt about one valid image file."""

    sha256: str
    format: str
    width: int
    height: int
    orientation: int


class _Skip(Exception):
    """Internal: the file is not a usable image; the message is the reason, ``code`` its kind."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Unusable:
    """What :func:`inspect_files` returns for a file that is not a usable image."""

    code: str
    reason: str


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in {"Thumbs.db", "desktop.ini", "__MACOSX"}


def list_class_tree(
    root: Path,
) -> tuple[list[str], list[tuple[str, str]], list[SkippedFile]]:
    """List a folder-per-class tree.

    Parameters
    ----------
    root : pathlib.Path
        Dataset folder; each non-hidden sub-folder is a class, and files in nested
        sub-folders count for their top-level class.

    Returns
    -------
    class_names : list of str
        Class folder names, sorted.
    files : list of (relative path, class name)
        Candidate files, sorted by relative path (forward slashes).
    skipped : list of SkippedFile
        Hidden files and folders, files outside any class folder, broken
        symlinks, symlink loops and unreadable folders.

    Raises
    ------
    DatasetError
        A symlinked class folder leads to another class folder of the tree.

    Notes
    -----
    Symlinks are followed: a symlinked class folder or sub-folder is scanned
    (loops are skipped), a symlinked file is read when its target is a regular
    file (:mod:`tlkit._files`); a symlink to a pipe, socket or device is skipped
    with that reason, never opened.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "cat").mkdir(); _ = (d / "cat" / "1.jpg").write_bytes(b"")
    >>> list_class_tree(d)[:2]
    (['cat'], [('cat/1.jpg', 'cat')])
    """
    classes: list[str] = []
    files: list[tuple[str, str]] = []
    skipped: list[SkippedFile] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise OSError(f"cannot list dataset folder {str(root)!r}: {exc}") from exc
    for entry in entries:
        if _is_hidden(entry.name):
            n = _count_files(entry.path) if entry.is_dir() else 1
            what = f"hidden folder ({n} files not scanned)" if entry.is_dir() else "hidden file"
            skipped.append(SkippedFile(entry.name, what, "hidden"))
        elif entry.is_dir():
            classes.append(entry.name)
        elif entry.is_symlink() and not os.path.exists(entry.path):
            skipped.append(
                SkippedFile(
                    entry.name, "broken symlink (its target does not exist)", "broken_symlink"
                )
            )
        else:
            skipped.append(
                SkippedFile(
                    entry.name, "not inside a class folder (move it into one)", "outside_class"
                )
            )
    _check_linked_classes(root, classes)
    for cls in classes:
        _walk_class(root, cls, files, skipped)
    files.sort()
    skipped.sort(key=lambda s: s.path)
    return classes, files, skipped


def _check_linked_classes(root: Path, classes: list[str]) -> None:
    """Refuse a symlinked class folder that leads into (or around) another class folder.

    Symlinked class folders are followed (``cat -> /data/cats``). But a link to
    another class folder of the same tree would give every image two labels,
    and the splitter would drop them all as conflicts ("0 images"): say so.
    """
    real = {c: os.path.realpath(os.path.join(root, c)) for c in classes}
    for cls in classes:
        if not os.path.islink(os.path.join(root, cls)):
            continue
        for other in classes:
            a, b = real[cls], real[other]
            if other == cls or not (a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep)):
                continue
            raise DatasetError(
                f"class folder {cls!r} in {str(root)!r} is a symlink to {a!r}, which "
                f"{'is' if a == b else 'overlaps'} class folder {other!r} ({b!r}): the same "
                "images would carry two labels. Remove the symlink, or point it at a folder "
                "outside the other classes."
            )


def _count_files(path: str) -> int:
    n = 0
    for _, _, names in os.walk(path):
        n += len(names)
    return n


def _walk_class(
    root: Path, cls: str, files: list[tuple[str, str]], skipped: list[SkippedFile]
) -> None:
    seen: set[tuple[int, int]] = set()
    stack = [cls]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel)
        try:
            st = os.stat(full)
        except OSError as exc:  # broken or looping symlink to a folder
            skipped.append(
                SkippedFile(rel, f"cannot open folder: {exc.strerror or exc}", "unreadable")
            )
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            skipped.append(
                SkippedFile(rel, "symlink loop (folder already scanned)", "symlink_loop")
            )
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(full), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(
                SkippedFile(rel, f"cannot list folder: {exc.strerror or exc}", "unreadable")
            )
            continue
        for e in entries:
            erel = f"{rel}/{e.name}"
            if _is_hidden(e.name):
                if e.is_dir(follow_symlinks=False):
                    n = _count_files(e.path)
                    what = f"hidden folder ({n} files not scanned)"
                    skipped.append(SkippedFile(erel, what, "hidden"))
                else:
                    skipped.append(SkippedFile(erel, "hidden file", "hidden"))
                continue
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(erel)
            else:
                files.append((erel, cls))


def inspect_file(path: str | os.PathLike[str], verify: bool = True) -> FileInfo:
    """Hash a file and check that it is a decodable image of a supported format.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    verify : bool
        Decode the pixels (at a reduced DCT scale for JPEG, which still reads
        every entropy-coded block). ``False`` only reads the header.

    Returns
    -------
    FileInfo

    Raises
    ------
    DatasetError
        With the reason the file is not usable (a ``ValueError``).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.png"; Image.new("RGB", (4, 3)).save(p)
    >>> inspect_file(p).width, inspect_file(p).format
    (4, 'PNG')
    """
    try:
        return _inspect(os.fspath(path), verify)
    except _Skip as exc:
        raise DatasetError(str(exc)) from None


def _inspect(path: str, verify: bool) -> FileInfo:
    try:
        data = read_file(path)
    except FileLimitError as exc:
        raise _Skip("refused", exc.reason) from None
    except OSError as exc:
        raise _Skip("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise _Skip("empty", "empty file (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "?"
            if fmt not in SUPPORTED_FORMATS:
                raise _Skip(
                    "unsupported_format",
                    f"{fmt} images are not supported by the input pipeline "
                    f"(supported: {', '.join(sorted(SUPPORTED_FORMATS))}); convert the file",
                )
            if fmt == "BMP":
                _check_bmp(data)
            width, height = im.size
            problem = image_problem(width, height, fmt)
            if problem is not None:
                raise _Skip("too_large", problem)
            orientation = 1
            if fmt == "JPEG":
                tag = im.getexif().get(_EXIF_ORIENTATION, 1)
                orientation = tag if isinstance(tag, int) and 1 <= tag <= 8 else 1
            if verify:
                if fmt == "JPEG":
                    im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
                im.load()
    except _Skip:
        raise
    except UnidentifiedImageError:
        raise _Skip("not_an_image", "not an image (Pillow cannot identify the format)") from None
    except Image.DecompressionBombError as exc:
        raise _Skip("too_large", f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _Skip("undecodable", f"cannot decode image: {exc}") from None
    return FileInfo(digest, fmt, width, height, orientation)


def _check_bmp(data: bytes) -> None:
    """Refuse BMPs that TensorFlow's decoder cannot read.

    ``tf.io.decode_bmp`` reads uncompressed 8-bit (palette applied by the
    pipeline), 24- and 32-bit BMPs; not 1- or 4-bit, RLE-compressed or OS/2 ones.
    """
    header = int.from_bytes(data[14:18], "little")
    bpp = int.from_bytes(data[28:30], "little")
    compression = int.from_bytes(data[30:34], "little")
    if header < 40 or bpp not in (8, 24, 32) or compression not in (0, 3):
        raise _Skip(
            "unsupported_format",
            f"{bpp}-bit or compressed BMP is not supported by the input pipeline "
            "(uncompressed 8-, 24- and 32-bit only); convert the file to PNG",
        )


EXECUTORS = ("auto", "thread", "process")

# Below this many files a process pool's start-up is not worth it.
_PROCESS_MIN_FILES = 500
_CHUNK = 256


# Libraries whose own thread pools make forking unsafe once they are imported.
_FORK_UNSAFE_MODULES = ("tensorflow", "torch", "jax")


def _fork_is_safe() -> bool:
    """True on Linux when no Python thread but this one runs and no ML runtime is loaded.

    Forking a process whose other threads may hold locks can deadlock the
    child. BLAS pools (numpy's) handle ``fork`` themselves; TensorFlow's,
    PyTorch's and JAX's do not promise to.
    """
    return (
        sys.platform.startswith("linux")
        and threading.active_count() == 1
        and not any(m in sys.modules for m in _FORK_UNSAFE_MODULES)
    )


def choose_executor(executor: str, n_files: int, workers: int) -> str:
    """Resolve ``executor="auto"``: ``"process"`` or ``"thread"``.

    Threads are always safe, and Pillow and hashlib release the GIL while
    they decode and hash, but the Python work around them (header parsing)
    does not. Processes avoid that, and are used when they are safe and worth
    it: on Linux, with no other Python thread running and TensorFlow (or
    PyTorch, JAX) not imported, whose threads could deadlock a forked child,
    for 500 files or more.
    """
    check_choice("executor", executor, EXECUTORS)
    if workers <= 1:
        return "thread"
    if executor != "auto":
        return executor
    return "process" if n_files >= _PROCESS_MIN_FILES and _fork_is_safe() else "thread"


def _inspect_one(path: str, verify: bool) -> FileInfo | Unusable:
    try:
        return _inspect(path, verify)
    except _Skip as exc:
        return Unusable(exc.code, str(exc))


def _inspect_chunk(paths: Sequence[str], verify: bool) -> list[FileInfo | Unusable]:
    return [_inspect_one(p, verify) for p in paths]


def inspect_files(
    paths: Sequence[str],
    verify: bool = True,
    workers: int | None = None,
    progress: bool | None = None,
    desc: str = "checking images",
    executor: str = "auto",
) -> list[FileInfo | Unusable]:
    """Inspect many files in parallel.

    Returns, in input order, a :class:`FileInfo` for each usable image or an
    :class:`Unusable` (the skip code and reason) for each unusable file. ``executor`` picks threads or
    forked worker processes (see :func:`choose_executor`).
    """
    kind = choose_executor(executor, len(paths), workers or 2)
    if kind == "process":
        if "fork" not in multiprocessing.get_all_start_methods():
            raise InvalidArgumentError(
                "executor='process' needs the 'fork' start method (Linux); use 'thread'"
            )
        workers = workers or os.cpu_count() or 1
    else:
        workers = workers or min(32, (os.cpu_count() or 1) + 2)
    show = progress if progress is not None else len(paths) >= PROGRESS_THRESHOLD
    out: list[FileInfo | Unusable] = []
    with ExitStack() as stack:
        results: Iterator[list[FileInfo | Unusable]]
        pool: Executor
        if workers <= 1:
            results = ([_inspect_one(p, verify)] for p in paths)
        elif kind == "thread":
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))
            results = ([r] for r in pool.map(partial(_inspect_one, verify=verify), paths))
        else:
            chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
            context = multiprocessing.get_context("fork")
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=context))
            # map() submits every chunk now, so the workers are forked before the progress
            # bar starts its monitor thread.
            results = iter(pool.map(partial(_inspect_chunk, verify=verify), chunks))
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = stack.enter_context(tqdm(total=len(paths), desc=desc, unit="file"))
        for part in results:
            out.extend(part)
            if bar is not None:
                bar.update(len(part))
    return out
