"""Training one fresh model and reading its probabilities: what CV and learning curves repeat."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tlkit._validation import type_name
from tlkit.errors import ArgumentTypeError, EvaluationError

__all__ = ["Estimator", "check_fit_kwargs", "check_make_model", "fit_and_predict", "say"]

#: Rows of ``predict`` output must sum to 1 within this tolerance.
PROB_ATOL = 1e-3


@runtime_checkable
class Estimator(Protocol):
    """What :func:`~tlkit.evaluate.cross_validate` needs from the model ``make_model()`` returns.

    :class:`~tlkit.finetune.FineTuner` implements it; so can any classifier.
    """

    def fit(self, train: Any, val: Any = None, **kwargs: Any) -> Any:
        """Train on ``train`` (a :class:`~tlkit.data.SplitPart`), choosing epochs on ``val`` (or ``None``)."""
        ...

    def predict(self, data: Any) -> Any:
        """Class probabilities ``(n, K)`` for a :class:`~tlkit.data.SplitPart`, in its order.

        An object with a ``probabilities`` attribute (FineTuner's
        :class:`~tlkit.finetune.Predictions`) or an array.
        """
        ...


def check_make_model(make_model: Any) -> Callable[[], Any]:
    """``make_model`` if it is callable (a class, a function, a ``functools.partial``)."""
    if not callable(make_model):
        raise ArgumentTypeError(
            "make_model must be a callable returning a new, unfitted model (e.g. "
            f"lambda: FineTuner('mobilenet_v2')), got {type_name(make_model)}"
        )
    return make_model


def check_fit_kwargs(fit_kwargs: Any) -> dict[str, Any]:
    """``fit_kwargs`` as a dict of keyword arguments passed to every ``fit``."""
    if fit_kwargs is None:
        return {}
    if not isinstance(fit_kwargs, Mapping) or not all(isinstance(k, str) for k in fit_kwargs):
        raise ArgumentTypeError(
            "fit_kwargs must be a dict of keyword arguments for fit (e.g. {'epochs': 5}), "
            f"got {type_name(fit_kwargs)}"
        )
    return dict(fit_kwargs)


def say(verbose: bool, message: str) -> None:
    """Progress for people, on stderr."""
    if verbose:
        print(message, file=sys.stderr, flush=True)


class ModelFactory:
    """Calls ``make_model`` and refuses a model it has seen, or one already trained."""

    def __init__(self, make_model: Callable[[], Any]) -> None:
        self.make_model = make_model
        self._last: Any = None

    def __call__(self, what: str) -> Any:
        model = self.make_model()
        for attr in ("fit", "predict"):
            if not callable(getattr(model, attr, None)):
                raise EvaluationError(
                    f"make_model() returned {type_name(model)}, which has no {attr}() method; "
                    "return a FineTuner or an object with fit(train, val) and predict(data)"
                )
        if model is self._last:
            raise EvaluationError(
                f"make_model() returned the same model object again for {what}: each fold must "
                "train a new, unfitted model (write make_model=lambda: FineTuner(...), not "
                "make_model=lambda: tuner)"
            )
        if getattr(model, "history", None) is not None and hasattr(model, "train_time_s"):
            raise EvaluationError(
                f"make_model() returned a model that was already trained (it has a history) for "
                f"{what}; return a new, unfitted one"
            )
        self._last = model
        return model


def fit_and_predict(
    model: Any,
    train: Any,
    val: Any,
    test: Any,
    num_classes: int,
    fit_kwargs: Mapping[str, Any],
    what: str,
) -> tuple[np.ndarray, float]:
    """Fit ``model`` on ``train`` (choosing epochs on ``val``), predict ``test``: ``(probs, seconds)``."""
    t0 = time.perf_counter()
    model.fit(train, val if val is not None and len(val) else None, **fit_kwargs)
    seconds = time.perf_counter() - t0
    trained = getattr(model, "train_time_s", None)
    if isinstance(trained, (int, float)) and not isinstance(trained, bool) and trained >= 0:
        seconds = float(trained)
    raw = model.predict(test)
    probs = probabilities(raw, len(test), num_classes, what)
    return probs, seconds


def probabilities(raw: Any, n: int, k: int, what: str) -> np.ndarray:
    """``predict`` output as an ``(n, k)`` array of probabilities (rows sum to 1)."""
    raw = getattr(raw, "probabilities", raw)
    try:
        p = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(
            f"predict() returned {type_name(raw)} for {what}; return class probabilities "
            f"of shape ({n}, {k})"
        ) from None
    if p.shape != (n, k):
        raise EvaluationError(
            f"predict() returned shape {p.shape} for {what}; expected ({n}, {k}): one row of "
            f"{k} class probabilities per test image, in the order of the SplitPart"
        )
    if not np.all(np.isfinite(p)) or np.any(p < -1e-9):
        raise EvaluationError(f"predict() returned NaN, infinite or negative values for {what}")
    sums = p.sum(axis=1)
    if p.size and np.any(np.abs(sums - 1) > PROB_ATOL):
        raise EvaluationError(
            f"predict() rows must be probabilities summing to 1 for {what}; a row sums to "
            f"{float(sums[np.argmax(np.abs(sums - 1))]):.4g} (apply a softmax to logits)"
        )
    return np.clip(p, 0.0, 1.0) / np.maximum(sums[:, None], 1e-12)


def metric_labels(names: Sequence[str]) -> np.ndarray:
    """Every class index, for the named metrics (macro-F1 averages over all classes)."""
    return np.arange(len(names))
