"""Tests of tlkit.data.class_weights."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight

from tlkit.data import Sample, SplitPart, class_weights


def test_balanced_matches_sklearn() -> None:
    labels = [0] * 6 + [1] * 3 + [2]
    got = class_weights(labels)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.asarray(labels))
    assert list(got) == [0, 1, 2]
    np.testing.assert_allclose([got[i] for i in range(3)], expected)
    assert got[2] > got[1] > got[0]


def test_accepts_parts_samples_and_arrays() -> None:
    samples = (Sample("a/1.png", 0), Sample("a/2.png", 0), Sample("b/1.png", 1))
    part = SplitPart("train", Path("."), ("a", "b"), samples)
    expected = {0: 0.75, 1: 1.5}
    assert class_weights(part) == pytest.approx(expected)
    assert class_weights(list(samples)) == pytest.approx(expected)
    assert class_weights(np.array([0, 0, 1], np.int32)) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=60),
    mode=st.sampled_from(["balanced", "sqrt", "none"]),
)
def test_weights_average_one_per_sample(labels: list[int], mode: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        w = class_weights(labels, mode=mode, num_classes=6)
    assert sorted(w) == list(range(6))
    per_sample = np.array([w[y] for y in labels])
    assert per_sample.mean() == pytest.approx(1.0)
    counts = np.bincount(labels, minlength=6)
    present = np.flatnonzero(counts)
    if mode != "none":  # rarer classes weigh more
        order = present[np.argsort(counts[present])]
        ws = [w[int(c)] for c in order]
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(ws))


def test_sqrt_is_milder_than_balanced() -> None:
    labels = [0] * 90 + [1] * 10
    b = class_weights(labels)
    s = class_weights(labels, mode="sqrt")
    assert 1.0 < s[1] < b[1] and b[0] < s[0] < 1.0


def test_class_without_samples_gets_zero_and_a_warning_naming_it() -> None:
    part = SplitPart("train", Path("."), ("cat", "dog", "fox"), (Sample("c", 0), Sample("d", 1)))
    with pytest.warns(UserWarning, match="'fox'"):
        w = class_weights(part)
    assert w == {0: 1.0, 1: 1.0, 2: 0.0}
    with pytest.warns(UserWarning, match="class\\(es\\) 1 have no samples"):
        assert class_weights([0, 2, 2], num_classes=3)[1] == 0.0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0, 1],), {"mode": "inverse"}, "'balanced', 'sqrt', 'none'"),
        (([],), {}, "at least one sample"),
        (([0, 3],), {"num_classes": 2}, "out of range"),
        (([0, -1],), {}, ">= 0"),
        (([0.5, 1.0],), {}, "int class indices"),
        (([0, 1],), {"num_classes": 0}, "num_classes"),
    ],
)
def test_invalid_input_is_rejected(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        class_weights(*args, **kwargs)
