"""The headline classification metrics, defined once for FineTuner and the reports.

:func:`classification_metrics` is what :meth:`tlkit.finetune.FineTuner.evaluate`
returns and what the ``val_*`` training logs hold; the comparison, cross-validation
and learning-curve reports compute the same three headline metrics
(:data:`CI_METRICS`) with the same functions, so a number means the same in each.
They are thin wrappers of scikit-learn with every label passed explicitly;
scikit-learn is imported on first use.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

__all__ = [
    "CI_METRICS",
    "accuracy",
    "balanced_accuracy",
    "classification_metrics",
    "macro_f1",
    "quiet_sklearn",
]


@contextmanager
def quiet_sklearn() -> Iterator[None]:
    """Silence scikit-learn's warnings about undefined values; callers state them themselves."""
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message=".*y_pred contains classes not in y_true.*")
        warnings.filterwarnings("ignore", message=".*A single label was found.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> float:
    """Share of predictions equal to the true class."""
    return float(np.mean(np.asarray(y_pred) == np.asarray(y_true)))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes that occur in ``y_true`` (scikit-learn's definition).

    A class with no true example has no recall (0/0) and is left out of the mean,
    so with a single class in ``y_true`` this equals the accuracy.
    """
    from sklearn.metrics import balanced_accuracy_score

    with quiet_sklearn():
        return float(balanced_accuracy_score(y_true, y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> float:
    """Mean F1 over every class in ``labels``; a class neither present nor predicted scores 0."""
    from sklearn.metrics import f1_score

    with quiet_sklearn():
        return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


#: The headline metrics, ``name -> f(y_true, y_pred, labels)``: reported everywhere, and the
#: ones the comparison and evaluation reports give bootstrap intervals for.
class _Metric(Protocol):
    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> float: ...


CI_METRICS: dict[str, _Metric] = {
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
    "macro_f1": macro_f1,
}


def classification_metrics(
    y_true: np.ndarray, y_prob: np.ndarray, num_classes: int
) -> dict[str, float]:
    """Loss, accuracy, balanced accuracy and macro-F1 of probabilities against labels.

    Every metric is defined over the ``num_classes`` classes given, whichever of
    them occur in ``y_true``, and none raises or warns when ``y_true`` holds a
    single class (a small validation split):

    * ``loss``: the categorical cross-entropy Keras reports as the training
      ``loss`` (the true class's probability clipped at 1e-7), so ``val_loss``
      reads on the same scale.
    * ``accuracy``: share of ``argmax(y_prob)`` equal to ``y_true``.
    * ``balanced_accuracy``: mean recall over the classes present in ``y_true``; an
      absent class has no recall and is left out rather than counted as 0 (which
      would cap a perfect model at the share of classes present). With one class
      present it equals the accuracy.
    * ``macro_f1``: mean F1 over all ``num_classes`` classes; a class absent from
      ``y_true`` and never predicted scores 0, so with one class present it is at
      most ``1 / num_classes``: the other classes were not tested.

    Parameters
    ----------
    y_true : numpy.ndarray of int, shape (n,)
        Class indices in ``0 .. num_classes - 1``.
    y_prob : numpy.ndarray of float, shape (n, num_classes)
        Class probabilities.
    num_classes : int
        The number of classes of the model.

    Examples
    --------
    >>> import numpy as np
    >>> m = classification_metrics(np.array([0, 0]), np.array([[0.9, 0.1], [0.4, 0.6]]), 2)
    >>> m["accuracy"], m["balanced_accuracy"], round(m["macro_f1"], 3)
    (0.5, 0.5, 0.333)
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob)
    y_pred = np.argmax(y_prob, axis=1)
    labels = np.arange(num_classes)
    p = np.clip(y_prob[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return {
        "loss": float(-np.mean(np.log(p))),
        **{name: fn(y_true, y_pred, labels) for name, fn in CI_METRICS.items()},
    }
