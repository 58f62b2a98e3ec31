"""Generated images for the audit tests: distinct textures and planted near-duplicates."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tlkit.data import Sample, Split
from tlkit.data._scan import inspect_file
from tlkit.data._split import parts_from_assignment

VARIANTS = ("resized", "jpeg", "crop", "grey")


def texture(rng: np.random.Generator, size: int = 96) -> Image.Image:
    """Smoothed RGB noise at three scales: distinct images look distinct at any scale."""
    acc = np.zeros((size, size, 3))
    for s in (4, 8, 16):
        n = rng.normal(size=(s, s, 3))
        n = ((n - n.min()) / np.ptp(n) * 255).astype(np.uint8)
        acc += np.asarray(Image.fromarray(n).resize((size, size), Image.BICUBIC), float) / (s / 4)
    acc = (acc - acc.min()) / np.ptp(acc) * 255
    return Image.fromarray(acc.astype(np.uint8))


def variant(im: Image.Image, kind: str) -> Image.Image:
    """A planted near-duplicate of ``im``."""
    w, h = im.size
    if kind == "resized":
        return im.resize((w // 2, h // 2), Image.BILINEAR)
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=20)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "crop":  # 5% off each dimension, centred
        dx, dy = round(w * 0.05), round(h * 0.05)
        return im.crop((dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2)))
    if kind == "grey":
        return ImageOps.grayscale(im).convert("RGB")
    raise ValueError(kind)


def planted_folder(
    root: Path, n_distinct: int = 40, seed: int = 0
) -> tuple[Path, list[tuple[str, str, str]]]:
    """Two classes of distinct textures plus one planted copy of each kind per class.

    Returns the root and ``(original, copy, kind)`` relative paths.
    """
    rng = np.random.default_rng(seed)
    planted = []
    for c, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_distinct):
            texture(rng).save(root / cls / f"img_{i:03d}.png")
        for k, kind in enumerate(VARIANTS):
            src = f"{cls}/img_{k + 4 * c:03d}.png"
            dst = f"{cls}/copy_{kind}.png"
            variant(Image.open(root / src).convert("RGB"), kind).save(root / dst)
            planted.append((src, dst, kind))
    return root, planted


def split_with(
    root: Path, parts: dict[str, list[tuple[str, int]]], names: tuple[str, ...]
) -> Split:
    """A Split whose parts are exactly as given (``{"train": [(path, label)], ...}``)."""
    assigned: dict[str, list[Sample]] = {}
    for part, rows in parts.items():
        out = []
        for rel, label in rows:
            info = inspect_file(root / rel)
            out.append(Sample(rel, label, info.sha256, info.orientation, info.width, info.height))
        assigned[part] = out
    p = parts_from_assignment(root, names, assigned)
    return Split(root, names, p["train"], p["val"], p["test"])


def thumb_features(x: np.ndarray) -> np.ndarray:
    """8 x 8 grey thumbnail: survives a 5% crop, tells distinct textures apart."""
    b, s = len(x), x.shape[1]
    g = x.astype(np.float32).mean(axis=3)
    return g.reshape(b, 8, s // 8, 8, s // 8).mean(axis=(2, 4)).reshape(b, -1)


def colour_features(x: np.ndarray) -> np.ndarray:
    """Mean colour of a 4 x 4 grid: separates the classes of ``make_synthetic_dataset``."""
    b, s = len(x), x.shape[1]
    return x.astype(np.float32).reshape(b, 4, s // 4, 4, s // 4, 3).mean(axis=(2, 4)).reshape(b, -1)
