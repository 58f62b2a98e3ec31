"""Readers of the data tlkit.compare scores: labels, probabilities, histories, class names.

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
from typing import Any

import numpy as np

from tlkit._validation import check_str, type_name
from tlkit.errors import ArgumentTypeError, ComparisonError, InvalidArgumentError

__all__ = [
    "PROB_ATOL",
    "as_history",
    "check_labels",
    "check_model_name",
    "check_probabilities",
    "resolve_class_names",
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
