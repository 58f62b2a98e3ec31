"""What ``FineTuner.predict`` and ``evaluate`` accept and return."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlkit.data import SplitPart
from tlkit.errors import ScheduleError
from tlkit.finetune._data import as_data, paths_part

__all__ = ["Predictions", "as_pixels", "batches"]


class Predictions:
    """Class predictions: ``labels`` (names), ``indices`` and ``probabilities`` (n x K)."""

    def __init__(self, probabilities: np.ndarray, class_names: Sequence[str]) -> None:
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.indices = np.argmax(self.probabilities, axis=1) if len(self.probabilities) else []
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.class_names = list(class_names)
        self.labels = [self.class_names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Any:  # labels, probabilities = tuner.predict(...)
        return iter((self.labels, self.probabilities))

    def __repr__(self) -> str:
        return f"Predictions({len(self)} images, classes={self.class_names})"


def as_pixels(
    data: Any, image_size: tuple[int, int], batch_size: int
) -> tuple[Any, np.ndarray | None]:
    """A batched dataset of images at ``image_size``, and their labels when known."""
    import tensorflow as tf

    bs = batch_size
    if isinstance(data, (str, os.PathLike)):
        p = Path(data)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        data = [str(q) for q in files]
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (str, os.PathLike)):
        part = paths_part(data)
        return part.to_dataset(image_size, batch_size=bs, check_files=False), None
    if isinstance(data, SplitPart):
        return data.to_dataset(image_size, batch_size=bs, shuffle=False), data.labels
    if hasattr(data, "element_spec"):
        d = as_data(data, "data")
        return d.dataset.map(lambda *e: e[0]), d.labels()
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ScheduleError(
            f"images must be an array (n, height, width, 3) of raw RGB in [0, 255], got "
            f"shape {arr.shape}"
        )
    if tuple(arr.shape[1:3]) != tuple(image_size):
        arr = tf.image.resize(arr, image_size).numpy()
    return tf.data.Dataset.from_tensor_slices(arr).batch(bs), None


def batches(ds: Any) -> Any:
    """The image batches of a dataset (of images, or of ``(images, labels)`` pairs)."""
    for x in ds.as_numpy_iterator():
        yield x[0] if isinstance(x, tuple) else x
