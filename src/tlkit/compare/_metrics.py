"""Every metric of one model's report, with scikit-learn and every label passed explicitly.

The headline metrics (accuracy, balanced accuracy, macro-F1) come from
:mod:`tlkit.metrics`, the one definition FineTuner uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    classification_report,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

from tlkit.compare._format import METRIC_LABELS
from tlkit.metrics import CI_METRICS, quiet_sklearn

__all__ = ["METRIC_LABELS", "metrics_report"]


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
    k_classes = len(class_names)
    labels = np.arange(k_classes)
    notes: list[str] = []
    if top_k is None:
        top_k = min(5, k_classes - 1)
    with quiet_sklearn():
        metrics: dict[str, float | None] = {
            **{name: fn(y_true, y_pred, labels) for name, fn in CI_METRICS.items()},
            "weighted_f1": float(
                f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
            ),
            "mcc": float(matthews_corrcoef(y_true, y_pred)),
            "cohen_kappa": float(cohen_kappa_score(y_true, y_pred, labels=labels)),
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
    off = [
        (int(cm[i, j]), i, j)
        for i in range(k_classes)
        for j in range(k_classes)
        if i != j and cm[i, j]
    ]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    most_confused = [
        {
            "true": class_names[i],
            "predicted": class_names[j],
            "count": n,
            "share_of_true": float(cm_norm[i, j]),
        }
        for n, i, j in off[:n_confused]
    ]
    never = [int(i) for i in labels if not np.any(y_pred == i)]
    return {
        "metrics": metrics,
        "top_k": int(top_k),
        "per_class": per_class,
        "averages": averages,
        "classification_report": report_text,
        "confusion": cm.astype(int),
        "confusion_normalized": np.asarray(cm_norm, dtype=float),
        "most_confused": most_confused,
        "never_predicted": never,
        "notes": notes,
    }
