"""A PNG grid of original images and augmented versions of them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from tlkit._validation import check_image_size, check_int, check_seed, type_name
from tlkit.data import Sample, SplitPart, decode_errors, to_dataset
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.augment._pipeline import AugmentationPipeline

__all__ = ["draw_preview"]


def draw_preview(
    pipeline: AugmentationPipeline,
    source: SplitPart | Sequence[Sample] | tf.data.Dataset | np.ndarray,
    n: int = 16,
    path: str | os.PathLike[str] = "augmentations.png",
    *,
    per_image: int = 4,
    image_size: int | tuple[int, int] = 224,
    root: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    resize: str = "stretch",
) -> Path:
    """Draw :meth:`tlkit.AugmentationPipeline.preview`'s grid (the one implementation)."""
    n = check_int("n", n, minimum=1)
    per_image = check_int("per_image", per_image, minimum=1)
    seed = check_seed("seed", seed, allow_none=True)
    image_size = check_image_size("image_size", image_size)
    rows = math.ceil(n / per_image)
    originals, labels, names = _originals(source, rows, image_size, root, resize)
    rows = len(originals)
    if rows == 0:
        raise DatasetError("preview needs at least one image; the source is empty")

    batch = np.repeat(originals, per_image, axis=0)
    onehot = None
    if pipeline.mixes_labels:
        k = max(len(names), int(labels.max()) + 1 if labels.size else 1)
        onehot = np.eye(k, dtype=np.float32)[np.repeat(labels, per_image)]
    aug_seed = seed if seed is not None else pipeline.seed
    augmented, _ = pipeline.apply(batch, onehot, seed=aug_seed)
    augmented = np.asarray(augmented).reshape((rows, per_image, *augmented.shape[1:]))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 1 + per_image
    fig = Figure(figsize=(1.9 * cols, 1.9 * rows + 0.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        tiles = [originals[r], *augmented[r]]
        for c, tile in enumerate(tiles):
            ax = axes[r][c]
            ax.imshow(np.clip(np.asarray(tile, np.float32) / 255.0, 0.0, 1.0))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("original" if c == 0 else f"augmented {c}", fontsize=9)
        if names and 0 <= int(labels[r]) < len(names):
            axes[r][0].set_ylabel(names[int(labels[r])], fontsize=9)
    fig.tight_layout(pad=0.3)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _originals(
    source: SplitPart | Sequence[Sample] | tf.data.Dataset | np.ndarray,
    rows: int,
    image_size: int | tuple[int, int],
    root: str | os.PathLike[str] | None,
    resize: str,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Up to ``rows`` images ``(N, H, W, 3)`` float32 in [0, 255], their labels, class names."""
    if isinstance(source, np.ndarray) or tf.is_tensor(source):
        images = np.asarray(source, dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise InvalidArgumentError(f"images must have shape (N, H, W, 3), got {images.shape}")
        return images[:rows], np.zeros(min(rows, len(images)), np.int64), ()
    if isinstance(source, tf.data.Dataset):
        return _from_dataset(source, rows)
    if isinstance(source, SplitPart) or (
        isinstance(source, Sequence) and all(isinstance(s, Sample) for s in source)
    ):
        items = list(source)
        if not items:
            return np.zeros((0, 1, 1, 3), np.float32), np.zeros(0, np.int64), ()
        # Spread the picks over the (class-sorted) list so several classes show.
        picks = np.unique(np.linspace(0, len(items) - 1, min(rows, len(items))).round().astype(int))
        if isinstance(source, SplitPart):
            chosen: SplitPart | list[Sample] = SplitPart(
                source.name, source.root, source.class_names, tuple(items[i] for i in picks)
            )
            names = source.class_names
        else:
            chosen = [items[i] for i in picks]
            names = ()
        ds = to_dataset(
            chosen,
            image_size=image_size,
            batch_size=len(picks),
            resize=resize,
            root=root,
        )
        with decode_errors():
            images, labels = next(iter(ds))
        return images.numpy(), labels.numpy(), names
    raise ArgumentTypeError(
        "source must be a SplitPart, a list of Sample, a tf.data.Dataset or an image array, "
        f"got {type_name(source)}"
    )


def _from_dataset(ds: tf.data.Dataset, rows: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    images: list[np.ndarray] = []
    labels: list[int] = []
    with decode_errors():
        for element in ds:
            x, y = (
                (element[0], element[1]) if isinstance(element, (tuple, list)) else (element, None)
            )
            x = np.asarray(x, dtype=np.float32)
            if x.ndim == 3:
                x = x[None]
                y = None if y is None else np.asarray(y)[None]
            if y is not None:
                y = np.asarray(y)
                y = y.argmax(-1) if y.ndim == 2 else y
            for i in range(len(x)):
                images.append(x[i])
                labels.append(int(y[i]) if y is not None else 0)
                if len(images) == rows:
                    return np.stack(images), np.asarray(labels), ()
    if not images:
        return np.zeros((0, 1, 1, 3), np.float32), np.zeros(0, np.int64), ()
    return np.stack(images), np.asarray(labels), ()
