"""In-graph image decoding for the input pipeline: TensorFlow ops (GIFs: Pillow, first frame).

One function, :func:`load_image`, turns a file path and its stored EXIF
orientation into an upright ``uint8`` image of the requested size:

1. read the file and pick the decoder from the first bytes (JPEG, PNG, GIF, BMP);
   check the size in the header against the limits of :mod:`tlkit._files`
   (pixels, aspect ratio for ``"crop"``) before anything is decoded;
2. JPEG: choose the largest DCT scale (1/2, 1/4, 1/8) that still gives at least
   the size needed, and let libjpeg decode at that scale (a 4000x3000 photo is
   decoded as 500x375 when the target is 224);
3. resize to the size the resize policy needs (area averaging when shrinking,
   bilinear when enlarging), in the stored frame of the image;
4. turn it upright (EXIF orientation, now on the small image);
5. centre-crop or letterbox to the exact target size.

The module holds all of decoding: the steps above; the header parsing they
start from (format, stored size, PNG alpha, read from the first bytes before
any pixel is decoded; the first-frame GIF decoder); and the pipeline's decoding
map, :func:`decode_stage`, which names the file when one fails.

Importing this module imports TensorFlow.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import tensorflow as tf

from tlkit import _files
from tlkit._validation import check_choice

__all__ = [
    "RESIZE_POLICIES",
    "decode_checked",
    "decode_error_message",
    "decode_stage",
    "format_index",
    "gif_first_frame",
    "jpeg_ratio",
    "limit_message",
    "limit_problem",
    "load_image",
    "orient",
    "png_decode",
    "resize_with_policy",
    "stored_size",
    "u16",
    "u32",
]

#: Allowed values of ``resize=``.
RESIZE_POLICIES = ("stretch", "crop", "pad")

#: libjpeg DCT scale denominators ``tf.io.decode_jpeg(ratio=...)`` accepts.
_JPEG_RATIOS = (1, 2, 4, 8)

_DECODE_ERROR = "ImageDecodeError: "
_MISSING = (
    "cannot read image file '{}': it is missing or unreadable (deleted or moved since the "
    "split was made?). Restore the file, or make a new split."
)
_CORRUPT = (
    "cannot decode image file '{}': the file exists but is not a JPEG, PNG, GIF or BMP image "
    "TensorFlow can decode (changed or damaged since the split was made?). Restore the file, "
    "or make a new split."
)


def decode_error_message(kind: str, path: tf.Tensor | str) -> tf.Tensor:
    """The text of the error the pipeline raises for an unreadable (``"missing"``) or
    undecodable (``"corrupt"``) file, with the path filled in (a string tensor)."""
    before, after = (_MISSING if kind == "missing" else _CORRUPT).split("{}")
    return tf.strings.join([_DECODE_ERROR + before, path, after])


# -- EXIF orientation --------------------------------------------------------------------


def _transpose(image: tf.Tensor) -> tf.Tensor:
    return tf.transpose(image, [1, 0, 2])


def orient(image: tf.Tensor, orientation: tf.Tensor | int) -> tf.Tensor:
    """Turn an ``(H, W, C)`` image upright according to its EXIF orientation tag.

    Gives the same pixels as Pillow's ``ImageOps.exif_transpose``. Tags outside
    1..8 are treated as 1 (upright).

    Examples
    --------
    >>> x = tf.reshape(tf.range(6), (2, 3, 1))
    >>> orient(x, 6).shape.as_list()  # "rotate 90 clockwise" swaps height and width
    [3, 2, 1]
    """
    o = tf.cast(orientation, tf.int32)
    index = tf.where((o >= 1) & (o <= 8), o - 1, 0)
    branches = [
        lambda: image,  # 1: upright
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        lambda: _transpose(image),  # 5: transposed
        lambda: tf.reverse(_transpose(image), [1]),  # 6: needs 90 clockwise
        lambda: tf.reverse(_transpose(image), [0, 1]),  # 7: transversed
        lambda: tf.reverse(_transpose(image), [0]),  # 8: needs 90 counter-clockwise
    ]
    return tf.switch_case(index, branches)


def _swaps_axes(orientation: tf.Tensor) -> tf.Tensor:
    return orientation >= 5


# -- sizes ---------------------------------------------------------------------------------


def _scaled_size(
    height: tf.Tensor, width: tf.Tensor, target: tf.Tensor, policy: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Size to resize an ``height x width`` image to, before cropping or padding."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    th = tf.cast(target[0], tf.float32)
    tw = tf.cast(target[1], tf.float32)
    if policy == "stretch":
        return target[0], target[1]
    if policy == "crop":
        s = tf.maximum(th / h, tw / w)
        nh = tf.maximum(target[0], tf.cast(tf.round(h * s), tf.int32))
        nw = tf.maximum(target[1], tf.cast(tf.round(w * s), tf.int32))
        return nh, nw
    s = tf.minimum(th / h, tw / w)  # pad
    nh = tf.clip_by_value(tf.cast(tf.round(h * s), tf.int32), 1, target[0])
    nw = tf.clip_by_value(tf.cast(tf.round(w * s), tf.int32), 1, target[1])
    return nh, nw


def _resize(image: tf.Tensor, nh: tf.Tensor, nw: tf.Tensor) -> tf.Tensor:
    """Resize to ``(nh, nw)``: area averaging when shrinking both axes (antialiased and
    cheap), bilinear when enlarging both, antialiased bilinear otherwise. Float32 out."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    size = tf.stack([nh, nw])
    shrink = (nh <= h) & (nw <= w)
    grow = (nh >= h) & (nw >= w)

    def area() -> tf.Tensor:
        return tf.image.resize(image, size, method="area")

    def bilinear() -> tf.Tensor:
        return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")

    def mixed() -> tf.Tensor:
        return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)

    index = tf.where(shrink, 0, tf.where(grow, 1, 2))
    return tf.switch_case(index, [area, bilinear, mixed])


def _finish(image: tf.Tensor, target: tf.Tensor, policy: str) -> tf.Tensor:
    """Centre-crop (``"crop"``) or letterbox with zeros (``"pad"``) to the target size."""
    if policy == "stretch":
        return image
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    if policy == "crop":
        top = (h - target[0]) // 2
        left = (w - target[1]) // 2
        return image[top : top + target[0], left : left + target[1], :]
    top = (target[0] - h) // 2
    left = (target[1] - w) // 2
    paddings = [[top, target[0] - h - top], [left, target[1] - w - left], [0, 0]]
    return tf.pad(image, paddings)


def resize_with_policy(
    image: tf.Tensor, size: tuple[int, int], policy: str = "stretch", orientation: int = 1
) -> tf.Tensor:
    """Resize an upright-or-not ``(H, W, 3)`` image to exactly ``size`` with a policy.

    ``"stretch"`` ignores the aspect ratio; ``"crop"`` keeps it, resizing so the
    image covers the target and cutting the centre; ``"pad"`` keeps it, resizing
    so the image fits and filling the borders with black (letterbox). The image
    is turned upright per ``orientation`` first. Returns float32 in the input's
    value range.

    Examples
    --------
    >>> resize_with_policy(tf.zeros((30, 50, 3)), (16, 16), "pad").shape.as_list()
    [16, 16, 3]
    """
    _check_policy(policy)
    target = tf.constant(size, tf.int32)
    o = tf.cast(orientation, tf.int32)
    stored_target = tf.where(_swaps_axes(o), tf.reverse(target, [0]), target)
    shape = tf.shape(image)
    nh, nw = _scaled_size(shape[0], shape[1], stored_target, policy)
    out = _finish(orient(_resize(image, nh, nw), o), target, policy)
    out.set_shape([size[0], size[1], None])
    return out


def _check_policy(policy: str) -> None:
    check_choice("resize", policy, RESIZE_POLICIES)


# -- decoders ------------------------------------------------------------------------------


def jpeg_ratio(
    height: tf.Tensor | int, width: tf.Tensor | int, target: tf.Tensor, policy: str
) -> tf.Tensor:
    """Largest libjpeg DCT scale denominator (1, 2, 4 or 8) whose output
    (``ceil(height / r) x ceil(width / r)``) still covers the size ``policy``
    resizes a ``height x width`` image to for ``target``.

    Examples
    --------
    >>> int(jpeg_ratio(3000, 4000, tf.constant((224, 224)), "stretch"))
    8
    """
    h = tf.cast(height, tf.int32)
    w = tf.cast(width, tf.int32)
    nh, nw = _scaled_size(h, w, target, policy)
    ratio = tf.constant(1)
    for r in _JPEG_RATIOS[1:]:
        fits = ((h + r - 1) // r >= nh) & ((w + r - 1) // r >= nw)
        ratio = tf.where(fits, r, ratio)
    return ratio


def _jpeg(data: tf.Tensor, target: tf.Tensor, policy: str) -> tf.Tensor:
    """Decode at the largest DCT scale that keeps at least the needed size, then resize."""
    shape = tf.io.extract_jpeg_shape(data)
    h, w = shape[0], shape[1]
    nh, nw = _scaled_size(h, w, target, policy)
    ratio = jpeg_ratio(h, w, target, policy)
    index = tf.where(ratio == 8, 3, tf.where(ratio == 4, 2, tf.where(ratio == 2, 1, 0)))

    def branch(r: int):
        def decode() -> tf.Tensor:
            image = tf.io.decode_jpeg(data, channels=3, ratio=r)
            return _resize(image, nh, nw)

        return decode

    return tf.switch_case(index, [branch(r) for r in _JPEG_RATIOS])


def _bmp(data: tf.Tensor) -> tf.Tensor:
    """24/32-bit BMP (the fourth byte is ignored, as Pillow does) or 8-bit with a palette."""
    image = tf.io.decode_bmp(data, channels=0)

    def palette() -> tf.Tensor:
        start = 14 + u32(data, 14)
        length = tf.maximum(u32(data, 10) - start, 0)
        table = tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8)
        n = tf.shape(table)[0] // 4
        table = tf.reverse(tf.reshape(table[: n * 4], (n, 4))[:, :3], [1])  # BGRx -> RGB
        index = tf.cast(image[..., 0], tf.int32)

        def lookup() -> tf.Tensor:
            return tf.gather(table, tf.minimum(index, n - 1))

        return tf.cond(n > 0, lookup, lambda: tf.repeat(image[..., :1], 3, axis=-1))

    return tf.cond(tf.shape(image)[-1] == 1, palette, lambda: image[..., :3])


def _fail(data: tf.Tensor) -> tf.Tensor:
    check = tf.debugging.Assert(False, ["not a JPEG, PNG, GIF or BMP file"])
    with tf.control_dependencies([check]):
        return tf.zeros((1, 1, 3), tf.uint8)


def limit_problem(
    data: tf.Tensor, orientation: tf.Tensor, size: tuple[int, int], policy: str
) -> tf.Tensor:
    """0 when the image in ``data`` is within tlkit's limits, else 1 (too many pixels)
    or 2 (aspect ratio over the crop limit); from the header, nothing decoded.

    The limits are :data:`tlkit._files.MAX_IMAGE_PIXELS` (JPEGs count at the DCT
    scale they are decoded at) and, for ``policy="crop"``,
    :data:`tlkit._files.MAX_CROP_ASPECT_RATIO`, read when the graph is built.
    """
    most = int(_files.limit("MAX_IMAGE_PIXELS"))
    ratio_cap = float(_files.limit("MAX_CROP_ASPECT_RATIO"))
    fmt = format_index(data)
    h, w = stored_size(data, fmt)
    target = tf.constant(size, tf.int32)
    o = tf.cast(orientation, tf.int32)
    stored_target = tf.where(_swaps_axes(o), tf.reverse(target, [0]), target)

    def jpeg_pixels() -> tf.Tensor:
        hi = tf.cast(tf.minimum(h, 1 << 20), tf.int32)
        wi = tf.cast(tf.minimum(w, 1 << 20), tf.int32)
        r = tf.cast(jpeg_ratio(hi, wi, stored_target, policy), tf.int64)
        return ((h + r - 1) // r) * ((w + r - 1) // r)

    pixels = tf.cond(tf.equal(fmt, 0), jpeg_pixels, lambda: h * w)
    code = tf.where(pixels > most, 1, 0)
    if policy == "crop":
        long, short = tf.maximum(h, w), tf.minimum(h, w)
        steep = tf.cast(long, tf.float64) > ratio_cap * tf.cast(tf.maximum(short, 1), tf.float64)
        code = tf.where(tf.equal(code, 0) & steep & (short > 0), 2, code)
    return code


def limit_message(code: int, path: tf.Tensor | str) -> tf.Tensor:
    """The pipeline's error text for :func:`limit_problem` code 1 or 2, naming ``path``."""
    if code == 1:
        most = int(_files.limit("MAX_IMAGE_PIXELS"))
        after = (
            f"': the file is over the limit of {most:,} pixels per image decoded "
            "(MAX_IMAGE_PIXELS; raise it with the environment variable TLKIT_MAX_IMAGE_PIXELS, "
            "or make the image smaller)"
        )
    else:
        most_ratio = _files.limit("MAX_CROP_ASPECT_RATIO")
        after = (
            f"': the file has an aspect ratio over the limit of {most_ratio:g}:1 for "
            "resize='crop' (MAX_CROP_ASPECT_RATIO, environment variable "
            "TLKIT_MAX_CROP_ASPECT_RATIO): use resize='pad' or 'stretch', or crop the file"
        )
    return tf.strings.join([_DECODE_ERROR + "cannot decode image file '", path, after])


def decode_checked(
    data: tf.Tensor, orientation: tf.Tensor, size: tuple[int, int], policy: str
) -> tf.Tensor:
    """Decode, resize and turn upright the file bytes ``data``: ``uint8 (H, W, 3)``.

    The caller has checked :func:`limit_problem`. Animated GIFs give their first
    frame only (decoded by Pillow); PNGs of every bit depth and colour type give
    Pillow's pixels, alpha composited over white.
    """
    _check_policy(policy)
    most = int(_files.limit("MAX_IMAGE_PIXELS"))
    target = tf.constant(size, tf.int32)
    o = tf.cast(orientation, tf.int32)
    stored_target = tf.where(_swaps_axes(o), tf.reverse(target, [0]), target)

    def then_resize(decode):
        def fn() -> tf.Tensor:
            image = decode(data)
            shape = tf.shape(image)
            nh, nw = _scaled_size(shape[0], shape[1], stored_target, policy)
            return _resize(image, nh, nw)

        return fn

    image = tf.switch_case(
        format_index(data),
        [
            lambda: _jpeg(data, stored_target, policy),
            then_resize(png_decode),
            then_resize(lambda d: gif_first_frame(d, most)),
            then_resize(_bmp),
            then_resize(_fail),
        ],
    )
    image = _finish(orient(image, o), target, policy)
    # Area, bilinear and alpha compositing all average pixels, so values stay
    # within [0, 255]: adding 0.5 and truncating rounds without a clip.
    image = tf.cast(image + 0.5, tf.uint8)
    image.set_shape([size[0], size[1], 3])
    return image


def load_image(
    path: tf.Tensor, orientation: tf.Tensor, size: tuple[int, int], policy: str
) -> tf.Tensor:
    """Read, decode, resize and turn upright one image file: ``uint8 (H, W, 3)``.

    Raises a TensorFlow error (without the path) when the file cannot be read or
    decoded, or is over a limit of :mod:`tlkit._files` (checked from the header
    before decoding); :func:`tlkit.data.to_dataset` turns that into an error
    naming the file. The caller checks that ``path`` is a regular file.
    """
    _check_policy(policy)
    data = tf.io.read_file(path)
    code = limit_problem(data, orientation, size, policy)
    check = tf.debugging.Assert(tf.equal(code, 0), ["image over a tlkit limit:", code])
    with tf.control_dependencies([check]):
        data = tf.identity(data)
    return decode_checked(data, orientation, size, policy)


# -- header parsing: format, stored size, PNG alpha; the first GIF frame -----------------
# Read from the first bytes of the file, before any pixel is decoded, so the pipeline can
# check the limits of tlkit._files before it allocates, and pick the PNG decoding that gives
# Pillow's pixels for every bit depth and colour type. GIFs: Pillow through tf.numpy_function
# (TensorFlow's decode_gif decodes every frame).

#: Most PNG chunks walked looking for ``tRNS`` before the image data.
_MAX_PNG_CHUNKS = 4096


def u32(data: tf.Tensor, offset: int) -> tf.Tensor:
    """Little-endian unsigned 32-bit integer at ``offset`` (as int32; missing bytes read as 0)."""
    raw = tf.io.decode_raw(tf.strings.substr(data, offset, 4), tf.uint8)
    raw = tf.cast(tf.pad(raw, [[0, 4 - tf.shape(raw)[0]]]), tf.int64)
    return tf.cast(raw[0] + raw[1] * 256 + raw[2] * 65536 + raw[3] * 16777216, tf.int32)


def u16(data: tf.Tensor, offset: int) -> tf.Tensor:
    """Little-endian unsigned 16-bit integer at ``offset`` (missing bytes read as 0)."""
    raw = tf.io.decode_raw(tf.strings.substr(data, offset, 2), tf.uint8)
    raw = tf.cast(tf.pad(raw, [[0, 2 - tf.shape(raw)[0]]]), tf.int32)
    return raw[0] + raw[1] * 256


def _be32(data: tf.Tensor, offset: tf.Tensor | int) -> tf.Tensor:
    """Big-endian unsigned 32-bit integer at ``offset``, as int64 (missing bytes read as 0)."""
    raw = tf.io.decode_raw(tf.strings.substr(data, offset, 4), tf.uint8)
    raw = tf.cast(tf.pad(raw, [[0, 4 - tf.shape(raw)[0]]]), tf.int64)
    return raw[0] * 16777216 + raw[1] * 65536 + raw[2] * 256 + raw[3]


def _byte(data: tf.Tensor, offset: int) -> tf.Tensor:
    raw = tf.io.decode_raw(tf.strings.substr(data, offset, 1), tf.uint8)
    return tf.cast(tf.pad(raw, [[0, 1 - tf.shape(raw)[0]]])[0], tf.int32)


def format_index(data: tf.Tensor) -> tf.Tensor:
    """0 JPEG, 1 PNG, 2 GIF, 3 BMP, 4 anything else."""
    head = tf.strings.substr(data, 0, 4)
    is_jpeg = tf.strings.substr(head, 0, 3) == b"\xff\xd8\xff"
    is_png = head == b"\x89PNG"
    is_gif = head == b"GIF8"
    is_bmp = tf.strings.substr(head, 0, 2) == b"BM"
    return tf.where(is_jpeg, 0, tf.where(is_png, 1, tf.where(is_gif, 2, tf.where(is_bmp, 3, 4))))


def stored_size(data: tf.Tensor, fmt: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(height, width)`` as int64 from the header, without decoding (0, 0 when unknown).

    PNG: IHDR; GIF: the logical screen (what Pillow and the decoder use); BMP:
    the info header (height may be negative for top-down files); JPEG:
    ``tf.io.extract_jpeg_shape``.
    """

    def jpeg() -> tf.Tensor:
        return tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64)

    def png() -> tf.Tensor:
        return tf.stack([_be32(data, 20), _be32(data, 16)])

    def gif() -> tf.Tensor:
        return tf.cast(tf.stack([u16(data, 8), u16(data, 6)]), tf.int64)

    def bmp() -> tf.Tensor:
        return tf.abs(tf.cast(tf.stack([u32(data, 22), u32(data, 18)]), tf.int64))

    def other() -> tf.Tensor:
        return tf.zeros((2,), tf.int64)

    hw = tf.switch_case(fmt, [jpeg, png, gif, bmp, other])
    return hw[0], hw[1]


def _png_has_trns(data: tf.Tensor) -> tf.Tensor:
    """True when a ``tRNS`` chunk comes before the first ``IDAT`` (where the PNG spec puts it)."""
    n = tf.cast(tf.strings.length(data), tf.int64)

    def cond(offset: tf.Tensor, found: tf.Tensor, done: tf.Tensor) -> tf.Tensor:
        return tf.logical_not(done) & (offset + 8 <= n)

    def body(offset: tf.Tensor, found: tf.Tensor, done: tf.Tensor):
        kind = tf.strings.substr(data, offset + 4, tf.constant(4, tf.int64))
        is_trns = tf.equal(kind, b"tRNS")
        end = is_trns | tf.equal(kind, b"IDAT") | tf.equal(kind, b"IEND")
        return offset + 12 + _be32(data, offset), is_trns, end

    start = (tf.constant(8, tf.int64), tf.constant(False), tf.constant(False))
    _, found, _ = tf.while_loop(cond, body, start, maximum_iterations=_MAX_PNG_CHUNKS)
    return found


def png_decode(data: tf.Tensor) -> tf.Tensor:
    """A PNG of any bit depth and colour type to float RGB in [0, 255], alpha over white.

    ``tf.io.decode_png(channels=4)`` gives a wrong alpha for 1-, 2- and 4-bit
    grayscale and palette PNGs without transparency (the low-bit maximum, so
    compositing erases the picture); those, and every PNG without an alpha
    channel or ``tRNS`` chunk, are decoded as RGB. 16-bit PNGs are decoded at
    16 bits and rounded once, 8-bit and lower at 8 bits.
    """
    depth = _byte(data, 24)
    colour = _byte(data, 25)
    alpha = tf.equal(colour, 4) | tf.equal(colour, 6) | _png_has_trns(data)
    index = tf.where(alpha, 2, 0) + tf.where(tf.equal(depth, 16), 1, 0)

    def rgb(dtype: tf.DType, scale: float):
        def fn() -> tf.Tensor:
            x = tf.cast(tf.io.decode_png(data, channels=3, dtype=dtype), tf.float32)
            return x if scale == 1.0 else x * scale

        return fn

    def rgba(dtype: tf.DType, scale: float):
        def fn() -> tf.Tensor:
            x = tf.cast(tf.io.decode_png(data, channels=4, dtype=dtype), tf.float32) * scale
            a = x[..., 3:] * (1.0 / 255.0)
            return x[..., :3] * a + 255.0 * (1.0 - a)

        return fn

    branches = [
        rgb(tf.uint8, 1.0),
        rgb(tf.uint16, 1.0 / 257.0),
        rgba(tf.uint8, 1.0),
        rgba(tf.uint16, 1.0 / 257.0),
    ]
    return tf.switch_case(index, branches)


def _first_frame(data: bytes | np.ndarray, max_pixels: int) -> np.ndarray:
    from PIL import Image

    raw = data.item() if isinstance(data, np.ndarray) else data
    with Image.open(io.BytesIO(raw)) as im:
        # Pillow grows the size when the first frame reaches past the logical screen.
        if im.size[0] * im.size[1] > max_pixels:
            raise ValueError(f"GIF frame of {im.size[0]}x{im.size[1]} is over {max_pixels} pixels")
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def gif_first_frame(data: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """The first frame of a (possibly animated) GIF as ``uint8 (H, W, 3)``, as Pillow gives it.

    Decoded with Pillow: ``tf.io.decode_gif`` decodes every frame (a 200-frame
    1000x1000 GIF of 369 KB would take 600 MB). The caller checks the logical
    screen size against the pixel limit first; a first frame that reaches past
    the screen is checked here against ``max_pixels``.
    """
    image = tf.numpy_function(
        lambda raw: _first_frame(raw, max_pixels), [data], tf.uint8, stateful=False
    )
    image.set_shape([None, None, 3])
    return image


# -- the pipeline's decoding map ---------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _decoder(size: tuple[int, int], policy: str, limits: tuple[int, float]):
    """The decoding map's function for these settings, traced once per process.

    Tracing it (every format's branch, the limits, the orientation) takes about a
    second; each ``tf.data`` map would trace it again, so every dataset a fit builds
    (training, validation, each cache pass) paid it. As a ``tf.function`` kept
    here, each map traces a call to it instead. ``limits`` (the pixel and aspect
    ratio limits of :mod:`tlkit._files` when the pipeline was built) key it
    because they are read while tracing.
    """
    del limits  # read again while tracing, under the same environment

    @tf.function
    def decode(position, previous, path, orientation, label):
        blank = tf.zeros((size[0], size[1], 3), tf.uint8)

        def read() -> tuple[tf.Tensor, tf.Tensor]:
            data = tf.io.read_file(path)
            code = limit_problem(data, orientation, size, policy)
            image = tf.cond(
                tf.equal(code, 0),
                lambda: decode_checked(data, orientation, size, policy),
                lambda: blank,
            )
            return image, code

        image, code = tf.cond(label >= 0, read, lambda: (blank, tf.constant(0)))
        return position, previous, path, image, label, code

    return decode


def decode_stage(
    ds: tf.data.Dataset, size: tuple[int, int], policy: str, parallel: int
) -> tf.data.Dataset:
    """``(path, orientation, label)`` to ``(uint8 image, label)``, in order, in parallel.

    A decode error inside a ``map`` is a bare TensorFlow error without the file
    name, and a ``tf.data`` pipeline has no ``try``. So the decoding map ignores
    errors, and a scan after it checks that no element went missing: each
    element carries its position and the path of the element before it, and
    an end marker closes the stream. When a position is skipped, the file
    before the first element that did arrive failed: the scan raises an error
    naming it, saying whether it is missing or undecodable. An image over a
    limit of :mod:`tlkit._files` (pixels, crop aspect ratio) is not decoded:
    the header is checked first and the scan raises an error naming the file
    and the limit. The successful path costs one counter per image.
    """
    end = tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(1), tf.constant(-1)))

    def number(state: tuple[tf.Tensor, tf.Tensor], element: tuple[tf.Tensor, ...]):
        position, previous = state
        path, orientation, label = element
        return (position + 1, path), (position, previous, path, orientation, label)

    # The limits are read when the graph is built: they are part of the decoder's key.
    limits = (int(_files.limit("MAX_IMAGE_PIXELS")), float(_files.limit("MAX_CROP_ASPECT_RATIO")))
    decode = _decoder(tuple(size), policy, limits)

    def check(expected: tf.Tensor, element: tuple[tf.Tensor, ...]):
        position, previous, path, image, label, code = element

        def fail() -> tf.Tensor:
            readable = (
                tf.data.Dataset.from_tensors(previous)
                .map(lambda p: tf.strings.length(tf.io.read_file(p)))
                .ignore_errors()
                .reduce(tf.constant(0), lambda count, _: count + 1)
            )
            message = tf.where(
                readable > 0,
                decode_error_message("corrupt", previous),
                decode_error_message("missing", previous),
            )
            with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
                return tf.identity(image)

        def over(kind: int):
            def fn() -> tf.Tensor:
                message = limit_message(kind, path)
                assertion = tf.debugging.Assert(False, [message], summarize=1)
                with tf.control_dependencies([assertion]):
                    return tf.identity(image)

            return fn

        image = tf.cond(tf.equal(position, expected), lambda: image, fail)
        image = tf.switch_case(code, [lambda: image, over(1), over(2)])
        return position + 1, (image, label)

    ds = ds.concatenate(end).scan((tf.constant(0, tf.int64), tf.constant("")), number)
    ds = ds.map(decode, num_parallel_calls=parallel, deterministic=True).ignore_errors()
    ds = ds.scan(tf.constant(0, tf.int64), check)
    return ds.filter(lambda image, label: label >= 0)
