"""The one place where tlkit opens a file it reads, and the limits on what it decodes.

Every image tlkit reads (the scanner behind ``tlkit split`` and
:class:`~tlkit.DatasetSplitter`, the input pipeline, ``tlkit predict`` and
:func:`tlkit.audit.audit`) goes through this module:

- **regular files only**: the path is checked with ``os.stat`` *before* it is
  opened; a named pipe (FIFO), socket, character or block device (``/dev/zero``),
  or folder is refused with a reason and never opened (opening a FIFO blocks
  forever, reading ``/dev/zero`` never ends). The file is then opened without
  blocking and checked again on the open descriptor, so it cannot be swapped in
  between.
- **symlink policy**: a symlink is followed when its target is a regular file
  (or, for folders, a folder); a symlink to anything else, a broken symlink and
  a symlink loop are refused with that reason.
- **bounded reads**: at most :data:`MAX_FILE_BYTES` bytes are read from one file;
  a longer file is refused before its bytes are read.
- **thumbnails** (the audit's and the comparison report's pictures) are made by
  :func:`thumbnail`, from an image opened by :func:`open_image`.
- **image limits**, checked from the image header before any pixel is decoded:
  :data:`MAX_IMAGE_PIXELS` pixels per image, :data:`MAX_CROP_ASPECT_RATIO` for
  ``resize="crop"``, and only the first frame of an animated GIF is decoded.

Each limit is a module constant with a documented default; an environment
variable of the same name with a ``TLKIT_`` prefix (e.g.
``TLKIT_MAX_IMAGE_PIXELS=100000000``) overrides it, for the library and the
command line alike. A refused file raises :class:`~tlkit.errors.FileLimitError`
naming the file, the limit and how to change it.
"""

from __future__ import annotations

import io
import os
import stat
from typing import TYPE_CHECKING

from tlkit.errors import FileLimitError, InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "MAX_CROP_ASPECT_RATIO",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_PIXELS",
    "check_file",
    "check_image",
    "decoded_pixels",
    "file_problem",
    "image_problem",
    "limit",
    "open_image",
    "read_file",
    "thumbnail",
]

#: Largest image file tlkit reads, in bytes (64 MiB). Env: ``TLKIT_MAX_FILE_BYTES``.
MAX_FILE_BYTES = 64 * 1024 * 1024

#: Most pixels tlkit decodes for one image (40 megapixels; about 160 MB as RGBA
#: bytes). JPEGs count at the reduced scale libjpeg decodes them at (the scanner
#: and ``tlkit predict`` decode at 1/8 of each side, the input pipeline at the
#: smallest scale that still covers the target size). Pillow refuses images over
#: about 179 megapixels on its own (``PIL.Image.MAX_IMAGE_PIXELS`` x 2). Env:
#: ``TLKIT_MAX_IMAGE_PIXELS``.
MAX_IMAGE_PIXELS = 40_000_000

#: Largest ratio of long side to short side for ``resize="crop"`` (50:1): cropping
#: a 1x10000 image to 224x224 would first resize it to 224x2,240,000. Other
#: resize policies have no aspect limit. Env: ``TLKIT_MAX_CROP_ASPECT_RATIO``.
MAX_CROP_ASPECT_RATIO = 50.0

_LIMITS = ("MAX_FILE_BYTES", "MAX_IMAGE_PIXELS", "MAX_CROP_ASPECT_RATIO")

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def limit(name: str) -> float:
    """The value of limit ``name`` now: ``TLKIT_<name>`` from the environment, else the constant.

    Examples
    --------
    >>> limit("MAX_IMAGE_PIXELS") == MAX_IMAGE_PIXELS or "TLKIT_MAX_IMAGE_PIXELS" in os.environ
    True
    """
    if name not in _LIMITS:
        raise InvalidArgumentError(f"unknown limit {name!r}; known: {', '.join(_LIMITS)}")
    value: float = globals()[name]
    text = os.environ.get(f"TLKIT_{name}")
    if text is None or not text.strip():
        return value
    try:
        value = float(text) if name == "MAX_CROP_ASPECT_RATIO" else int(text)
    except ValueError:
        value = -1
    if not value > 0 or value == float("inf"):
        raise InvalidArgumentError(
            f"environment variable TLKIT_{name} must be a positive number, got {text!r}"
        )
    return value


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def file_problem(path: str | os.PathLike[str], max_bytes: int | None = None) -> str | None:
    """Why ``path`` must not be read (a short reason), or ``None`` when it may be.

    Uses ``os.lstat``/``os.stat`` only: the file is never opened. A missing file
    gives ``"missing (no such file)"``.

    Examples
    --------
    >>> file_problem("/dev/null")
    'not a regular file: a character device'
    >>> file_problem("/no/such/file") is None
    False
    """
    p = os.fspath(path)
    try:
        link = stat.S_ISLNK(os.lstat(p).st_mode)
    except OSError as exc:
        return f"missing ({exc.strerror or exc})"
    try:
        st = os.stat(p)
    except OSError as exc:
        if link:
            return f"cannot read file: broken symlink or symlink loop ({exc.strerror or exc})"
        return f"cannot read file: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        what = _kind(st.st_mode)
        return f"not a regular file: {'a symlink to ' if link else ''}{what}"
    cap = int(limit("MAX_FILE_BYTES")) if max_bytes is None else max_bytes
    if st.st_size > cap:
        return _too_big(st.st_size, cap)
    return None


def _too_big(size: int, cap: int) -> str:
    return (
        f"file too large: {size:,} bytes, over the limit of {cap:,} bytes "
        "(MAX_FILE_BYTES; raise it with the environment variable TLKIT_MAX_FILE_BYTES)"
    )


def check_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> None:
    """Raise unless ``path`` is a regular file (after symlinks) within the size limit.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    FileLimitError
        Not a regular file (FIFO, socket, device, folder, broken symlink) or too large.
    """
    reason = file_problem(path, max_bytes)
    if reason is None:
        return
    p = os.fspath(path)
    if reason.startswith("missing"):
        raise FileNotFoundError(f"image file {p!r} is {reason}")
    raise FileLimitError(f"refused to read {p!r}: {reason}", path=p, reason=reason)


def read_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """All bytes of the regular file ``path``, read through the checks of this module.

    The path is checked before it is opened (:func:`check_file`), opened without
    blocking, checked again on the open descriptor, and read with a bounded read.

    Raises
    ------
    FileNotFoundError, FileLimitError
        As :func:`check_file`; ``OSError`` when reading fails.

    Examples
    --------
    >>> read_file("/dev/zero")
    Traceback (most recent call last):
    ...
    tlkit.errors.FileLimitError: refused to read '/dev/zero': not a regular file: a character device
    """
    cap = int(limit("MAX_FILE_BYTES")) if max_bytes is None else max_bytes
    check_file(path, cap)
    p = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(p, flags | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped since the check
            reason = f"not a regular file: {_kind(st.st_mode)}"
            raise FileLimitError(f"refused to read {p!r}: {reason}", path=p, reason=reason)
        chunks = []
        left = cap + 1
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > cap:
        reason = _too_big(max(len(data), st.st_size), cap)
        raise FileLimitError(f"refused to read {p!r}: {reason}", path=p, reason=reason)
    return data


def decoded_pixels(width: int, height: int, fmt: str, jpeg_scale: int = 8) -> int:
    """Pixels tlkit decodes for a ``width x height`` image of Pillow format ``fmt``.

    JPEGs are decoded at ``1/jpeg_scale`` of each side (rounded up).

    Examples
    --------
    >>> decoded_pixels(8000, 6000, "JPEG"), decoded_pixels(8000, 6000, "PNG")
    (750000, 48000000)
    """
    if fmt == "JPEG":
        return -(-width // jpeg_scale) * -(-height // jpeg_scale)
    return width * height


def image_problem(width: int, height: int, fmt: str, resize: str | None = None) -> str | None:
    """Why a ``width x height`` image must not be decoded (over a limit), or ``None``.

    Examples
    --------
    >>> image_problem(1, 10000, "PNG", "crop").startswith("aspect ratio 10,000.0:1 is over")
    True
    >>> image_problem(4000, 3000, "PNG") is None
    True
    """
    cap = int(limit("MAX_IMAGE_PIXELS"))
    pixels = decoded_pixels(width, height, fmt)
    if pixels > cap:
        return (
            f"image too large: {width}x{height} = {pixels:,} pixels decoded, over the limit of "
            f"{cap:,} (MAX_IMAGE_PIXELS; raise it with the environment variable "
            "TLKIT_MAX_IMAGE_PIXELS, or make the image smaller)"
        )
    if resize == "crop" and min(width, height) > 0:
        ratio = max(width, height) / min(width, height)
        most = limit("MAX_CROP_ASPECT_RATIO")
        if ratio > most:
            return (
                f"aspect ratio {ratio:,.1f}:1 is over the limit of {most:g}:1 for resize='crop' "
                f"({width}x{height}; MAX_CROP_ASPECT_RATIO, environment variable "
                "TLKIT_MAX_CROP_ASPECT_RATIO): use resize='pad' or 'stretch', or crop the file"
            )
    return None


def check_image(
    path: str | os.PathLike[str], width: int, height: int, fmt: str, resize: str | None = None
) -> None:
    """Raise :class:`~tlkit.errors.FileLimitError` when :func:`image_problem` finds one."""
    reason = image_problem(width, height, fmt, resize)
    if reason is not None:
        p = os.fspath(path)
        raise FileLimitError(f"refused to decode {p!r}: {reason}", path=p, reason=reason)


def open_image(path: str | os.PathLike[str], resize: str | None = None) -> Image.Image:
    """Open an image with Pillow through the checks of this module; pixels not yet decoded.

    The file is read with :func:`read_file`, opened lazily (header only), and its
    size checked with :func:`check_image` before the caller decodes it. Only the
    first frame of an animated image is decoded by ``load()``/``convert()``.

    Raises
    ------
    FileNotFoundError, FileLimitError
        As :func:`read_file` and :func:`check_image`.
    PIL.UnidentifiedImageError, OSError
        Pillow cannot identify the format.
    """
    from PIL import Image

    im = Image.open(io.BytesIO(read_file(path)))
    try:
        check_image(path, im.size[0], im.size[1], im.format or "", resize)
    except BaseException:
        im.close()
        raise
    return im


def thumbnail(
    path: str | os.PathLike[str], size: int, fmt: str = "PNG", *, quality: int = 85
) -> bytes:
    """A small copy of the image ``path``, longest side at most ``size`` pixels, as PNG or JPEG.

    The file is read through :func:`open_image` (every check of this module), upright
    after its EXIF orientation, in RGB. A JPEG is decoded at a reduced scale when that
    is enough for the thumbnail.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    size : int
        Longest side of the thumbnail in pixels; a smaller image keeps its size.
    fmt : {"PNG", "JPEG"}
        Encoding of the bytes returned (PNG optimised; JPEG at ``quality``).
    quality : int
        JPEG quality, 1 to 95.

    Returns
    -------
    bytes
        The encoded thumbnail.

    Raises
    ------
    FileNotFoundError, FileLimitError, OSError
        As :func:`open_image`; Pillow's errors for a file it cannot decode.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.new("RGB", (300, 150)).save(path)
    >>> small = thumbnail(path, 96, "JPEG")
    >>> Image.open(io.BytesIO(small)).size
    (96, 48)
    """
    if fmt not in ("PNG", "JPEG"):
        raise InvalidArgumentError(f"fmt must be 'PNG' or 'JPEG', got {fmt!r}")
    from PIL import ImageOps

    with open_image(path) as im:
        im.draft("RGB", (size * 2, size * 2))
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        if fmt == "PNG":
            im.save(buf, "PNG", optimize=True)
        else:
            im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
