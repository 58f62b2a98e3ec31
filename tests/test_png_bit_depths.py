"""Every PNG bit depth and colour type decodes as Pillow decodes it (issue 18, finding 2).

pngquant and optipng write 1-, 2- and 4-bit grayscale and palette PNGs;
``tf.io.decode_png(channels=4)`` gave them an alpha of the low-bit maximum, so
compositing over white erased the picture. Each type is generated here with
Pillow (or written by hand where Pillow cannot: 16-bit colour and grayscale +
alpha) and compared with Pillow's pixels, alpha composited over white.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from tlkit import Sample  # noqa: E402
from tlkit.data import to_dataset  # noqa: E402
from tlkit.data._decode import load_image  # noqa: E402

H, W = 10, 12
_RNG = np.random.default_rng(7)
GRAY = _RNG.integers(0, 256, (H, W), dtype=np.uint8)
RGB = _RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
ALPHA = _RNG.integers(0, 256, (H, W), dtype=np.uint8)
G16 = _RNG.integers(0, 65536, (H, W), dtype=np.uint16)
RGB16 = _RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
A16 = _RNG.integers(0, 65536, (H, W), dtype=np.uint16)


def _raw_png(path: Path, arr: np.ndarray, colour_type: int) -> None:
    """Write a 16-bit PNG of any colour type (Pillow writes 16 bits for grayscale only)."""
    arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _levels(bits: int) -> Image.Image:
    """A grayscale image using only the 2**bits levels a ``bits``-bit PNG can hold."""
    step = 255 // (2**bits - 1)
    return Image.fromarray(((GRAY >> (8 - bits)) * step).astype(np.uint8), "L")


def _palette(bits: int) -> Image.Image:
    return Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=2**bits)


MAKERS: dict[str, Callable[[Path], None]] = {
    "1-bit gray (mode 1)": lambda p: Image.fromarray(GRAY > 127).save(p),
    "1-bit gray, tRNS": lambda p: Image.fromarray(GRAY > 127).save(p, transparency=0),
    "2-bit gray": lambda p: _levels(2).save(p, bits=2),
    "4-bit gray": lambda p: _levels(4).save(p, bits=4),
    "2-bit gray, tRNS": lambda p: _levels(2).save(p, bits=2, transparency=0),
    "4-bit gray, tRNS": lambda p: _levels(4).save(p, bits=4, transparency=0),
    "1-bit palette": lambda p: _palette(1).save(p, bits=1),
    "2-bit palette": lambda p: _palette(2).save(p, bits=2),
    "4-bit palette": lambda p: _palette(4).save(p, bits=4),
    "1-bit palette, tRNS": lambda p: _palette(1).save(p, bits=1, transparency=0),
    "2-bit palette, tRNS": lambda p: _palette(2).save(p, bits=2, transparency=1),
    "4-bit palette, tRNS": lambda p: _palette(4).save(p, bits=4, transparency=3),
    "8-bit palette, tRNS": lambda p: _palette(8).save(p, transparency=5),
    "8-bit gray": lambda p: Image.fromarray(GRAY).save(p),
    "8-bit gray, tRNS": lambda p: Image.fromarray(GRAY).save(p, transparency=int(GRAY[0, 0])),
    "8-bit RGB, tRNS": lambda p: Image.fromarray(RGB).save(
        p, transparency=tuple(int(v) for v in RGB[0, 0])
    ),
    "8-bit gray+alpha": lambda p: Image.fromarray(np.dstack([GRAY, ALPHA]), "LA").save(p),
    "8-bit RGBA": lambda p: Image.fromarray(np.dstack([RGB, ALPHA]), "RGBA").save(p),
    "16-bit gray (I;16)": lambda p: Image.fromarray(G16).save(p),
    "16-bit gray+alpha": lambda p: _raw_png(p, np.dstack([G16, A16]), 4),
    "16-bit RGB": lambda p: _raw_png(p, RGB16, 2),
    "16-bit RGBA": lambda p: _raw_png(p, np.dstack([RGB16, A16]), 6),
}


def pillow_reference(path: Path) -> np.ndarray:
    """Pillow's pixels as tlkit documents them: RGB, alpha composited over white, 8 bits.

    Pillow reads 16-bit grayscale as ``I;16`` (scaled here by 1/257, rounded);
    other 16-bit PNGs it reads at 8 bits already.
    """
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            gray = np.round(np.asarray(im).astype(np.float64) / 257.0)
            return np.repeat(gray[..., None], 3, axis=-1)
        rgba = np.asarray(im.convert("RGBA")).astype(np.float64)
    a = rgba[..., 3:] / 255.0
    return rgba[..., :3] * a + 255.0 * (1.0 - a)


def _exact16(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    rgb = rgb.reshape(H, W, -1).astype(np.float64) / 257.0
    a = alpha.astype(np.float64)[..., None] / 65535.0
    return np.broadcast_to(rgb * a + 255.0 * (1.0 - a), (H, W, 3))


#: 16-bit PNGs with alpha, composited at full precision: Pillow reads them at 8 bits
#: (``v >> 8``, alpha too) before compositing, so it may be 2 levels off the exact value.
EXACT16 = {
    "16-bit gray+alpha": _exact16(G16, A16),
    "16-bit RGBA": _exact16(RGB16, A16),
}


def _tolerance(name: str) -> int:
    return 2 if name in EXACT16 else 1


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pngs")
    out = {}
    for i, (name, make) in enumerate(MAKERS.items()):
        out[name] = d / f"{i:02d}.png"
        make(out[name])
    return out


def _decode(path: Path) -> np.ndarray:
    return load_image(tf.constant(str(path)), 1, (H, W), "stretch").numpy().astype(np.float64)


def test_the_generated_files_have_the_bit_depths_they_claim(pngs: dict[str, Path]) -> None:
    for name, path in pngs.items():
        data = path.read_bytes()
        depth, colour = data[24], data[25]
        assert f"{depth}-bit" in name, (name, depth)
        assert ("tRNS" in name) == (b"tRNS" in data[: data.index(b"IDAT")]), name
        assert colour == (3 if "palette" in name else colour), name


@pytest.mark.parametrize("name", list(MAKERS))
def test_png_decodes_like_pillow(pngs: dict[str, Path], name: str) -> None:
    ref = pillow_reference(pngs[name])
    got = _decode(pngs[name])
    err = np.abs(got - ref).max()
    tol = _tolerance(name)
    assert err <= tol, f"{name}: max abs difference {err} from Pillow (mean {got.mean():.1f})"
    if name in EXACT16:
        assert np.abs(got - EXACT16[name]).max() <= 1, name


def test_one_bit_black_png_stays_black(tmp_path: Path) -> None:
    """The issue's case: a 1-bit black image had a pipeline mean of 254 (Pillow: 0)."""
    path = tmp_path / "black.png"
    Image.new("1", (32, 24), 0).save(path)
    with Image.open(path) as im:
        assert im.mode == "1" and np.asarray(im.convert("RGB")).mean() <= 8
    ds = to_dataset([Sample("black.png", 0)], image_size=(24, 32), batch_size=1, root=tmp_path)
    images, _ = next(iter(ds))
    assert float(images.numpy().mean()) <= 8


def test_to_dataset_gives_pillow_pixels_for_every_type(pngs: dict[str, Path]) -> None:
    names = list(MAKERS)
    root = next(iter(pngs.values())).parent
    samples = [Sample(pngs[n].name, 0) for n in names]
    ds = to_dataset(samples, image_size=(H, W), batch_size=len(names), root=root)
    images, _ = next(iter(ds))
    for name, image in zip(names, images.numpy().astype(np.float64), strict=True):
        err = np.abs(image - pillow_reference(pngs[name])).max()
        assert err <= _tolerance(name), f"{name}: max abs difference {err} from Pillow"
