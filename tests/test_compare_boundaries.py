"""The comparator's decisions at their boundaries: Holm, interval vs baseline, min_support.

Each test sits where a one-character change in ``_warnings``/``_pairwise``
(raw instead of adjusted p, point estimate instead of the interval's lower
bound, ``<`` for ``<=``) flips the outcome, with a control on the other side.
"""

from __future__ import annotations

import numpy as np
import pytest

from tlkit.compare import ModelComparator, holm


def _not_significant(report, a: str, b: str) -> list[str]:
    return [w for w in report.warnings if f"models {a!r} and {b!r}" in w and "not significant" in w]


def _three_models() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A and C agree; B differs from both on 6 images, all of which B gets wrong.

    McNemar exact p for (0 vs 6 discordant) is 2 * 0.5**6 = 0.03125 < 0.05 for
    A-B and B-C; Holm over 3 pairs lifts both to 0.09375 >= 0.05.
    """
    y = np.array([0] * 20 + [1] * 20)
    a = y.copy()
    b = y.copy()
    b[:6] = 1  # six right for A, wrong for B
    return y, {"A": a, "B": b, "C": a.copy()}


def _run(y: np.ndarray, preds: dict[str, np.ndarray], **kwargs):
    c = ModelComparator(y, ["neg", "pos"], n_boot=0, **kwargs)
    for name, p in preds.items():
        c.add_predictions(name, p)
    return c.run()


def test_raw_p_below_alpha_but_holm_adjusted_above_is_not_significant_and_warned() -> None:
    y, preds = _three_models()
    report = _run(y, preds)
    ab = next(p for p in report.pairwise if (p.model_a, p.model_b) == ("A", "B"))
    assert ab.test.p_value == pytest.approx(0.03125)
    assert ab.p_adjusted == pytest.approx(0.09375)
    assert ab.p_adjusted == pytest.approx(holm([0.03125, 1.0, 0.03125])[0])
    assert ab.test.p_value < 0.05 <= ab.p_adjusted
    assert ab.significant is False
    (warning,) = _not_significant(report, "A", "B")
    assert "McNemar exact p = 0.0312" in warning and "Holm-adjusted over 3 pairs 0.0938" in warning
    # Control: without the correction the same pair is significant and not warned about.
    raw = _run(y, preds, correction=None)
    ab_raw = next(p for p in raw.pairwise if (p.model_a, p.model_b) == ("A", "B"))
    assert ab_raw.significant is True and ab_raw.p_adjusted == pytest.approx(0.03125)
    assert _not_significant(raw, "A", "B") == []


def test_p_exactly_alpha_is_not_significant() -> None:
    y, preds = _three_models()
    two = {"A": preds["A"], "B": preds["B"]}
    at = _run(y, two, correction=None, alpha=0.03125)
    assert at.pairwise[0].p_adjusted == 0.03125 and at.pairwise[0].significant is False
    assert len(_not_significant(at, "A", "B")) == 1
    above = _run(y, two, correction=None, alpha=0.0313)
    assert above.pairwise[0].significant is True
    assert _not_significant(above, "A", "B") == []


def _baseline_warning(report, name: str) -> list[str]:
    return [
        w
        for w in report.warnings
        if w.startswith(f"model {name!r}: balanced accuracy") and "does not clear" in w
    ]


def test_balanced_accuracy_above_baseline_but_interval_touching_it_is_warned() -> None:
    y = np.array([0] * 30 + [1] * 30)
    weak = y.copy()
    weak[:14] = 1  # 16/30 right on class 0
    weak[30:44] = 0  # 16/30 right on class 1: balanced accuracy 0.533
    strong = y.copy()
    strong[:2] = 1
    c = ModelComparator(y, ["neg", "pos"], n_boot=300, seed=0)
    report = c.add_predictions("weak", weak).add_predictions("strong", strong).run()
    base = report.baseline.metrics["balanced_accuracy"]
    w = report["weak"]
    assert w.metrics["balanced_accuracy"] > base  # the point estimate clears the baseline...
    assert w.ci["balanced_accuracy"].low <= base  # ...the interval does not
    assert len(_baseline_warning(report, "weak")) == 1
    s = report["strong"]
    assert s.ci["balanced_accuracy"].low > base
    assert _baseline_warning(report, "strong") == []


def test_interval_lower_bound_equal_to_the_baseline_is_warned() -> None:
    # A model that always says "neg" has balanced accuracy exactly 0.5 in every resample.
    y = np.array([0] * 30 + [1] * 30)
    c = ModelComparator(y, ["neg", "pos"], n_boot=50, seed=0)
    report = c.add_predictions("constant", np.zeros(60, dtype=int)).run()
    ci = report["constant"].ci["balanced_accuracy"]
    assert ci.low == report.baseline.metrics["balanced_accuracy"] == 0.5
    assert len(_baseline_warning(report, "constant")) == 1


def test_without_intervals_the_point_estimate_decides_at_the_boundary() -> None:
    y = np.array([0] * 30 + [1] * 30)
    equal = np.zeros(60, dtype=int)  # exactly the baseline's 0.5
    above = y.copy()
    above[:20] = 1  # 10/30 and 30/30: 0.667
    report = _run(y, {"equal": equal, "above": above})
    assert len(_baseline_warning(report, "equal")) == 1
    assert "no interval: n_boot=0" in _baseline_warning(report, "equal")[0]
    assert _baseline_warning(report, "above") == []


@pytest.mark.parametrize(("n_small", "warned"), [(9, True), (10, False)])
def test_min_support_boundary_is_fewer_than_ten(n_small: int, warned: bool) -> None:
    y = np.array([0] * 30 + [1] * n_small)
    report = _run(y, {"m": y.copy()})
    support = [w for w in report.warnings if "too few to judge" in w]
    if warned:
        assert support == [f"test class 'pos' has {n_small} examples: too few to judge"]
    else:
        assert support == []
    # the boundary moves with min_support
    moved = _run(y, {"m": y.copy()}, min_support=n_small + 1)
    assert [w for w in moved.warnings if "too few to judge" in w] == [
        f"test class 'pos' has {n_small} examples: too few to judge"
    ]


def test_warning_texts_in_full() -> None:
    """The exact sentences a reader sees (a constant model; one pair, so no Holm note)."""
    y = np.array([0] * 30 + [1] * 30)
    c = ModelComparator(y, ["neg", "pos"], n_boot=50, seed=0, alpha=0.01)
    flip = y.copy()
    flip[:6] = 1  # right for "constant", wrong here: 6 vs 0 discordant, p = 0.03125
    flip[30:] = 0
    report = c.add_predictions("constant", np.zeros(60, dtype=int)).add_predictions("f", flip).run()
    low, high = report["f"].ci["balanced_accuracy"].low, report["f"].ci["balanced_accuracy"].high
    assert list(report.warnings) == [
        "model 'constant': balanced accuracy 0.500, 95% CI [0.500, 0.500], does not clear the "
        "majority-class baseline (0.500)",
        "model 'constant': accuracy 0.500 is no higher than the majority-class baseline's 0.500",
        f"model 'f': balanced accuracy 0.400, 95% CI [{low:.3f}, {high:.3f}], does not clear the "
        "majority-class baseline (0.500)",
        "model 'f': accuracy 0.400 is no higher than the majority-class baseline's 0.500",
        "model 'constant' never predicts class 'pos'",
        # one pair: Holm changes nothing, and the warning claims no adjustment
        "models 'constant' and 'f': the difference is not significant (McNemar exact p = 0.0312; "
        "6 vs 0 images right for only one of them)",
    ]


def test_two_never_predicted_classes_are_plural() -> None:
    y = np.array([0] * 12 + [1] * 12 + [2] * 12)
    report = _run3(y, {"m": np.zeros(36, dtype=int)})
    assert "model 'm' never predicts classes 'b', 'c'" in report.warnings


def _run3(y: np.ndarray, preds: dict[str, np.ndarray], **kwargs):
    c = ModelComparator(y, ["a", "b", "c"], n_boot=0, **kwargs)
    for name, p in preds.items():
        c.add_predictions(name, p)
    return c.run()


def test_holm_note_only_with_holm_and_several_pairs() -> None:
    y, preds = _three_models()
    uncorrected = _run(y, preds, correction=None, alpha=0.01)
    assert uncorrected.warnings and not any("Holm" in w for w in uncorrected.warnings)
    one_pair = _run(y, {"A": preds["A"], "B": preds["B"]}, alpha=0.01)
    (w,) = _not_significant(one_pair, "A", "B")
    assert "Holm" not in w
