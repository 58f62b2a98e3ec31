"""What ModelComparator accepts: models in their forms, and the data read with them.

A model is a keras.Model, a :class:`~tlkit.protocols.TrainedClassifier`, an exported file
or its predictions; each is read into an :class:`Entry`: the predictions of one row of the
report, its cost, history and notes, before any statistics. The readers below it check
the data a row holds: labels, probabilities, histories, class names.

Data that cannot be used (a label outside the classes, rows that are not
probabilities, class names that differ from the test data's) raises
:class:`~tlkit.errors.ComparisonError`; a bad argument value, like everywhere,
:class:`~tlkit.errors.InvalidArgumentError`, and a wrong type
:class:`~tlkit.errors.ArgumentTypeError`. The generic argument checks (seeds,
counts, levels) are the shared ones of :mod:`tlkit._validation`.

Examples
--------
>>> check_labels([0, 1, 1], "y_pred", ["cat", "dog"]).tolist()
[0, 1, 1]
>>> check_labels([0, 2], "y_pred", ["cat", "dog"])
Traceback (most recent call last):
...
tlkit.errors.ComparisonError: y_pred holds label 2, outside 0..1 (2 class_names: ['cat', 'dog'])
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tlkit._keras_model import unwrap
from tlkit._validation import check_int, check_number, check_str, type_name
from tlkit.compare._report import Cost
from tlkit.errors import ArgumentTypeError, ComparisonError, InvalidArgumentError

__all__ = [
    "PROB_ATOL",
    "TRAINED_ATTRIBUTES",
    "Entry",
    "as_history",
    "check_class_names",
    "check_exported",
    "check_labels",
    "check_model_name",
    "check_probabilities",
    "predictions_entry",
    "resolve_class_names",
    "unwrap_model",
]


#: How far from 1 a row of probabilities may sum.
PROB_ATOL = 1e-3


def check_model_name(name: Any, taken: Container[str], reserved: str) -> None:
    """A row name: a non-empty string, not the baseline's, not taken."""
    check_str("name", name, nonempty=False)
    if not name.strip():
        raise InvalidArgumentError(f"name must be a non-empty string, got {name!r}")
    if name == reserved:
        raise InvalidArgumentError(
            f"name {name!r} is reserved for the baseline row; choose another"
        )
    if name in taken:
        raise InvalidArgumentError(
            f"a model named {name!r} was already added; names must be unique"
        )


def resolve_class_names(class_names: Any, own: Any) -> tuple[str, ...]:
    """The class names given, or the test data's own (a SplitPart's); they must agree."""
    names = own if class_names is None else class_names
    if names is None:
        raise InvalidArgumentError(
            "class_names is required unless test_data has .class_names (a SplitPart): "
            "pass the list of class names, label i being class_names[i]"
        )
    names = tuple(str(c) for c in names)
    if own is not None and tuple(str(c) for c in own) != names:
        raise ComparisonError(
            f"class_names {list(names)} differ from test_data.class_names {list(own)}"
        )
    if len(names) < 2:
        raise InvalidArgumentError(f"class_names must name at least 2 classes, got {list(names)}")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"class_names must be unique, got {list(names)}")
    return names


def check_labels(labels: Any, what: str, class_names: Sequence[str]) -> np.ndarray:
    """Labels as a 1-D ``int64`` array of class indices (one-hot rows accepted, except for ``y_pred``)."""
    k = len(class_names)
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == k and what != "y_pred":
        arr = np.argmax(arr, axis=1)  # one-hot rows
    if arr.ndim != 1:
        raise ComparisonError(
            f"{what} must be a 1-D array of class indices"
            + (f" (or one-hot rows of {k})" if what != "y_pred" else "")
            + f", got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ComparisonError(f"{what} is empty: the test set needs examples")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.mod(arr, 1) == 0):
            raise ComparisonError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= k)]
    if bad.size:
        raise ComparisonError(
            f"{what} holds label {int(bad[0])}, outside 0..{k - 1} "
            f"({k} class_names: {list(class_names)})"
        )
    return arr


def check_probabilities(y_prob: Any, n: int, k: int) -> np.ndarray:
    """Probabilities as an ``(n, k)`` array whose rows sum to 1."""
    p = np.asarray(y_prob, dtype=np.float64)
    if p.ndim == 1 and k == 2:
        p = np.stack([1 - p, p], axis=1)
    if p.ndim != 2 or p.shape != (n, k):
        raise ComparisonError(
            f"y_prob must have shape ({n}, {k}) (test examples, classes), got {p.shape}"
            + (
                "; with 2 classes shape (n,), the probability of class 1, works too"
                if k == 2
                else ""
            )
        )
    if not np.all(np.isfinite(p)):
        raise ComparisonError("y_prob holds NaN or infinite values")
    if np.any(p < -1e-9) or np.any(p > 1 + 1e-9):
        raise ComparisonError(
            "y_prob must hold probabilities in [0, 1]; for logits use "
            "scipy.special.softmax(logits, axis=1) first"
        )
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > PROB_ATOL)
    if bad.size:
        raise ComparisonError(
            f"y_prob rows must sum to 1; row {int(bad[0])} sums to {sums[bad[0]]:.4g} "
            f"({bad.size} rows off). Pass probabilities, e.g. scipy.special.softmax(logits, axis=1)"
        )
    return np.clip(p, 0.0, 1.0) / sums[:, None]


def as_history(h: Any) -> dict[str, list[float]] | None:
    """A training history as ``{metric: [one float per epoch]}`` (a keras History is read)."""
    if h is None:
        return None
    if hasattr(h, "history") and isinstance(h.history, dict):  # keras.callbacks.History
        h = h.history
    if not isinstance(h, dict):
        raise ArgumentTypeError(
            f"history must be a dict of metric name -> per-epoch values or a keras History, "
            f"got {type_name(h)}"
        )
    out = {}
    for k, v in h.items():
        try:
            vals = np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError):
            raise ComparisonError(
                f"history[{k!r}] must be numbers, one per epoch; got {str(v)[:60]}"
            ) from None
        if vals.size:
            out[str(k)] = [float(x) for x in vals]
    return out or None


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
    tflite_size_bytes: Any = None,
    latency_ms: Any = None,
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
        size_bytes=check_int("size_bytes", size_bytes, minimum=0, allow_none=True),
        tflite_size_bytes=check_int(
            "tflite_size_bytes", tflite_size_bytes, minimum=0, allow_none=True
        ),
        latency_ms=check_number("latency_ms", latency_ms, low=0, allow_none=True),
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
