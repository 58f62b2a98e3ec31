"""Property tests: partitions are complete, stratified, leak-free and order-independent."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlkit import DatasetSplitter
from tlkit.data._grouping import apportion

POOL = 160


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """160 distinct tiny PNGs, plus 40 byte-identical copies of the first 40."""
    root = tmp_path_factory.mktemp("pool")
    names = []
    for i in range(POOL):
        write_image(root / f"img_{i:03d}.png", size=(4, 4), color=i)
        names.append(f"img_{i:03d}.png")
    for i in range(40):
        (root / f"dup_{i:03d}.png").write_bytes((root / f"img_{i:03d}.png").read_bytes())
    return root, names


fractions = st.sampled_from([0.0, 0.1, 0.15, 0.2, 0.25, 0.3])
settings_ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _floor_or_ceil(x: float) -> set[int]:
    """The integers an exact share ``x`` may round to (``{x}`` when ``x`` is whole)."""
    return {math.floor(x + 1e-9), math.ceil(x - 1e-9)}


def _where(split) -> dict[str, str]:
    return {s.path: name for name, part in split.parts.items() for s in part}


@settings_
@given(
    sizes=st.lists(st.integers(8, 50), min_size=2, max_size=4),
    val=fractions,
    test=fractions,
    seed=st.integers(0, 2**31),
)
def test_partition_complete_stratified_and_order_free(pool, sizes, val, test, seed) -> None:
    root, names = pool
    if sum(sizes) > POOL:
        sizes = [max(8, s * POOL // sum(sizes) - 1) for s in sizes]
    pairs, k = [], 0
    for c, n in enumerate(sizes):
        pairs += [(root / names[k + i], f"class{c}") for i in range(n)]
        k += n
    splitter = DatasetSplitter(val=val, test=test, seed=seed, allow_small_classes=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = splitter.split_samples(pairs, root=root)
        shuffled = list(pairs)
        random.Random(seed).shuffle(shuffled)
        again = splitter.split_samples(shuffled, root=root)

    where = _where(split)
    # Nothing lost, nothing duplicated.
    listed = [s.path for part in split.parts.values() for s in part]
    assert len(listed) == len(set(listed)) == len(pairs)
    assert set(listed) == {p.name for p, _ in pairs}
    # Stratified: exactly the floor or the ceiling of the exact share, per class and split.
    shares = {"train": 1 - val - test, "val": val, "test": test}
    for c, n in enumerate(sizes):
        for name, frac in shares.items():
            got = split.counts()[f"class{c}"][name]
            assert got in _floor_or_ceil(n * frac), (c, name, got, n * frac)
    # Same split whatever the listing order.
    assert _where(again) == where


@settings_
@given(
    n_groups=st.integers(6, 30),
    seed=st.integers(0, 2**31),
    val=st.sampled_from([0.1, 0.2, 0.3]),
    data=st.data(),
)
def test_groups_and_duplicates_never_straddle(pool, n_groups, seed, val, data) -> None:
    root, names = pool
    # Files 0..39 have identical copies dup_000..dup_039; put originals and copies in one
    # class (so they are not conflicts) and assign random group keys to the rest.
    files = names[:120] + [f"dup_{i:03d}.png" for i in range(40)]
    label = {f: ("x" if i % 2 == 0 else "y") for i, f in enumerate(names[:120])}
    for i in range(40):
        label[f"dup_{i:03d}.png"] = label[names[i]]
    keys = data.draw(st.lists(st.integers(0, n_groups - 1), min_size=160, max_size=160))
    group_of = {f: (keys[i] if i % 3 else None) for i, f in enumerate(files)}
    splitter = DatasetSplitter(val=val, test=0.2, seed=seed, groups=group_of.get)
    split = splitter.split_samples([(root / f, label[f]) for f in files], root=root)
    where = _where(split)
    assert len(where) == 160
    for i in range(40):
        assert where[names[i]] == where[f"dup_{i:03d}.png"]
    homes: dict[int, set[str]] = {}
    for f, g in group_of.items():
        if g is not None:
            homes.setdefault(g, set()).add(where[f])
    assert all(len(h) == 1 for h in homes.values())
    # The recorded group (the manifest's "group") joins exactly the files that must stay
    # together: same key, or identical copies, and chains of those.
    recorded = {s.path: s.group for part in split.parts.values() for s in part}
    parent = {f: f for f in files}

    def find(f: str) -> str:
        while parent[f] != f:
            f = parent[f]
        return f

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for i in range(40):
        union(names[i], f"dup_{i:03d}.png")
    holders: dict[int, str] = {}
    for f, g in group_of.items():
        if g is not None:
            union(f, holders.setdefault(g, f))
    for f in files:
        for other in files:
            same_component = find(f) == find(other)
            assert (recorded[f] == recorded[other]) == same_component, (f, other)
    # and a file grouped with others is keyed by the first path of its group
    for f in files:
        members = sorted(o for o in files if find(o) == find(f))
        assert recorded[f] == members[0], (f, recorded[f], members[0])


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 500), min_size=1, max_size=12),
    cuts=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2),
)
def test_apportion_floor_or_ceil_and_exact_sums(counts, cuts) -> None:
    a, b = sorted(cuts)
    fractions = np.array([a, b - a, 1.0 - b])
    counts = np.array(counts)
    table = apportion(counts, fractions)
    exact = counts[:, None] * fractions[None, :]
    assert (table >= 0).all()
    for (c, k), got in np.ndenumerate(table):
        assert got in _floor_or_ceil(exact[c, k]), (c, k, got, exact[c, k])
    assert (table.sum(axis=1) == counts).all()
    for k, got in enumerate(table.sum(axis=0)):
        assert got in _floor_or_ceil(exact[:, k].sum()), (k, got, exact[:, k].sum())
