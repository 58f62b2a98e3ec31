"""A trained model as compare and export read it: the Keras model inside, its input size, its cost.

A trained model is a ``keras.Model`` or an object whose ``.model`` is one (a
:class:`~tlkit.protocols.TrainedClassifier` such as a FineTuner), found by duck
typing so that neither reader imports ``tlkit.finetune``. Nothing here imports
Keras: an object can only be a ``keras.Model`` once Keras has been imported.
Sizes on disk and latencies are measured the same way for every report.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tlkit._validation import type_name
from tlkit.errors import ArgumentTypeError

__all__ = [
    "as_keras_model",
    "input_image_size",
    "keras_file_size",
    "latency_ms",
    "size_on_disk",
    "unwrap",
]


def as_keras_model(obj: Any) -> Any:
    """``obj`` if it is a ``keras.Model``, else ``None`` (Keras is not imported for this)."""
    keras = sys.modules.get("keras")  # a keras model exists only if keras was imported
    if obj is not None and keras is not None and isinstance(obj, keras.Model):
        return obj
    return None


def unwrap(obj: Any, *, hint: str = "") -> tuple[Any, Any]:
    """``(keras model, the object holding it or None)``, or raise ArgumentTypeError.

    ``hint`` ends the error message (what the caller offers instead).
    """
    model = as_keras_model(obj)
    if model is not None:
        return model, None
    inner = getattr(obj, "model", None)
    model = as_keras_model(inner)
    if model is not None:
        return model, obj
    raise ArgumentTypeError(
        "model must be a keras.Model or an object whose .model is one (a "
        f"tlkit.protocols.TrainedClassifier such as a FineTuner), got {type_name(obj)}"
        + (f" whose .model is {type_name(inner)}" if inner is not None else "")
        + hint
    )


def input_image_size(
    model: Any,
    error: type[Exception],
    *,
    what: str = "the model",
    hint: str = "",
    rgb: bool = False,
) -> tuple[int, int]:
    """The ``(height, width)`` a Keras model takes, or raise ``error``.

    The input must be ``(batch, height, width, channels)`` with a fixed height
    and width, and 3 channels when ``rgb``. ``what`` names the model in the
    message and ``hint`` ends it.
    """
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list) or shape is None or len(shape) != 4 or None in shape[1:3]:
        raise error(
            f"{what} must take images of a fixed size (batch, height, width, channels); its "
            f"input shape is {shape}{hint}"
        )
    if rgb and shape[3] != 3:
        raise error(f"{what} must take RGB images (3 channels); its input shape is {shape}")
    return int(shape[1]), int(shape[2])


def size_on_disk(path: str | os.PathLike[str]) -> int:
    """Bytes of a file, or of every file under a folder (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def keras_file_size(model: Any) -> tuple[int | None, str | None]:
    """Bytes of the model saved as ``.keras``, or ``(None, why not)``."""
    with tempfile.TemporaryDirectory(prefix="tlkit-size-") as d:
        path = Path(d) / "model.keras"
        try:
            model.save(path)
        except Exception as exc:  # custom layers without get_config, lambdas, ...
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return size_on_disk(path), None


def latency_ms(predict: Callable[[Any], Any], batch: Any, runs: int) -> float:
    """Milliseconds per image of ``predict(batch)``: the median of ``runs`` timed calls.

    One untimed call first takes tracing and allocation out of the figure.
    """
    predict(batch)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(batch) * 1000.0
