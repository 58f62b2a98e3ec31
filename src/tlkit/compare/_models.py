"""What ModelComparator accepts as a model: keras.Model, TrainedClassifier, exported file, predictions.

Each is read into an :class:`Entry`: the predictions of one row of the report, its
cost, history and notes, before any statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tlkit._keras_model import unwrap
from tlkit._validation import check_int, check_number, type_name
from tlkit.compare._inputs import (
    as_history,
    check_labels,
    check_probabilities,
)
from tlkit.compare._report import Cost
from tlkit.errors import ArgumentTypeError, ComparisonError

__all__ = [
    "TRAINED_ATTRIBUTES",
    "Entry",
    "check_class_names",
    "check_exported",
    "predictions_entry",
    "unwrap_model",
]

#: The optional attributes of a :class:`tlkit.protocols.TrainedClassifier` the comparator reads
#: (``temperature``: a FineTuner's, from ``FineTuner.calibrate``; not part of the protocol).
TRAINED_ATTRIBUTES = ("history", "train_time_s", "class_names", "tflite_path", "temperature")


@dataclass
class Entry:
    """One row of the report before the statistics: predictions, cost, history, notes."""

    name: str
    kind: str
    y_pred: np.ndarray
    y_prob: np.ndarray | None
    cost: Cost = field(default_factory=Cost)
    history: dict[str, list[float]] | None = None
    output: str | None = None
    notes: list[str] = field(default_factory=list)


def unwrap_model(obj: Any) -> tuple[Any, dict[str, Any]]:
    """Return (keras model, TrainedClassifier extras) or raise ArgumentTypeError."""
    model, holder = unwrap(
        obj, hint="; for predictions from anything else use add_predictions(name, y_pred, y_prob)"
    )
    if holder is None:
        return model, {}
    return model, {k: getattr(holder, k, None) for k in TRAINED_ATTRIBUTES}


def check_class_names(name: str, names: Any, class_names: Sequence[str]) -> None:
    """Refuse a model trained with other class names (or another order) than the comparator's."""
    if names is None:
        return
    names = tuple(str(c) for c in names)
    if names != tuple(class_names):
        raise ComparisonError(
            f"model {name!r} was trained with class_names {list(names)} but the comparator's "
            f"are {list(class_names)}: its outputs would be read in the wrong order"
        )


def check_exported(name: str, exported: Any) -> tuple[int, int]:
    """The input ``(height, width)`` of an exported model; refuse other objects.

    An exported model has ``predict_on_batch`` and ``image_size``.
    """
    size = getattr(exported, "image_size", None)
    if not callable(getattr(exported, "predict_on_batch", None)) or size is None:
        raise ArgumentTypeError(
            f"add_exported({name!r}, ...): expected a tlkit.export.ExportedModel (an object "
            f"with predict_on_batch() and image_size), got {type_name(exported)}"
        )
    h, w = size
    return int(h), int(w)


def predictions_entry(
    name: str,
    y_pred: Any,
    y_prob: Any,
    *,
    y_true: np.ndarray,
    class_names: Sequence[str],
    history: Any = None,
    params: Any = None,
    size_bytes: Any = None,
    tflite_bytes: Any = None,
    latency_ms_batch1: Any = None,
    latency_ms_batch32: Any = None,
    train_time_s: Any = None,
) -> Entry:
    """A row from predictions made elsewhere: class indices, probabilities or both, and costs."""
    n, k = y_true.size, len(class_names)
    prob = None if y_prob is None else check_probabilities(y_prob, n, k)
    if y_pred is None:
        if prob is None:
            raise ComparisonError(f"add_predictions({name!r}): give y_pred, y_prob or both")
        pred = np.argmax(prob, axis=1).astype(np.int64)
    else:
        pred = check_labels(y_pred, "y_pred", class_names)
        if pred.size != n:
            raise ComparisonError(
                f"y_pred of {name!r} has {pred.size} predictions but the test set has {n} labels"
            )
    cost = Cost(
        params=check_int("params", params, minimum=0, allow_none=True),
        keras_bytes=check_int("size_bytes", size_bytes, minimum=0, allow_none=True),
        tflite_bytes=check_int("tflite_bytes", tflite_bytes, minimum=0, allow_none=True),
        latency_ms_batch1=check_number(
            "latency_ms_batch1", latency_ms_batch1, low=0, allow_none=True
        ),
        latency_ms_batch32=check_number(
            "latency_ms_batch32", latency_ms_batch32, low=0, allow_none=True
        ),
        train_time_s=check_number("train_time_s", train_time_s, low=0, allow_none=True),
    )
    return Entry(
        name=name,
        kind="predictions",
        y_pred=pred,
        y_prob=prob,
        cost=cost,
        history=as_history(history),
        output="probabilities" if prob is not None else "class indices",
    )
