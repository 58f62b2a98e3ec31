"""Cross-validation folds and nested fractions: complete, stratified, leak-free, seeded."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import make_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from tlkit import DatasetSplitter
from tlkit.data import Folds, Sample, make_folds
from tlkit.data._folds import leak_free_groups, nested_subsets, partition
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError, SmallClassError


@st.composite
def sample_lists(draw: st.DrawFn) -> tuple[list[Sample], int]:
    """Samples of 2-4 classes with random duplicates (shared content) and groups= keys."""
    k = draw(st.integers(2, 4))
    sizes = draw(st.lists(st.integers(5, 40), min_size=k, max_size=k))
    n_dup = draw(st.integers(0, 6))
    n_keys = draw(st.integers(0, 8))
    rng = random.Random(draw(st.integers(0, 2**31)))
    out = []
    for c, n in enumerate(sizes):
        for i in range(n):
            sha = f"dup{rng.randrange(n_dup)}" if n_dup and rng.random() < 0.15 else f"u{c}_{i}"
            key = f"g{rng.randrange(n_keys)}" if n_keys and rng.random() < 0.3 else ""
            out.append(Sample(f"c{c}/img_{i:03d}.png", c, sha, group=key))
    return out, k


def _groups_of(samples: list[Sample]) -> list[set[str]]:
    return [{s.path for s in g} for g in leak_free_groups(samples)]


def _counts(part, k: int) -> list[int]:
    out = [0] * k
    for s in part:
        out[s.label] += 1
    return out


settings_ = settings(max_examples=60, deadline=None)


@settings_
@given(data=sample_lists(), folds=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_folds_partition_stratified_leak_free_seeded(data, folds, seed) -> None:
    samples, k = data
    names = [f"f{i}" for i in range(folds)]
    parts = partition(samples, k, [1 / folds] * folds, seed, names)
    # a partition: every sample in exactly one fold
    placed = [s.path for n in names for s in parts[n]]
    assert sorted(placed) == sorted(s.path for s in samples)
    assert len(set(placed)) == len(placed)
    # a group (identical content, a groups= key) never straddles folds
    where = {s.path: n for n in names for s in parts[n]}
    groups = _groups_of(samples)
    for g in groups:
        assert len({where[p] for p in g}) == 1, g
    # per class and fold, within one group of the exact stratified share
    biggest = max(len(g) for g in groups)
    totals = _counts(samples, k)
    for n in names:
        for c, have in enumerate(_counts(parts[n], k)):
            assert abs(have - totals[c] / folds) <= biggest, (n, c, have, totals[c])
    # the same seed gives the same folds, whatever the input order
    shuffled = samples[:]
    random.Random(seed).shuffle(shuffled)
    assert partition(shuffled, k, [1 / folds] * folds, seed, names) == parts


def test_folds_without_groups_are_exactly_stratified() -> None:
    samples = [
        Sample(f"{c}/{i}.png", c, f"{c}-{i}") for c in range(3) for i in range((20, 13, 7)[c])
    ]
    parts = partition(samples, 3, [0.2] * 5, 0, [f"f{i}" for i in range(5)])
    for c, n in enumerate((20, 13, 7)):
        assert {_counts(p, 3)[c] for p in parts.values()} <= {n // 5, -(-n // 5)}
    other = partition(samples, 3, [0.2] * 5, 1, [f"f{i}" for i in range(5)])
    assert other != parts  # another seed, other folds


@settings_
@given(
    data=sample_lists(),
    fractions=st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.7, 0.9]), min_size=1, max_size=4),
    full=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_nested_fractions_nested_stratified_leak_free(data, fractions, full, seed) -> None:
    samples, k = data
    fracs = sorted(set(fractions) | ({1.0} if full else set()))
    subsets = nested_subsets(samples, k, fracs, seed)
    assert len(subsets) == len(fracs)
    groups = _groups_of(samples)
    biggest = max(len(g) for g in groups)
    totals = _counts(samples, k)
    previous: set[str] = set()
    for f, sub in zip(fracs, subsets, strict=True):
        paths = {s.path for s in sub}
        assert previous <= paths  # nested: each contains the smaller ones
        previous = paths
        for g in groups:  # whole groups only
            assert g <= paths or not (g & paths)
        for c, have in enumerate(_counts(sub, k)):
            want = max(f * totals[c], 1)
            assert abs(have - want) <= biggest + 1, (f, c, have, want)
    if full:
        assert {s.path for s in subsets[-1]} == {s.path for s in samples}
    assert nested_subsets(list(reversed(samples)), k, fracs, seed) == subsets


# -- make_folds on files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_tree(tmp_path_factory.mktemp("folds") / "data", {"a": 18, "b": 12, "c": 6})
    # a burst of three related shots (groups=), a byte-identical copy, an unreadable file
    for i in range(3):
        (root / "a" / f"burst_1_{i}.png").write_bytes((root / "a" / f"a_{i:03d}.png").read_bytes())
        (root / "a" / f"a_{i:03d}.png").unlink()
    (root / "b" / "copy_of_b0.png").write_bytes((root / "b" / "b_000.png").read_bytes())
    (root / "c" / "broken.png").write_bytes(b"not an image")
    return root


def test_make_folds_from_a_folder_keeps_groups_and_reports_skipped(tree: Path) -> None:
    folds = make_folds(tree, folds=3, repeats=2, seed=5, groups=r"^(burst_\d+)_", progress=False)
    assert isinstance(folds, Folds) and len(folds) == 37
    assert [s.path for s in folds.skipped] == ["c/broken.png"]
    for r in range(2):
        where = folds.fold_of(r)
        assert len(where) == 37
        assert len({where[f"a/burst_1_{i}.png"] for i in range(3)}) == 1
        assert where["b/b_000.png"] == where["b/copy_of_b0.png"]
    assert folds.assignments[0] != folds.assignments[1]  # repeat 1 uses seed 6
    assert (
        make_folds(tree, folds=3, seed=5, groups=r"^(burst_\d+)_", progress=False).assignments[0]
        == (folds.assignments[0])
    )
    text = folds.summary()
    assert "f2" in text and "skipped files: 1" in text


def test_fold_split_trains_on_the_other_folds_with_a_group_safe_val(tree: Path) -> None:
    folds = make_folds(tree, folds=3, seed=0, groups=r"^(burst_\d+)_", progress=False)
    seen = []
    for k, split in enumerate(folds.splits(val=0.2)):
        parts = {n: {s.path for s in p} for n, p in split.parts.items()}
        assert parts["test"] == {s.path for s in folds.assignments[0][k]}
        assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
        assert len(parts["train"] | parts["val"] | parts["test"]) == 37
        assert len(split.val) > 0 and split.params["fold"] == k
        for g in _groups_of(list(folds.samples)):  # no group straddles train and val
            assert g <= parts["train"] or not (g & parts["train"])
        seen.extend(parts["test"])
    assert sorted(seen) == sorted(s.path for s in folds.samples)
    assert len(folds.split(1, val=None).val) == 0


def test_make_folds_pools_a_split(tree: Path) -> None:
    split = DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(tree)
    folds = make_folds(split, folds=4, seed=0)
    assert {s.path for s in folds.samples} == {s.path for p in split.parts.values() for s in p}
    assert folds.skipped == split.skipped
    where = folds.fold_of()
    assert where["b/b_000.png"] == where["b/copy_of_b0.png"]
    with pytest.raises(InvalidArgumentError, match="a Split already carries its groups"):
        make_folds(split, groups="x")


def test_make_folds_refuses_what_cannot_be_folded(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(SmallClassError, match=r"fewer than folds=8.*allow_small_classes=True"):
        make_folds(tree, folds=8, progress=False)
    with pytest.warns(UserWarning, match="fewer than folds=8"):
        folds = make_folds(tree, folds=8, allow_small_classes=True, progress=False)
    assert len(folds.assignments[0]) == 8 and all(folds.assignments[0])
    small = make_tree(tmp_path / "s", {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match="only 4 leak-free group"):
        make_folds(small, folds=5, allow_small_classes=True, progress=False)
    with pytest.raises(InvalidArgumentError, match="folds"):
        make_folds(tree, folds=1)
    with pytest.raises(ArgumentTypeError, match="data must be"):
        make_folds(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="val"):
        make_folds(tree, folds=3, progress=False).split(0, val=1.0)


def test_folds_group_split_by_groups_dict_is_order_free() -> None:
    by_group: dict[str, list[str]] = defaultdict(list)
    samples = [Sample(f"a/{i}.png", i % 2, f"h{i}", group=f"g{i // 3}") for i in range(30)]
    parts = partition(samples, 2, [0.5, 0.5], 3, ["x", "y"])
    for name, part in parts.items():
        for s in part:
            by_group[s.group].append(name)
    assert all(len(set(v)) == 1 for v in by_group.values())
