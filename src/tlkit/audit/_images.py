"""The split's images as the audit reads them: in one order, decoded, and as features."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._files import open_image
from tlkit._validation import check_image_size
from tlkit.data import Sample, Split
from tlkit.errors import AuditError

__all__ = ["AuditImages", "FeatureSource", "features_of", "load_images"]

FeatureSource = Callable[[np.ndarray], np.ndarray] | np.ndarray | None


@dataclass(frozen=True)
class AuditImages:
    """The split's images in one order (train, then val, then test), as every check reads them."""

    split: Split
    items: list[tuple[str, Sample]]  # (part name, sample)
    paths: list[str]  # absolute
    names: tuple[str, ...]
    labels: np.ndarray

    @classmethod
    def of(cls, split: Split) -> AuditImages:
        items = [(name, s) for name, part in split.parts.items() for s in part]
        paths = [str(Path(split.root, *s.path.split("/"))) for _, s in items]
        labels = np.array([s.label for _, s in items], dtype=np.int64)
        return cls(split, items, paths, tuple(split.class_names), labels)


def load_images(
    paths: list[str], size: int | tuple[int, int], workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode files as ``uint8`` RGB arrays resized to ``size``: an int (square) or ``(height, width)``.

    Returns
    -------
    images : array of uint8, shape (n, height, width, 3)
        Black for files that cannot be decoded.
    ok : array of bool, shape (n,)

    Examples
    --------
    >>> load_images([], 32)[0].shape, load_images([], (24, 32))[0].shape
    ((0, 32, 32, 3), (0, 24, 32, 3))
    """
    height, width = check_image_size("size", size)
    out = np.zeros((len(paths), height, width, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)

    def one(path: str) -> np.ndarray | None:
        from PIL import Image, ImageOps

        try:
            with open_image(path) as im:
                im.draft("RGB", (width * 2, height * 2))
                im = ImageOps.exif_transpose(im).convert("RGB")
                return np.asarray(
                    im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8
                )
        except Exception:  # reported through ``ok``
            return None

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        for i, arr in enumerate(pool.map(one, paths)):
            if arr is not None:
                out[i] = arr
                ok[i] = True
    return out, ok


def features_of(
    paths: list[str],
    features: FeatureSource,
    backbone: str | None,
    weights: Any,
    image_size: tuple[int, int] | None,
    batch_size: int,
    workers: int | None,
) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None, str]:
    """Features of the images at ``paths``: ``(features, size, decoded, source)``.

    ``features`` as given (an array), or computed by the callable or ``backbone``
    in batches of images resized to ``size``; ``decoded`` says which rows could be
    decoded (``None`` for an array); ``source`` describes them for the report.
    """
    image_size = check_image_size("image_size", image_size, allow_none=True)
    if isinstance(features, np.ndarray) or (
        features is not None and not callable(features) and hasattr(features, "__len__")
    ):
        arr = np.asarray(features, dtype=np.float32)
        if arr.ndim != 2 or len(arr) != len(paths):
            raise AuditError(
                f"features has shape {arr.shape}; expected ({len(paths)}, D): one row per image "
                "of split.train, then split.val, then split.test"
            )
        if not np.isfinite(arr).all():
            raise AuditError("features contains NaN or infinite values")
        return arr, image_size or (224, 224), None, f"precomputed array {arr.shape}"
    if features is not None and callable(features):
        fn = features
        size = image_size or (224, 224)
        source = (
            f"callable {getattr(features, '__name__', type(features).__name__)} at {_px(size)} px"
        )
    else:
        from tlkit.backbones import get_backbone

        bb = get_backbone(str(backbone), weights=weights, image_size=image_size)
        size = (int(bb.image_size[0]), int(bb.image_size[1]))
        model = bb.model

        def fn(x: np.ndarray) -> np.ndarray:
            return np.asarray(model(x.astype(np.float32), training=False))

        source = (
            f"{backbone} ({'random init' if weights is None else weights}) at {_px(size)} px, "
            "pooled"
        )
    rows: list[np.ndarray] = []
    oks: list[np.ndarray] = []
    for a in range(0, len(paths), batch_size):
        imgs, ok = load_images(paths[a : a + batch_size], size, workers)
        f = np.asarray(fn(imgs), dtype=np.float32)
        if f.ndim != 2 or len(f) != len(imgs):
            raise AuditError(
                f"the feature function returned shape {f.shape} for a batch of {len(imgs)} "
                "images; it must return (batch, D)"
            )
        rows.append(f)
        oks.append(ok)
    if not rows:
        return np.zeros((0, 1), np.float32), size, np.zeros(0, bool), source
    feats = np.concatenate(rows)
    if not np.isfinite(feats).all():
        raise AuditError("the features contain NaN or infinite values")
    return feats, size, np.concatenate(oks), source


def _px(size: tuple[int, int]) -> str:
    """``160`` for a square size, ``96x128`` (height x width) for another."""
    return str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"
