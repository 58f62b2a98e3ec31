"""The headline classification metrics, defined once for FineTuner and the reports.

:func:`classification_metrics` is what :meth:`tlkit.finetune.FineTuner.evaluate`
returns and what the ``val_*`` training logs hold; the comparison, cross-validation
and learning-curve reports compute the same three headline metrics
(:data:`CI_METRICS`) with the same functions, so a number means the same in each.
:func:`metrics_report` adds every other figure of one model's report (per-class
scores, the confusion matrix, top-k accuracy, log loss, ROC-AUC). They are thin
wrappers of scikit-learn with every label passed explicitly; scikit-learn is
imported on first use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

__all__ = ["CI_METRICS", "classification_metrics", "metrics_report"]


#: Display names of the scalar metrics, in report order.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
    "weighted_f1": "weighted-F1",
    "mcc": "MCC",
    "cohen_kappa": "Cohen's kappa",
    "top_k_accuracy": "top-k accuracy",
    "log_loss": "log loss",
    "roc_auc_ovr": "ROC-AUC (OvR)",
}


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


def _try(fn: Callable[[], float], notes: list[str], what: str) -> float | None:
    try:
        return float(fn())
    except ValueError as exc:
        notes.append(f"{what} undefined: {exc}")
        return None


def metrics_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_prob: np.ndarray | None,
    class_names: Sequence[str],
    *,
    top_k: int | None = None,
    n_confused: int = 5,
) -> dict[str, Any]:
    """Compute every metric of one model with scikit-learn.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray of int, shape (n,)
        Validated class indices in ``0 .. K-1``.
    y_prob : numpy.ndarray of float, shape (n, K), or None
        Validated class probabilities (rows sum to 1).
    class_names : sequence of str
        The ``K`` class names.
    top_k : int, optional
        ``k`` of the top-k accuracy; computed when probabilities are given and
        ``1 < k < K``. Default ``min(5, K - 1)``.
    n_confused : int
        Number of most-confused (true, predicted) pairs to keep.

    Returns
    -------
    dict
        ``metrics`` (name -> float or None), ``top_k``, ``per_class``,
        ``averages``, ``classification_report`` (scikit-learn's text),
        ``confusion``, ``confusion_normalized``, ``most_confused``,
        ``never_predicted`` (class indices) and ``notes``.
    """
    from sklearn.metrics import (
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    k_classes = len(class_names)
    labels = np.arange(k_classes)
    notes: list[str] = []
    if top_k is None:
        top_k = min(5, k_classes - 1)
    with quiet_sklearn():
        metrics: dict[str, float | None] = {
            **_label_metrics(y_true, y_pred, labels),
            **_probability_metrics(y_true, y_prob, labels, top_k, notes),
        }
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
        report_dict = classification_report(
            y_true, y_pred, labels=labels, output_dict=True, zero_division=0
        )
        report_text = classification_report(
            y_true, y_pred, labels=labels, target_names=list(class_names), digits=3, zero_division=0
        )
        cm = confusion_matrix(y_true, y_pred, labels=labels)
        cm_norm = confusion_matrix(y_true, y_pred, labels=labels, normalize="true")
    for key, value in metrics.items():
        if value is not None and not np.isfinite(value):
            notes.append(f"{METRIC_LABELS[key]} undefined on this test set (0/0)")
            metrics[key] = None
    per_class = [
        {
            "class": class_names[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in range(k_classes)
    ]
    averages = {
        name: {k: float(v) for k, v in report_dict[name].items()}
        for name in ("macro avg", "weighted avg")
    }
    never = [int(i) for i in labels if not np.any(y_pred == i)]
    return {
        "metrics": metrics,
        "top_k": int(top_k),
        "per_class": per_class,
        "averages": averages,
        "classification_report": report_text,
        "confusion": cm.astype(int),
        "confusion_normalized": np.asarray(cm_norm, dtype=float),
        "most_confused": _most_confused(cm, cm_norm, class_names, n_confused),
        "never_predicted": never,
        "notes": notes,
    }


def _label_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray
) -> dict[str, float | None]:
    """The metrics read from the predicted labels alone (the headline ones first)."""
    from sklearn.metrics import cohen_kappa_score, f1_score, matthews_corrcoef

    return {
        **{name: fn(y_true, y_pred, labels) for name, fn in CI_METRICS.items()},
        "weighted_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        ),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "cohen_kappa": float(cohen_kappa_score(y_true, y_pred, labels=labels)),
    }


def _probability_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray | None,
    labels: np.ndarray,
    top_k: int,
    notes: list[str],
) -> dict[str, float | None]:
    """Top-k accuracy, log loss and ROC-AUC: ``None`` without probabilities or where undefined.

    What could not be computed is appended to ``notes``.
    """
    from sklearn.metrics import log_loss, roc_auc_score, top_k_accuracy_score

    k_classes = labels.size
    metrics: dict[str, float | None] = {
        "top_k_accuracy": None,
        "log_loss": None,
        "roc_auc_ovr": None,
    }
    if y_prob is not None:
        if 1 < top_k < k_classes:
            metrics["top_k_accuracy"] = _try(
                lambda: top_k_accuracy_score(y_true, y_prob, k=top_k, labels=labels),
                notes,
                f"top-{top_k} accuracy",
            )
        metrics["log_loss"] = _try(
            lambda: log_loss(y_true, y_prob, labels=labels), notes, "log loss"
        )
        if k_classes == 2:
            metrics["roc_auc_ovr"] = _try(
                lambda: roc_auc_score(y_true, y_prob[:, 1]), notes, "ROC-AUC"
            )
        else:
            metrics["roc_auc_ovr"] = _try(
                lambda: roc_auc_score(
                    y_true, y_prob, multi_class="ovr", average="macro", labels=labels
                ),
                notes,
                "ROC-AUC (one-vs-rest)",
            )
    return metrics


def _most_confused(
    cm: np.ndarray, cm_norm: np.ndarray, class_names: Sequence[str], n_confused: int
) -> list[dict[str, Any]]:
    """The ``n_confused`` largest off-diagonal cells of the confusion matrix, largest first."""
    k_classes = len(class_names)
    off = [
        (int(cm[i, j]), i, j)
        for i in range(k_classes)
        for j in range(k_classes)
        if i != j and cm[i, j]
    ]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [
        {
            "true": class_names[i],
            "predicted": class_names[j],
            "count": n,
            "share_of_true": float(cm_norm[i, j]),
        }
        for n, i, j in off[:n_confused]
    ]
