"""groups=: matched against file names by default, counted, and never silently a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_image

from tlkit import DatasetSplitter
from tlkit.data import Split
from tlkit.errors import DatasetError


def _bursts(root: Path, classes: tuple[str, ...] = ("a", "b", "c"), bursts: int = 10) -> Path:
    k = 0
    for cls in classes:
        for _ in range(bursts):
            for shot in range(4):
                write_image(root / cls / f"BURST_{k // 4:04d}_{shot}.png", color=k)
                k += 1
    return root


def test_anchored_file_name_pattern_groups_bursts(tmp_path: Path) -> None:
    root = _bursts(tmp_path / "d")
    for seed in range(4):
        split = DatasetSplitter(val=0.2, test=0.2, seed=seed, groups=r"^(BURST_\d+)_").split(root)
        homes: dict[str, set[str]] = {}
        for name, part in split.parts.items():
            for s in part:
                homes.setdefault(s.path.rsplit("/", 1)[-1][:10], set()).add(name)
        assert len(homes) == 30
        assert all(len(h) == 1 for h in homes.values()), homes
        text = split.summary()
        assert "120 of 120 files matched, 30 groups formed" in text
        assert "matched on the file name" in text


def test_pattern_matching_nothing_raises_with_pattern_and_example(tmp_path: Path) -> None:
    root = _bursts(tmp_path / "d", bursts=5)
    with pytest.raises(DatasetError) as err:
        DatasetSplitter(groups=r"^(IMG_\d+)_").split(root)
    msg = str(err.value)
    assert "^(IMG_\\\\d+)_" in msg or r"^(IMG_\d+)_" in msg
    assert "BURST_0000_0.png" in msg and "groups_on='path'" in msg
    # the same anchored pattern against relative paths matches nothing either
    with pytest.raises(DatasetError, match="relative path"):
        DatasetSplitter(groups=r"^(BURST_\d+)_", groups_on="path").split(root)


def test_partial_match_counts_and_path_option(tmp_path: Path) -> None:
    root = _bursts(tmp_path / "d", bursts=5)
    for i in range(6):
        write_image(root / "a" / f"other_{i}.png", color=1000 + i)
    split = DatasetSplitter(val=0.2, test=0.2, groups=r"^(BURST_\d+)_").split(root)
    assert split.params["groups_matched"] == 60
    assert split.params["groups_formed"] == 15
    by_path = DatasetSplitter(val=0.2, test=0.2, groups=r"^a/", groups_on="path").split(root)
    assert by_path.params["groups_matched"] == 26
    assert by_path.params["groups_formed"] == 1
    with pytest.raises(ValueError, match="groups_on"):
        DatasetSplitter(groups="x", groups_on="stem")


def test_manifest_round_trip_and_old_manifest_loads(tmp_path: Path) -> None:
    root = _bursts(tmp_path / "d", bursts=5)
    split = DatasetSplitter(val=0.2, test=0.2, groups=r"^(BURST_\d+)_").split(root)
    path = split.save(tmp_path / "s.json")
    again = Split.load(path)
    assert again.summary() == split.summary()
    # a manifest written before groups_on/groups_matched existed still loads and summarises
    data = json.loads(path.read_text())
    for key in ("groups_on", "groups_matched", "groups_formed"):
        data["params"].pop(key)
    path.write_text(json.dumps(data))
    old = Split.load(path)
    assert old.test.paths == split.test.paths
    assert "files matched" not in old.summary()


def test_callable_groups_are_counted_without_a_match_target(tmp_path: Path) -> None:
    root = _bursts(tmp_path / "d", bursts=5)
    split = DatasetSplitter(val=0.2, test=0.2, groups=lambda p: p[:12]).split(root)
    text = split.summary()
    assert "60 of 60 files matched, 15 groups formed" in text
    assert "matched on" not in text and "groups_on" not in split.params
