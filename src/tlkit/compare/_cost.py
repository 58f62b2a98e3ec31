"""What a model costs: parameters, size on disk, latency, and the machine it was measured on."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from typing import Any

import numpy as np

from tlkit._keras_model import keras_file_size, latency_ms, size_on_disk
from tlkit._validation import check_int, check_path
from tlkit.compare._report import Cost
from tlkit.errors import ComparisonError

__all__ = [
    "count_params",
    "exported_cost",
    "keras_cost",
    "latencies",
    "machine",
    "tflite_size",
]


def tflite_size(name: str, path: str | os.PathLike[str] | None) -> int | None:
    """Bytes of a model's ``.tflite`` file (``None`` without one); a missing file is refused."""
    p = check_path("tflite_path", path, allow_none=True)
    if p is None:
        return None
    if not p.is_file():
        raise ComparisonError(f"tflite_path {str(p)!r} of model {name!r} is not a file")
    return size_on_disk(p)


def keras_cost(
    model: Any,
    sample: np.ndarray,
    *,
    predict_time_s: float,
    tflite_size_bytes: int | None,
    train_time_s: float | None,
    measure: bool,
    runs: int,
) -> tuple[Cost, list[str]]:
    """The cost of a Keras model, and notes on what could not be measured."""
    notes: list[str] = []
    cost = Cost(
        params=count_params(model),
        tflite_size_bytes=tflite_size_bytes,
        train_time_s=train_time_s,
        predict_time_s=predict_time_s,
    )
    if measure:
        size_bytes, why = keras_file_size(model)
        if why:
            notes.append(f".keras size not measured: {why}")
        lat1, lat32 = latencies(model, sample, runs)
        cost = dataclasses.replace(
            cost, size_bytes=size_bytes, latency_ms=lat1, latency_ms_batch32=lat32
        )
    return cost, notes


def exported_cost(
    exported: Any, sample: np.ndarray, *, predict_time_s: float, measure: bool, runs: int
) -> tuple[Cost, list[str]]:
    """The cost of an exported model, and notes naming its file.

    The file size goes in the TFLite column for LiteRT files, in the notes for
    other formats.
    """
    fmt = getattr(exported, "format", None)
    nbytes = check_int(
        "size_bytes", getattr(exported, "size_bytes", None), minimum=0, allow_none=True
    )
    notes = [
        f"exported {fmt or 'model'} file"
        + (f": {exported.path}" if hasattr(exported, "path") else "")
    ]
    if nbytes is not None and fmt != "litert":
        notes.append(f"{fmt} file size {nbytes:,} bytes")
    cost = Cost(
        tflite_size_bytes=nbytes if fmt == "litert" else None, predict_time_s=predict_time_s
    )
    if measure:
        lat1, lat32 = latencies(exported, sample, runs)
        cost = dataclasses.replace(cost, latency_ms=lat1, latency_ms_batch32=lat32)
    return cost, notes


def count_params(model: Any) -> int | None:
    """``model.count_params()``, or ``None`` for a model that cannot count (not built)."""
    try:
        return int(model.count_params())
    except Exception:  # unbuilt models cannot count
        return None


def latencies(model: Any, sample: np.ndarray, runs: int) -> tuple[float, float]:
    """Milliseconds per image at batch 1 and 32 (see :func:`tlkit._keras_model.latency_ms`)."""
    b1, b32 = (sample[np.arange(bs) % len(sample)] for bs in (1, 32))
    return latency_ms(model.predict_on_batch, b1, runs), latency_ms(
        model.predict_on_batch, b32, runs
    )


def machine() -> dict[str, Any]:
    """Where latencies are measured: platform, processor, CPUs, Python, TensorFlow, accelerator."""
    info: dict[str, Any] = {
        "platform": platform.platform(terse=True),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        info["tensorflow"] = getattr(tf, "__version__", None)
        try:
            gpus = tf.config.list_logical_devices("GPU")
        except Exception:  # pragma: no cover
            gpus = []
        info["accelerator"] = ", ".join(g.name for g in gpus) or None
    return info
