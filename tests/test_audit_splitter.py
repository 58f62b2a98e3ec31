"""DatasetSplitter(near_duplicates=...): planted near-duplicates never straddle splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.audit_helpers import VARIANTS, texture, variant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tlkit.data._neardup as neardup
from tlkit import DatasetSplitter

N_DISTINCT = 36
HASHABLE = tuple(k for k in VARIANTS if k != "crop")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[tuple[str, str]]]:
    """36 distinct textures and a planted copy of the first 12 (resized, JPEG, grey in turn).

    5% crops are left to the audit's feature test: pHash misses a third of them
    (docs/guide/audit.rst), and the splitter groups by pHash only.
    """
    root = tmp_path_factory.mktemp("ndpool")
    rng = np.random.default_rng(5)
    names, planted = [], []
    for i in range(N_DISTINCT):
        im = texture(rng, size=64)
        im.save(root / f"img_{i:03d}.png")
        names.append(f"img_{i:03d}.png")
        if i < 12:
            kind = HASHABLE[i % len(HASHABLE)]
            name = f"copy_{i:03d}_{kind}.png"
            variant(im, kind).save(root / name)
            names.append(name)
            planted.append((f"img_{i:03d}.png", name))
    return root, names, planted


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**31),
    val=st.sampled_from([0.15, 0.2, 0.3]),
    test=st.sampled_from([0.15, 0.2, 0.3]),
    labels=st.lists(st.integers(0, 1), min_size=N_DISTINCT, max_size=N_DISTINCT),
)
def test_group_keeps_planted_pairs_in_one_split(pool, seed, val, test, labels) -> None:
    root, names, planted = pool
    label_of = {f"img_{i:03d}.png": labels[i] for i in range(N_DISTINCT)}
    for a, b in planted:
        label_of[b] = label_of[a]
    if min(sum(1 for v in label_of.values() if v == c) for c in (0, 1)) < 10:
        label_of = {n: k % 2 for k, n in enumerate(sorted(label_of))}
        for a, b in planted:
            label_of[b] = label_of[a]
    pairs = [(root / n, f"c{label_of[n]}") for n in names]
    split = DatasetSplitter(
        val=val, test=test, seed=seed, near_duplicates="group", allow_small_classes=True
    ).split_samples(pairs, root=root)
    where = {s.path: name for name, part in split.parts.items() for s in part}
    assert len(where) == len(names)
    for a, b in planted:
        assert where[a] == where[b], (a, b, where[a], where[b])
    assert split.params["near_duplicate_pairs_across_splits"] == 0
    assert split.params["near_duplicate_pairs"] >= len(planted)


def test_report_counts_straddling_pairs_and_default_does_not_hash(pool, monkeypatch) -> None:
    root, names, planted = pool
    pairs = [(root / n, "even" if k % 2 == 0 else "odd") for k, n in enumerate(sorted(names))]
    found = []
    for seed in range(3):
        split = DatasetSplitter(seed=seed, near_duplicates="report").split_samples(pairs, root=root)
        where = {s.path: name for name, part in split.parts.items() for s in part}
        across = sum(1 for a, b in planted if where[a] != where[b])
        assert split.params["near_duplicate_pairs_across_splits"] >= across
        if across:
            assert any("straddle two splits" in w for w in split.warnings)
            assert "across splits" in split.summary()
        found.append(across)
    assert any(found)  # the report mode does not move files, so some pairs straddle

    def boom(*a, **k):
        raise AssertionError("the default splitter must not hash images")

    monkeypatch.setattr(neardup, "perceptual_hashes", boom)
    split = DatasetSplitter(seed=0).split_samples(pairs, root=root)
    assert "near_duplicate_pairs" not in split.params
    with pytest.raises(ValueError, match="near_duplicates"):
        DatasetSplitter(near_duplicates="yes")
