"""McNemar's exact test, Holm's adjustment and the stratified bootstrap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from tlkit.compare import ModelComparator, bootstrap_ci, holm, mcnemar_exact
from tlkit.compare._stats import bootstrap_indices, bootstrap_values
from tlkit.metrics import CI_METRICS

# -- McNemar -----------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 80), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_mcnemar_equals_scipy_binomtest(n, k, seed) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    a = np.where(rng.random(n) < rng.random(), y, rng.integers(0, k, n))
    b = np.where(rng.random(n) < rng.random(), y, rng.integers(0, k, n))
    r = mcnemar_exact(y, a, b)
    n_ab = int(np.sum((a == y) & (b != y)))
    n_ba = int(np.sum((a != y) & (b == y)))
    assert (r.a_right_b_wrong, r.a_wrong_b_right) == (n_ab, n_ba)
    assert r.discordant == n_ab + n_ba
    if n_ab + n_ba:
        assert r.p_value == binomtest(n_ab, n_ab + n_ba, 0.5).pvalue
    else:
        assert r.p_value == 1.0
    # Symmetric in the two models.
    assert mcnemar_exact(y, b, a).p_value == r.p_value


def test_mcnemar_known_values() -> None:
    y = np.zeros(30, int)
    a = np.zeros(30, int)
    b = np.zeros(30, int)
    b[:10] = 1  # A right, B wrong on 10 images; the reverse on none
    r = mcnemar_exact(y, a, b)
    assert (r.a_right_b_wrong, r.a_wrong_b_right) == (10, 0)
    assert r.p_value == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(y, a, a).p_value == 1.0


def test_mcnemar_validates() -> None:
    with pytest.raises(ValueError, match="y_pred_b has 2 predictions but y_true has 3 labels"):
        mcnemar_exact([0, 1, 1], [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true must be a 1-D array"):
        mcnemar_exact([[0, 1]], [0, 1], [0, 1])


def test_holm() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.2]), [0.5, 0.4])
    np.testing.assert_allclose(holm([0.9, 0.8, 0.01]), [1.0, 1.0, 0.03])
    assert holm([]).size == 0
    rng = np.random.default_rng(0)
    p = rng.random(7)
    adj = holm(p)
    assert np.all(adj >= p) and np.all(adj <= 1)
    # Definition: adjusted p_(i) = max over j <= i of (m - j) p_(j), capped at 1.
    order = np.argsort(p)
    m = p.size
    expected = [min(1, max((m - j) * p[order[j]] for j in range(i + 1))) for i in range(m)]
    np.testing.assert_allclose(adj[order], expected)


# -- bootstrap -------------------------------------------------------------------------------------


def noisy_case(seed: int, n: int = 120, k: int = 3, right: float = 0.7):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, n, p=np.linspace(2, 1, k) / np.linspace(2, 1, k).sum())
    p = np.where(rng.random(n) < right, y, rng.integers(0, k, n))
    return y, p


def test_stratified_indices_keep_class_supports() -> None:
    y = np.repeat([0, 1, 2], [50, 7, 3])
    for idx in bootstrap_indices(y, 50, seed=1):
        np.testing.assert_array_equal(np.bincount(y[idx], minlength=3), [50, 7, 3])
    # Not a permutation: resampling with replacement repeats some images.
    assert any(len(np.unique(idx)) < y.size for idx in bootstrap_indices(y, 5, seed=1))
    # Unstratified resampling does change the supports.
    counts = {
        tuple(np.bincount(y[i], minlength=3))
        for i in bootstrap_indices(y, 20, seed=1, stratified=False)
    }
    assert len(counts) > 1


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "macro_f1"])
def test_bootstrap_reproducible_under_seed(metric) -> None:
    y, p = noisy_case(0)
    a = bootstrap_ci(y, p, metric, n_boot=300, seed=7)
    b = bootstrap_ci(y, p, metric, n_boot=300, seed=7)
    c = bootstrap_ci(y, p, metric, n_boot=300, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.high


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "macro_f1"])
def test_bootstrap_covers_the_estimate(seed, metric) -> None:
    y, p = noisy_case(seed, n=60 + 20 * seed, right=0.4 + 0.1 * seed)
    ci = bootstrap_ci(y, p, metric, n_boot=400, seed=seed)
    assert ci.low <= ci.estimate <= ci.high
    assert ci.estimate in ci
    assert ci.estimate == CI_METRICS[metric](y, p, np.arange(3))


def test_bootstrap_is_sklearn_on_each_resample() -> None:
    """The interval is the percentile interval of scikit-learn's metric on each resample."""
    y, p = noisy_case(4, n=90)
    labels = np.arange(3)
    refs = {
        "accuracy": lambda a, b: accuracy_score(a, b),
        "balanced_accuracy": lambda a, b: balanced_accuracy_score(a, b),
        "macro_f1": lambda a, b: f1_score(a, b, labels=labels, average="macro", zero_division=0),
    }
    for name, ref in refs.items():
        values = [ref(y[i], p[i]) for i in bootstrap_indices(y, 200, seed=3)]
        lo, hi = np.percentile(values, [2.5, 97.5])
        ci = bootstrap_ci(y, p, name, n_boot=200, seed=3)
        assert (ci.low, ci.high) == pytest.approx((lo, hi), abs=1e-12)
        # A user-given callable takes the uncached path and gives the same interval.
        ci2 = bootstrap_ci(y, p, ref, n_boot=200, seed=3)
        assert (ci2.low, ci2.high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_bootstrap_cache_equals_plain_loop() -> None:
    y, p = noisy_case(5, n=40)
    p[y == 2] = 2  # perfect on one class: many resamples share a confusion matrix
    fns = [lambda a, b, f=f: f(a, b, np.arange(3)) for f in CI_METRICS.values()]
    fast = bootstrap_values(y, p, fns, 300, seed=0, confusion_only=True)
    plain = bootstrap_values(y, p, fns, 300, seed=0, confusion_only=False)
    np.testing.assert_array_equal(fast, plain)


def test_comparator_intervals_are_bootstrap_ci() -> None:
    y, p = noisy_case(2, n=80)
    r = ModelComparator(y, ["a", "b", "c"], n_boot=250, seed=11).add_predictions("m", p).run()
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        ref = bootstrap_ci(y, p, name, n_boot=250, seed=11, labels=np.arange(3))
        assert r["m"].ci[name] == ref
    # Same seed, same report; another seed, other intervals.
    again = ModelComparator(y, ["a", "b", "c"], n_boot=250, seed=11).add_predictions("m", p)
    assert again.run()["m"].ci == r["m"].ci
    other = ModelComparator(y, ["a", "b", "c"], n_boot=250, seed=12).add_predictions("m", p)
    assert other.run()["m"].ci != r["m"].ci


def test_constant_predictions_have_a_degenerate_interval() -> None:
    """Stratified resampling keeps supports, so a constant predictor scores the same every time."""
    y = np.repeat([0, 1, 2], [80, 20, 8])
    for name, value in [("accuracy", 80 / 108), ("balanced_accuracy", 1 / 3)]:
        ci = bootstrap_ci(y, np.zeros(108, int), name, n_boot=100)
        assert ci.low == ci.high == pytest.approx(value)


def test_bootstrap_validates() -> None:
    with pytest.raises(ValueError, match="metric must be a callable or one of"):
        bootstrap_ci([0, 1], [0, 1], "auc")
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0, 1], [0, 1], "accuracy", confidence=95)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([0, 1], [0, 1], "accuracy", n_boot=-5)
    with pytest.raises(ValueError, match="y_pred has 1 predictions"):
        bootstrap_ci([0, 1], [0], "accuracy")


def test_pairwise_p_values_are_scipy() -> None:
    y, a = noisy_case(6, n=100, right=0.6)
    _, b = noisy_case(7, n=100, right=0.8)
    _, c = noisy_case(8, n=100, right=0.5)
    preds = {"a": a, "b": b, "c": c}
    cmp_ = ModelComparator(y, ["x", "y", "z"], n_boot=0)
    for name, pred in preds.items():
        cmp_.add_predictions(name, pred)
    r = cmp_.run()
    for pair, (n1, n2) in zip(r.pairwise, itertools.combinations(preds, 2), strict=True):
        assert (pair.model_a, pair.model_b) == (n1, n2)
        p1, p2 = preds[n1], preds[n2]
        b_ = int(np.sum((p1 == y) & (p2 != y)))
        c_ = int(np.sum((p1 != y) & (p2 == y)))
        assert pair.test.p_value == binomtest(b_, b_ + c_, 0.5).pvalue
    np.testing.assert_allclose(
        [p.p_adjusted for p in r.pairwise], holm([p.test.p_value for p in r.pairwise])
    )
