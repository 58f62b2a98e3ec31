"""One prediction pass over the test set, and reading a model's outputs as probabilities."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from tlkit.compare._inputs import PROB_ATOL
from tlkit.errors import ComparisonError

__all__ = ["as_probabilities", "predict"]


def predict(
    model: Any, batches: Iterable[tuple[Any, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Run ``model.predict_on_batch`` over the batches.

    Returns the raw outputs, the labels, up to 32 sample images (for latency
    measurement) and the seconds spent in the model.
    """
    outputs, labels = [], []
    sample: list[np.ndarray] = []
    seconds = 0.0
    for x, y in batches:
        x = np.asarray(x)
        if len(sample) < 32:
            sample.extend(x[: 32 - len(sample)])
        t0 = time.perf_counter()
        out = model.predict_on_batch(x)
        seconds += time.perf_counter() - t0
        if isinstance(out, (list, tuple, dict)):
            raise ComparisonError("the model has several outputs; compare models with one output")
        outputs.append(np.asarray(out))
        labels.append(y)
    if not outputs:
        raise ComparisonError("test_data holds no examples")
    return np.concatenate(outputs), np.concatenate(labels), np.stack(sample), seconds


def as_probabilities(name: str, raw: np.ndarray, k: int) -> tuple[np.ndarray, str]:
    """Read a model's outputs as probabilities; say how they were read."""
    out = np.asarray(raw, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim == 1:
        if k != 2:
            raise ComparisonError(
                f"model {name!r} has one output unit but there are {k} classes; it needs {k}"
            )
        if np.all((out >= 0) & (out <= 1)):
            return np.stack([1 - out, out], axis=1), "sigmoid probability of class 1"
        p = expit(out)
        return np.stack([1 - p, p], axis=1), "one logit (sigmoid applied)"
    if out.ndim != 2 or out.shape[1] != k:
        raise ComparisonError(
            f"model {name!r} outputs shape (batch, {', '.join(map(str, raw.shape[1:]))}), "
            f"expected (batch, {k}): one value per class"
        )
    if not np.all(np.isfinite(out)):
        raise ComparisonError(f"model {name!r} outputs NaN or infinite values")
    if np.all((out >= -1e-6) & (out <= 1 + 1e-6)) and np.allclose(
        out.sum(axis=1), 1, atol=PROB_ATOL
    ):
        out = np.clip(out, 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True), "probabilities"
    return softmax(out, axis=1), "logits (softmax applied)"
