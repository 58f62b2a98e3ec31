"""tlkit.metrics: the one definition of the headline metrics, a single-class y_true included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from tlkit.metrics import CI_METRICS, classification_metrics, metrics_report

PROB = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])


def _quietly(fn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    assert [str(w.message) for w in caught] == []
    return out


def test_single_class_y_true_is_defined_over_the_classes_given() -> None:
    """The choice written in classification_metrics' docstring, pinned."""
    y = np.zeros(4, dtype=np.int64)  # class 0 only; one image predicted as class 1
    m = _quietly(classification_metrics, y, PROB, 3)
    assert m["accuracy"] == 0.75
    # recall over the classes present: the absent classes have none, so it is the accuracy
    assert m["balanced_accuracy"] == 0.75
    # F1 over all 3 classes: class 0 scores 6/7, classes 1 and 2 score 0
    assert m["macro_f1"] == pytest.approx((6 / 7) / 3)
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.7, 0.6])))

    perfect = _quietly(classification_metrics, y, np.tile([0.8, 0.1, 0.1], (4, 1)), 3)
    assert perfect["accuracy"] == perfect["balanced_accuracy"] == 1.0
    assert perfect["macro_f1"] == pytest.approx(1 / 3)  # two classes never tested


def test_the_report_and_finetuner_metrics_agree_on_a_single_class() -> None:
    y = np.zeros(4, dtype=np.int64)
    ft = _quietly(classification_metrics, y, PROB, 3)
    report = _quietly(metrics_report, y, np.argmax(PROB, axis=1), PROB, ["a", "b", "c"])
    for name in CI_METRICS:
        assert report["metrics"][name] == ft[name]


def test_no_warning_when_a_class_is_predicted_but_absent() -> None:
    y = np.array([0, 0, 1, 1])
    prob = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    m = _quietly(classification_metrics, y, prob, 3)
    pred = np.argmax(prob, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own call warns: tlkit's must not
        expected = balanced_accuracy_score(y, pred)
    assert m["balanced_accuracy"] == pytest.approx(expected)
    assert m["macro_f1"] == pytest.approx(
        f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    )
