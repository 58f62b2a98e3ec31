"""The report's verdict paragraph, and the study's models rebuilt from its published report."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.stats import binomtest

from tlkit.compare import ModelComparator, mcnemar_exact

CLASSES = ["class 0", "class 1", "class 2"]
SUPPORTS = [80, 20, 8]
# The study's CNN report as scikit-learn printed it: (precision, recall, f1) per class.
PUBLISHED = {0: ("0.79", "0.80", "0.80"), 1: ("0.30", "0.30", "0.30"), 2: ("0.00", "0.00", "0.00")}


def study_cnn(t: int) -> np.ndarray:
    return np.array([[64, t, 16 - t], [23 - t, 6, t - 9], [t - 6, 14 - t, 0]])


def predictions(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions with confusion matrix cm; right answers first within a class."""
    y = np.repeat(np.arange(len(cm)), cm.sum(axis=1))
    order = [[i, *(j for j in range(len(cm)) if j != i)] for i in range(len(cm))]
    return y, np.concatenate([np.repeat(o, cm[i, o]) for i, o in enumerate(order)])


def printed(cm: np.ndarray) -> dict[int, tuple[str, str, str]]:
    """Per-class precision, recall, F1 as classification_report prints them (2 decimals)."""
    out = {}
    for k in range(len(cm)):
        tp, col, row = cm[k, k], cm[:, k].sum(), cm[k].sum()
        p = tp / col if col else 0.0
        r = tp / row
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[k] = (f"{p:.2f}", f"{r:.2f}", f"{f:.2f}")
    return out


def study(t: int = 12, **kwargs):
    y, cnn = predictions(study_cnn(t))
    return (
        ModelComparator(y, CLASSES, **kwargs)
        .add_predictions("MobileNet", np.zeros(108, int))
        .add_predictions("CNN", cnn)
        .run()
    )


@pytest.fixture(scope="module")
def study_report():
    return study()


# -- the reconstruction ------------------------------------------------------------------------


def test_published_report_admits_exactly_six_confusion_matrices() -> None:
    """Search every CNN with the published supports: the report pins all but one number."""
    # The recalls pin the diagonal: only 64, 6, 0 right print as 0.80, 0.30, 0.00.
    diagonals = [
        (d0, d1, d2)
        for d0, d1, d2 in itertools.product(range(81), range(21), range(9))
        if (f"{d0 / 80:.2f}", f"{d1 / 20:.2f}", f"{d2 / 8:.2f}") == ("0.80", "0.30", "0.00")
    ]
    assert diagonals == [(64, 6, 0)]
    # Every split of each class's errors between the other two classes.
    allowed = []
    for a01, a10, a20 in itertools.product(range(17), range(15), range(9)):
        cm = np.array([[64, a01, 16 - a01], [a10, 6, 14 - a10], [a20, 8 - a20, 0]])
        if printed(cm) == PUBLISHED and f"{np.trace(cm) / 108:.2f}" == "0.65":
            allowed.append(cm)
    assert sorted(int(cm[0, 1]) for cm in allowed) == list(range(9, 15))
    for cm in allowed:
        np.testing.assert_array_equal(cm, study_cnn(int(cm[0, 1])))
        assert cm.sum(axis=0).tolist() == [81, 20, 7]  # column totals fixed by the precisions
    # A matrix off the family fails: 80 predicted class 0 would print precision 0.80.
    assert printed(np.array([[64, 12, 4], [10, 6, 4], [6, 2, 0]]))[0][0] == "0.80"


def test_headline_numbers_do_not_depend_on_the_error_split() -> None:
    reports = [study(t, n_boot=100) for t in range(9, 15)]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "mcc", "cohen_kappa"):
        values = {round(r["CNN"].metrics[key], 12) for r in reports}
        assert len(values) == 1, key
    for key in ("accuracy", "balanced_accuracy"):  # which images are right is fixed
        assert len({(r["CNN"].ci[key].low, r["CNN"].ci[key].high) for r in reports}) == 1
    assert {r.pairwise[0].test for r in reports} == {reports[0].pairwise[0].test}
    cnn = reports[0]["CNN"].metrics
    assert round(cnn["accuracy"], 2) == 0.65 and round(cnn["macro_f1"], 2) == 0.37
    mob = reports[0]["MobileNet"]
    assert round(mob.metrics["macro_f1"], 2) == 0.28
    assert (round(mob.per_class[0]["precision"], 2), mob.per_class[0]["recall"]) == (0.74, 1.0)


def test_mcnemar_on_the_study_is_not_significant() -> None:
    y, cnn = predictions(study_cnn(12))
    m = mcnemar_exact(y, np.zeros(108, int), cnn)
    assert (m.a_right_b_wrong, m.a_wrong_b_right) == (16, 6)
    assert m.p_value == pytest.approx(binomtest(6, 22, 0.5).pvalue, abs=1e-15)
    assert round(m.p_value, 3) == 0.052 and m.p_value > 0.05


# -- the verdict ---------------------------------------------------------------------------------


def test_study_verdict_says_what_the_study_missed(study_report) -> None:
    v = study_report.verdict
    assert v.startswith(
        "MobileNet predicts 'class 0' for every image, exactly like the majority-class baseline: "
        "its accuracy 0.741 is the baseline's, not skill."
    )
    assert "On accuracy MobileNet is better, 0.741 [0.741, 0.741] vs CNN 0.648 [" in v
    assert "not significant (McNemar exact p = 0.052; 16 vs 6 images" in v
    assert "no model is shown more accurate than another" in v
    assert "On balanced accuracy CNN is better, 0.367 [" in v
    assert "On macro-F1 CNN is better, 0.365 [" in v
    assert "CNN does not beat the majority-class baseline" in v
    assert "\n" not in v  # one paragraph


def test_verdict_follows_the_warnings_everywhere(study_report, tmp_path) -> None:
    v = study_report.verdict
    md = study_report.to_markdown()
    last_warning = study_report.warnings[-1]
    assert md.index(last_warning) < md.index(f"**Verdict.** {v}") < md.index("## Test set")
    html = study_report.to_html()
    box = html[html.index('id="warnings"') : html.index('id="test-set"')]
    assert box.index("</ol>") < box.index('<p class="verdict"><strong>Verdict.</strong>')
    assert box.index("</p>") < box.index("</section>")
    assert json.loads(study_report.to_json())["verdict"] == v
    study_report.save(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["verdict"] == v
    assert f"**Verdict.** {v}" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_clear_winner() -> None:
    y = np.repeat([0, 1, 2], [40, 30, 30])
    good = y.copy()
    good[::10] = (good[::10] + 1) % 3  # 90% right
    rng = np.random.default_rng(1)
    poor = np.where(rng.random(100) < 0.5, y, rng.integers(0, 3, 100))
    r = (
        ModelComparator(y, ["a", "b", "c"], n_boot=200)
        .add_predictions("poor", poor)
        .add_predictions("good", good)
        .run()
    )
    v = r.verdict
    assert v.startswith("poor and good beat the majority-class baseline on balanced accuracy")
    for label in ("accuracy", "balanced accuracy", "macro-F1"):
        assert f"On {label} good is better, " in v
    assert "the difference from poor is significant (McNemar exact p = " in v
    assert "not significant" not in v
    assert "good is the most accurate model here" in v
    assert "Holm" not in v  # one pair: nothing to adjust


def test_several_models_are_holm_adjusted() -> None:
    y = np.repeat([0, 1], [50, 50])
    a = y.copy()
    a[:5] = 1
    b = y.copy()
    b[:12] = 1
    c = y.copy()
    c[:14] = 1
    r = (
        ModelComparator(y, ["x", "y"], n_boot=100)
        .add_predictions("A", a)
        .add_predictions("B", b)
        .add_predictions("C", c)
        .run()
    )
    v = r.verdict
    assert "On accuracy A is best, 0.950 [" in v and "vs B 0.880 [" in v
    assert "Holm-adjusted over 3 pairs" in v
    assert v.count("the difference from") == 2  # the leader against each other model
    p_ab = next(p for p in r.pairwise if {p.model_a, p.model_b} == {"A", "B"})
    word = "significant" if p_ab.significant else "not significant"
    assert f"the difference from B is {word}" in v


def test_single_model() -> None:
    y = np.repeat([0, 1, 2], SUPPORTS)
    r = ModelComparator(y, CLASSES, n_boot=100).add_predictions("MobileNet", np.zeros(108)).run()
    v = r.verdict
    assert v.startswith("MobileNet predicts 'class 0' for every image")
    assert "MobileNet scores accuracy 0.741 [0.741, 0.741], balanced accuracy 0.333" in v
    assert "no other to test it against" in v
    assert "McNemar" not in v

    good = y.copy()
    good[::9] = (good[::9] + 1) % 3
    r = ModelComparator(y, CLASSES, n_boot=100).add_predictions("m", good).run()
    assert r.verdict.startswith("m beats the majority-class baseline")


def test_without_intervals_and_with_ties() -> None:
    y = np.repeat([0, 1], [30, 30])
    m = y.copy()
    m[:3] = 1
    r = (
        ModelComparator(y, ["a", "b"], n_boot=0)
        .add_predictions("m1", m)
        .add_predictions("m2", m)
        .run()
    )
    v = r.verdict
    assert "[" not in v  # no intervals to quote
    assert "On accuracy the models tie at 0.950." in v
    assert "On macro-F1 the models tie at" in v
    assert "m1 and m2 beat the majority-class baseline" in v


def test_baseline_clearing_but_less_accurate_model_is_named() -> None:
    y = np.repeat([0, 1], [90, 10])
    m = y.copy()
    m[:20] = 1  # finds every minority example, loses 20 majority ones: accuracy 0.8 < 0.9
    r = ModelComparator(y, ["a", "b"], n_boot=200).add_predictions("m", m).run()
    assert "m clears the majority-class baseline on balanced accuracy" in r.verdict
    assert "but its accuracy 0.800 is below the baseline's 0.900" in r.verdict
