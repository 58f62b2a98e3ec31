"""In-graph image header parsing for the input pipeline: format, stored size, PNG alpha.

Read from the first bytes of the file, before any pixel is decoded, so the
pipeline can check the limits of :mod:`tlkit._files` before it allocates, and
pick the PNG decoding that gives Pillow's pixels for every bit depth and colour
type. Also the first-frame GIF decoder (Pillow, through ``tf.numpy_function``:
TensorFlow's ``decode_gif`` decodes every frame). Importing this module imports
TensorFlow.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf

__all__ = ["format_index", "gif_first_frame", "png_decode", "stored_size", "u16", "u32"]

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
