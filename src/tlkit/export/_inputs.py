"""What export() and check_export() read: the accepted formats, the model's temperature, the data.

The argument checks are :mod:`tlkit._validation`'s (``check_choice("quantize",
quantize, QUANTIZATIONS)``, ...); data or a model state that cannot be used
raises :class:`~tlkit.errors.ExportError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tlkit._validation import check_number
from tlkit.errors import ExportError

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "batches",
    "temperature_of",
]

FORMATS = ("litert", "onnx", "saved_model")
QUANTIZATIONS = (None, "dynamic", "float16", "int8")


def temperature_of(obj: Any) -> float | None:
    """The calibration temperature of a FineTuner (``FineTuner.calibrate``), else None."""
    import keras

    if isinstance(obj, keras.Model):
        return None
    from tlkit._calibration import MAX_TEMPERATURE, MIN_TEMPERATURE

    return check_number(
        "model.temperature",
        getattr(obj, "temperature", None),
        low=MIN_TEMPERATURE,
        high=MAX_TEMPERATURE,
        allow_none=True,
        error=ExportError,
    )


def batches(data: Any, size: tuple[int, int], batch_size: int) -> Iterator[tuple[Any, Any]]:
    """(float32 images (B, H, W, 3), int labels (B,) or None) from any accepted data form."""
    if hasattr(data, "to_dataset") and hasattr(data, "labels"):  # SplitPart
        ds = data.to_dataset(image_size=size, batch_size=batch_size, shuffle=False)
        yield from _from_dataset(ds, batch_size)
        return
    if hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator"):
        yield from _from_dataset(data, batch_size)
        return
    if isinstance(data, tuple) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) != len(y):
            raise ExportError(f"(images, labels) hold {len(x)} images but {len(y)} labels")
    else:
        x, y = np.asarray(data), None
    if x.ndim != 4 or x.shape[1:] != (*size, 3):
        raise ExportError(
            f"images must have shape (n, {size[0]}, {size[1]}, 3) like the model input; got "
            f"{x.shape}"
        )
    for i in range(0, len(x), batch_size):
        yb = None if y is None else _labels(y[i : i + batch_size])
        yield x[i : i + batch_size].astype(np.float32), yb


def _from_dataset(ds: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    spec = ds.element_spec
    first = spec[0] if isinstance(spec, tuple) else spec
    if first.shape.rank == 3:
        ds = ds.batch(batch_size)
    for el in ds.as_numpy_iterator():
        if isinstance(el, tuple):
            yield np.asarray(el[0], np.float32), (_labels(el[1]) if len(el) > 1 else None)
        else:
            yield np.asarray(el, np.float32), None


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        return np.argmax(y, axis=1)
    return y.reshape(-1).astype(np.int64)
