"""ModelComparator metrics, baseline and warnings (no TensorFlow here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    log_loss,
    matthews_corrcoef,
    roc_auc_score,
    top_k_accuracy_score,
)

from tlkit.compare import ModelComparator

STUDY_CLASSES = ["healthy", "rust", "scab"]


def study_labels() -> np.ndarray:
    """The study's test set: supports 80 / 20 / 8."""
    return np.repeat([0, 1, 2], [80, 20, 8])


def close(a: float | None, b: float) -> bool:
    if a is None:
        return bool(np.isnan(b))
    return bool(np.isclose(a, b, rtol=1e-12, atol=1e-12)) or (np.isnan(a) and np.isnan(b))


# -- the study's case ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study_report():
    return (
        ModelComparator(study_labels(), STUDY_CLASSES)  # default n_boot=1000, seed=0
        .add_predictions("MobileNet", np.zeros(108, dtype=int))
        .run()
    )


def test_study_case_numbers(study_report) -> None:
    m = study_report["MobileNet"].metrics
    assert round(m["accuracy"], 3) == 0.741
    assert round(m["balanced_accuracy"], 3) == 0.333
    assert round(m["macro_f1"], 3) == 0.284
    assert m["accuracy"] == 80 / 108
    # MobileNet is the majority-class baseline, image for image.
    np.testing.assert_array_equal(study_report["MobileNet"].y_pred, study_report.baseline.y_pred)
    assert study_report.baseline_info == {
        "strategy": "majority class",
        "class_index": 0,
        "class_name": "healthy",
        "source": "test set",
    }
    assert study_report.baseline.metrics["balanced_accuracy"] == pytest.approx(1 / 3)


def test_study_case_warnings(study_report) -> None:
    w = study_report.warnings
    assert w[0] == (
        "model 'MobileNet': balanced accuracy 0.333, 95% CI [0.333, 0.333], does not clear the "
        "majority-class baseline (0.333)"
    )
    assert (
        "model 'MobileNet': accuracy 0.741 is no higher than the majority-class baseline's 0.741"
        in w
    )
    assert "model 'MobileNet' never predicts classes 'rust', 'scab'" in w
    assert "test class 'scab' has 8 examples: too few to judge" in w
    assert not any("'rust' has" in x or "'healthy' has" in x for x in w)
    assert len(w) == 4


def test_study_case_is_first_in_markdown(study_report) -> None:
    md = study_report.to_markdown()
    assert md.index("Warnings") < md.index("## Metrics") < md.index("## MobileNet")
    assert "does not clear the majority-class baseline (0.333)" in md.split("## Test set")[0]
    # scikit-learn's own table, as the study printed it.
    expected = classification_report(
        study_labels(), np.zeros(108, int), target_names=STUDY_CLASSES, digits=3, zero_division=0
    )
    assert expected.rstrip() in md


def test_clear_winner_has_no_baseline_warning() -> None:
    y = np.repeat([0, 1, 2], [40, 30, 30])
    good = y.copy()
    good[::10] = (good[::10] + 1) % 3  # 90% right, every class predicted
    r = ModelComparator(y, ["a", "b", "c"], n_boot=300).add_predictions("good", good).run()
    assert r.warnings == ()
    assert r["good"].ci["balanced_accuracy"].low > r.baseline.metrics["balanced_accuracy"]


def test_baseline_from_training_labels() -> None:
    y = np.repeat([0, 1, 2], [10, 30, 10])  # test majority: 1
    train = np.repeat([0, 1, 2], [100, 20, 20])  # training majority: 0
    c = ModelComparator(y, ["a", "b", "c"], baseline_labels=train, n_boot=0)
    r = c.add_predictions("m", y).run()
    assert r.baseline_info["class_name"] == "a"
    assert r.baseline_info["source"] == "baseline_labels"
    assert (r.baseline.y_pred == 0).all()
    np.testing.assert_allclose(r.baseline.y_prob[0], [100 / 140, 20 / 140, 20 / 140])
    assert "most frequent class in baseline_labels" in r.to_markdown()


def test_not_significant_pairs_are_warned_and_adjusted() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    a = np.where(rng.random(200) < 0.8, y, 1 - y)
    b = np.where(rng.random(200) < 0.8, y, 1 - y)
    perfect = y.copy()
    r = (
        ModelComparator(y, ["n", "p"], n_boot=0)
        .add_predictions("a", a)
        .add_predictions("b", b)
        .add_predictions("perfect", perfect)
        .run()
    )
    pairs = {(p.model_a, p.model_b): p for p in r.pairwise}
    assert set(pairs) == {("a", "b"), ("a", "perfect"), ("b", "perfect")}
    assert not pairs["a", "b"].significant
    assert pairs["a", "perfect"].significant and pairs["b", "perfect"].significant
    nonsig = [x for x in r.warnings if "not significant" in x]
    assert len(nonsig) == 1 and nonsig[0].startswith("models 'a' and 'b'")
    # Holm over three pairs: the smallest p-value is multiplied by 3.
    raw = sorted(p.test.p_value for p in r.pairwise)
    assert min(p.p_adjusted for p in r.pairwise) == pytest.approx(min(1.0, 3 * raw[0]))
    # Without correction the adjusted p-values are the raw ones.
    r2 = (
        ModelComparator(y, ["n", "p"], n_boot=0, correction=None)
        .add_predictions("a", a)
        .add_predictions("b", b)
        .run()
    )
    assert r2.pairwise[0].p_adjusted == r2.pairwise[0].test.p_value


def test_warning_order() -> None:
    y = np.repeat([0, 1, 2], [50, 30, 5])
    same = np.zeros(85, int)
    r = (
        ModelComparator(y, ["a", "b", "c"], n_boot=50)
        .add_predictions("m1", same)
        .add_predictions("m2", same)
        .run()
    )
    kinds = []
    for w in r.warnings:
        kinds.append(
            "baseline"
            if "baseline" in w
            else "never"
            if "never predicts" in w
            else "few"
            if "too few" in w
            else "pair"
        )
    order = ["baseline", "never", "few", "pair"]
    assert kinds == sorted(kinds, key=order.index)
    assert kinds[-1] == "pair" and "p = 1" in r.warnings[-1]


# -- metrics equal scikit-learn's --------------------------------------------------------------


@st.composite
def predictions(draw):
    k = draw(st.integers(2, 5))
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = rng.integers(0, k, n)
    y_prob = rng.dirichlet(np.full(k, 0.7), n)
    return k, y_true, y_pred, y_prob


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(predictions())
def test_metrics_equal_sklearn(case) -> None:
    k, y_true, y_pred, y_prob = case
    labels = np.arange(k)
    names = [f"class{i}" for i in range(k)]
    r = ModelComparator(y_true, names, n_boot=0).add_predictions("m", y_pred, y_prob).run()
    res = r["m"]
    m = res.metrics
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert close(m["accuracy"], accuracy_score(y_true, y_pred))
        assert close(m["balanced_accuracy"], balanced_accuracy_score(y_true, y_pred))
        assert close(
            m["macro_f1"], f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        )
        assert close(
            m["weighted_f1"],
            f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
        )
        assert close(m["mcc"], matthews_corrcoef(y_true, y_pred))
        assert close(m["cohen_kappa"], cohen_kappa_score(y_true, y_pred, labels=labels))
        assert close(m["log_loss"], log_loss(y_true, y_prob, labels=labels))
        top_k = min(5, k - 1)
        assert res.top_k == top_k
        if top_k > 1:
            assert close(
                m["top_k_accuracy"], top_k_accuracy_score(y_true, y_prob, k=top_k, labels=labels)
            )
        else:
            assert m["top_k_accuracy"] is None
        try:
            auc = (
                roc_auc_score(y_true, y_prob[:, 1])
                if k == 2
                else roc_auc_score(y_true, y_prob, multi_class="ovr", labels=labels)
            )
        except ValueError:
            assert m["roc_auc_ovr"] is None
            assert any("ROC-AUC" in n for n in res.notes)
        else:
            assert close(m["roc_auc_ovr"], auc)
        np.testing.assert_array_equal(
            res.confusion, confusion_matrix(y_true, y_pred, labels=labels)
        )
        np.testing.assert_allclose(
            res.confusion_normalized,
            confusion_matrix(y_true, y_pred, labels=labels, normalize="true"),
        )
        assert res.classification_report == classification_report(
            y_true, y_pred, labels=labels, target_names=names, digits=3, zero_division=0
        )
        report = classification_report(
            y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
        )
    for row in res.per_class:
        ref = report[row["class"]]
        assert close(row["precision"], ref["precision"])
        assert close(row["recall"], ref["recall"])
        assert close(row["f1"], ref["f1-score"])
        assert row["support"] == ref["support"]
    assert set(res.never_predicted) == {names[i] for i in labels if i not in set(y_pred)}
    # Most-confused pairs: the largest off-diagonal cells, in order.
    cm = res.confusion
    off = sorted((cm[i, j] for i in labels for j in labels if i != j and cm[i, j]), reverse=True)
    assert [p["count"] for p in res.most_confused] == off[:5]
    # The baseline's metrics come from the same functions.
    assert close(r.baseline.metrics["accuracy"], accuracy_score(y_true, r.baseline.y_pred))


def test_undefined_metrics_are_none_with_a_note() -> None:
    y = np.array([0, 0, 1, 1])  # class 2 never occurs in the test set
    prob = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    r = ModelComparator(y, ["a", "b", "c"], n_boot=0).add_predictions("m", y_prob=prob).run()
    assert r["m"].metrics["roc_auc_ovr"] is None
    assert any("ROC-AUC" in n for n in r["m"].notes)
    assert "test class 'c' has 0 examples: too few to judge" in r.warnings
    np.testing.assert_array_equal(r["m"].y_pred, [0, 0, 1, 0])


def test_one_hot_test_labels() -> None:
    y = np.array([0, 1, 2, 1])
    r1 = ModelComparator(np.eye(3)[y], ["a", "b", "c"], n_boot=0).add_predictions("m", y).run()
    np.testing.assert_array_equal(r1.y_true, y)
    assert r1["m"].metrics["accuracy"] == 1.0


def test_binary_probability_vector() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.7, 0.8, 0.4])
    r = ModelComparator(y, ["neg", "pos"], n_boot=0).add_predictions("m", y_prob=p1).run()
    assert r["m"].metrics["roc_auc_ovr"] == roc_auc_score(y, p1)
    np.testing.assert_array_equal(r["m"].y_pred, (p1 > 0.5).astype(int))


# -- validation at the boundary ------------------------------------------------------------------


@pytest.fixture
def comparator() -> ModelComparator:
    return ModelComparator([0, 1, 2, 1], ["a", "b", "c"], n_boot=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_pred": [0, 1, 2]}, "y_pred of 'm' has 3 predictions but the test set has 4 labels"),
        ({"y_pred": [0, 1, 3, 1]}, "y_pred holds label 3, outside 0..2"),
        ({"y_pred": [0, 1, -1, 1]}, "y_pred holds label -1"),
        ({"y_pred": [0.5, 1, 2, 1]}, "y_pred must hold integer class indices"),
        ({"y_pred": [[0, 1], [1, 2]]}, "y_pred must be a 1-D array"),
        ({"y_prob": np.full((4, 3), 0.5)}, "y_prob rows must sum to 1; row 0 sums to 1.5"),
        ({"y_prob": np.full((4, 2), 0.5)}, r"y_prob must have shape \(4, 3\)"),
        (
            {"y_prob": np.array([[2.0, -1.0, 0.0]] * 4)},
            r"y_prob must hold probabilities in \[0, 1\]",
        ),
        ({"y_prob": np.full((4, 3), np.nan)}, "y_prob holds NaN"),
        ({}, "give y_pred, y_prob or both"),
    ],
)
def test_add_predictions_validation(comparator, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        comparator.add_predictions("m", **kwargs)


def test_names_and_chaining(comparator) -> None:
    assert comparator.add_predictions("m", [0, 1, 2, 1]) is comparator
    with pytest.raises(ValueError, match="already added"):
        comparator.add_predictions("m", [0, 1, 2, 1])
    with pytest.raises(ValueError, match="reserved for the baseline"):
        comparator.add_predictions("majority-class baseline", [0, 1, 2, 1])
    with pytest.raises(ValueError, match="non-empty string"):
        comparator.add_predictions("", [0, 1, 2, 1])
    assert comparator.model_names == ["m"]


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="class_names is required"):
        ModelComparator([0, 1])
    with pytest.raises(ValueError, match=r"test_data labels holds label 2, outside 0..1"):
        ModelComparator([0, 1, 2], ["a", "b"])  # class_names too short for the labels
    with pytest.raises(ValueError, match="unique"):
        ModelComparator([0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        ModelComparator([0, 0], ["a"])
    with pytest.raises(ValueError, match="test_data labels is empty"):
        ModelComparator([], ["a", "b"])
    with pytest.raises(ValueError, match="baseline_labels holds label 5"):
        ModelComparator([0, 1], ["a", "b"], baseline_labels=[0, 5])
    for kwargs, msg in [
        ({"n_boot": -1}, "n_boot"),
        ({"confidence": 1.0}, "confidence"),
        ({"alpha": 0}, "alpha"),
        ({"correction": "bonferroni"}, "correction must be one of 'holm', None"),
        ({"min_support": -2}, "min_support"),
        ({"top_k": 0}, "top_k"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ModelComparator([0, 1], ["a", "b"], **kwargs)
    with pytest.raises(TypeError, match="got the path"):
        ModelComparator("photos/", ["a", "b"])


def test_run_needs_a_model(comparator) -> None:
    with pytest.raises(ValueError, match="no model to compare"):
        comparator.run()


def test_add_needs_images_and_a_model(comparator) -> None:
    with pytest.raises(TypeError, match=r"keras\.Model or an object whose \.model is one"):
        comparator.add("m", object())
    from types import SimpleNamespace

    with pytest.raises(TypeError, match="add_predictions"):
        comparator.add("m", SimpleNamespace(model="not a model"))
