"""Split manifests: round trip, moved folders, changed files, unsafe entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write_image

from tlkit import DatasetSplitter, Split
from tlkit.errors import ManifestError, ManifestMismatchError


@pytest.fixture
def saved(tree: Path, tmp_path: Path) -> tuple[Split, Path]:
    (tree / "a" / ".DS_Store").write_bytes(b"junk")
    split = DatasetSplitter(val=0.2, test=0.2, seed=7).split(tree)
    return split, split.save(tmp_path / "photos.split.json")  # beside photos/, as tlkit split


def test_round_trip_is_equal(saved: tuple[Split, Path]) -> None:
    split, path = saved
    loaded = Split.load(path)
    assert loaded == split
    assert loaded.skipped == split.skipped


def test_manifest_content(saved: tuple[Split, Path]) -> None:
    _, path = saved
    data = json.loads(path.read_text())
    assert data["format"] == "tlkit.split" and data["version"] == 2
    assert data["class_names"] == ["a", "b", "c"]
    assert data["params"]["seed"] == 7
    assert data["root"] == "photos"
    entry = data["samples"][0]
    assert set(entry) == {
        "path",
        "label",
        "split",
        "sha256",
        "orientation",
        "width",
        "height",
        "group",
    }
    assert not Path(entry["path"]).is_absolute() and len(entry["sha256"]) == 64
    assert {"path": "a/.DS_Store", "reason": "hidden file", "code": "hidden"} in data["skipped"]


def test_a_version_1_manifest_loads_its_skips_without_codes(
    saved: tuple[Split, Path], tmp_path: Path
) -> None:
    split, path = saved
    data = json.loads(path.read_text())
    data["version"] = 1  # written before skip codes: nothing is guessed from the reasons
    data["skipped"] = [{"path": s["path"], "reason": s["reason"]} for s in data["skipped"]]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    loaded = Split.load(old, root=split.root)
    assert [(s.path, s.reason) for s in loaded.skipped] == [
        (s.path, s.reason) for s in split.skipped
    ]
    assert {s.code for s in loaded.skipped} == {"unknown"} and loaded.skipped


def test_moved_dataset_with_manifest_still_loads(saved: tuple[Split, Path], tmp_path: Path) -> None:
    split, path = saved
    new_home = tmp_path / "moved"
    new_home.mkdir()
    shutil.move(str(split.root), new_home / "photos")
    shutil.move(str(path), new_home / path.name)
    loaded = Split.load(new_home / path.name)
    assert loaded.root == new_home / "photos"
    assert [s.path for s in loaded.test] == [s.path for s in split.test]


def test_explicit_root_for_a_copy(saved: tuple[Split, Path], tmp_path: Path) -> None:
    split, path = saved
    copy = tmp_path / "copy"
    shutil.copytree(split.root, copy)
    loaded = Split.load(path, root=copy)
    assert loaded.root == copy and loaded.test.paths[0].startswith(str(copy))


def test_lost_root_is_an_actionable_error(saved: tuple[Split, Path]) -> None:
    split, path = saved
    shutil.rmtree(split.root)
    with pytest.raises(ManifestError, match=r"cannot find the dataset folder.*pass root="):
        Split.load(path)


def test_changed_and_missing_files_are_reported(saved: tuple[Split, Path]) -> None:
    split, path = saved
    victim, gone = split.test[0], split.train[0]
    write_image(split.root / victim.path, color=123456)
    (split.root / gone.path).unlink()
    with pytest.raises(ManifestMismatchError) as info:
        Split.load(path)
    msg = str(info.value)
    assert f"{victim.path}: changed (content hash differs)" in msg
    assert f"{gone.path}: missing" in msg and "on_mismatch='skip'" in msg

    loaded = Split.load(path, on_mismatch="skip")
    assert len(loaded) == len(split) - 2
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert reasons[gone.path] == "missing since the split was made"
    assert reasons[victim.path].startswith("changed")
    codes = {s.path: s.code for s in loaded.skipped}
    assert codes[gone.path] == "missing" and codes[victim.path] == "changed"
    # "exists" only notices the missing one; None notices nothing.
    with pytest.raises(ManifestMismatchError, match="1 file"):
        Split.load(path, verify="exists")
    assert len(Split.load(path, verify=None)) == len(split)


@pytest.mark.parametrize(
    "bad", ["../outside.png", "/etc/passwd", "a/../../x.png", "C:\\x.png", "C:x.png", ""]
)
def test_entries_escaping_the_root_are_refused(saved: tuple[Split, Path], bad: str) -> None:
    _, path = saved
    data = json.loads(path.read_text())
    data["samples"][3]["path"] = bad
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="points outside its dataset root"):
        Split.load(path)


def test_malformed_manifests(tmp_path: Path, saved: tuple[Split, Path]) -> None:
    _, good = saved
    p = tmp_path / "m.json"
    p.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Split.load(p)
    p.write_text('{"hello": 1}')
    with pytest.raises(ManifestError, match="not a tlkit split manifest"):
        Split.load(p)
    data = json.loads(good.read_text())
    data["version"] = 99
    p.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="version 99"):
        Split.load(p)
    data["version"] = 2
    data["samples"][0]["split"] = "holdout"
    p.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="split 'holdout'"):
        Split.load(p, root=saved[0].root)
    data["samples"][0]["split"] = "train"
    data["samples"][0]["label"] = 7
    p.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"label 7, outside 0\.\.2"):
        Split.load(p, root=saved[0].root)
    with pytest.raises(ManifestError, match="does not exist"):
        Split.load(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="verify must be"):
        Split.load(good, verify="md5")
    with pytest.raises(ValueError, match="on_mismatch must be"):
        Split.load(good, on_mismatch="ignore")


# -- leaks in a manifest -------------------------------------------------------------------------


def _edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data["samples"])
    path.write_text(json.dumps(data))
    return path


def _first_in(samples: list[dict], part: str) -> dict:
    return next(s for s in samples if s["split"] == part)


def test_a_file_listed_in_two_parts_is_refused_or_reported(saved: tuple[Split, Path]) -> None:
    split, path = saved
    victim = split.test[0].path

    def leak(samples: list[dict]) -> None:
        entry = next(s for s in samples if s["path"] == victim)
        samples.append({**entry, "split": "train"})

    _edit(path, leak)
    with pytest.raises(
        ManifestError,
        match=rf"(?s)leaks between its parts.*'{victim}' is listed 2 times \(in test, train\)",
    ):
        Split.load(path)
    with pytest.warns(UserWarning, match="leaks between its parts"):
        loaded = Split.load(path, on_leak="warn", on_edit="warn")
    assert victim in [s.path for s in loaded.train] and victim in [s.path for s in loaded.test]
    assert any("is listed 2 times" in w for w in loaded.warnings)


def test_a_file_listed_twice_in_one_part_is_refused(saved: tuple[Split, Path]) -> None:
    _, path = saved
    _edit(path, lambda samples: samples.append(dict(_first_in(samples, "val"))))
    with pytest.raises(ManifestError, match=r"is listed 2 times \(in val, val\)"):
        Split.load(path)


def test_a_broken_group_is_refused_or_reported(saved: tuple[Split, Path]) -> None:
    _, path = saved

    def straddle(samples: list[dict]) -> None:
        a, b = _first_in(samples, "train"), _first_in(samples, "test")
        b["group"] = a["group"] = a["path"]

    _edit(path, straddle)
    with pytest.raises(ManifestError, match=r"group '.*' is split across test, train"):
        Split.load(path)
    with pytest.warns(UserWarning, match="is split across test, train"):
        loaded = Split.load(path, on_leak="warn", on_edit="warn")
    assert len(loaded) == len(json.loads(path.read_text())["samples"])


def test_identical_files_in_two_parts_are_refused(saved: tuple[Split, Path]) -> None:
    _, path = saved

    def copy_content(samples: list[dict]) -> None:
        _first_in(samples, "val")["sha256"] = _first_in(samples, "train")["sha256"]

    _edit(path, copy_content)
    with pytest.raises(ManifestError, match=r"identical files \(sha256 .*\) in train, val"):
        Split.load(path, verify=None)


def test_a_clean_manifest_has_no_leak_warning(saved: tuple[Split, Path]) -> None:
    import warnings

    _, path = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = Split.load(path)
    assert not any("leak" in w for w in loaded.warnings)
    with pytest.raises(ValueError, match="on_leak must be"):
        Split.load(path, on_leak="ignore")


def test_identical_files_in_one_part_are_not_a_leak(saved: tuple[Split, Path]) -> None:
    import warnings

    _, path = saved

    def twins(samples: list[dict]) -> None:
        a, b = [s for s in samples if s["split"] == "train"][:2]
        b["sha256"] = a["sha256"]
        a["group"] = b["group"] = min(a["path"], b["path"])

    _edit(path, twins)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = Split.load(path, verify=None)
    assert not any("leak" in w for w in loaded.warnings)


def test_leak_warning_points_at_the_caller_and_lists_at_most_five(
    saved: tuple[Split, Path],
) -> None:
    _, path = saved

    def many(samples: list[dict]) -> None:
        for entry in [s for s in samples if s["split"] == "test"][:6]:
            samples.append({**entry, "split": "train"})

    _edit(path, many)
    with pytest.warns(UserWarning) as record:
        loaded = Split.load(path, on_leak="warn", on_edit="warn")
    assert record[0].filename == __file__
    (message,) = [w for w in loaded.warnings if "leaks" in w]
    assert message.count("is listed 2 times") == 5 and message.endswith("; ... and 1 more")
