"""What a manifest may reach (its folder, unless the caller says otherwise) and hand edits.

Issue 18, findings 7 and 8: a manifest's stored root is confined to the
manifest's folder, entries to the root (no ``..``, absolute path or symlink
out), every entry needs its hash; the stored assignment is re-derived from the
stored seed, settings, labels and groups, and a manifest that differs was
edited (``on_edit=``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import make_tree, write_image

from tlkit import DatasetSplitter, Split
from tlkit.cli import main
from tlkit.data import inspect_file
from tlkit.errors import ManifestError, ManifestMismatchError


@pytest.fixture
def saved(tree: Path, tmp_path: Path) -> tuple[Split, Path]:
    split = DatasetSplitter(val=0.2, test=0.2, seed=7).split(tree)
    return split, split.save(tmp_path / "photos.split.json")


def _rewrite(path: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _entry(data: dict[str, Any], rel: str) -> dict[str, Any]:
    return next(s for s in data["samples"] if s["path"] == rel)


def _private_photo(tmp_path: Path) -> tuple[Path, str]:
    """A 'private' folder outside any manifest's folder, with one valid image."""
    private = write_image(tmp_path / "home" / "private" / "a" / "secret.png", color=4242)
    return private.parents[1], inspect_file(private).sha256


def _evil_manifest(tmp_path: Path, saved: tuple[Split, Path], **root: Any) -> Path:
    """A manifest in its own folder whose root points at the private folder."""
    _, good = saved
    folder, sha = _private_photo(tmp_path)
    data = json.loads(good.read_text())
    data.update(root or {"root": os.path.relpath(folder, tmp_path / "evil")})
    data["root_absolute"] = root.get("root_absolute", str(folder))
    data["samples"][0].update(path="a/secret.png", sha256=sha, width=8, height=8)
    evil = tmp_path / "evil" / "split.json"
    evil.parent.mkdir()
    evil.write_text(json.dumps(data))
    return evil


# -- finding 7: the root and the entries stay where they belong ------------------------------------


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_stored_root_outside_the_manifest_folder_is_refused(
    saved: tuple[Split, Path], tmp_path: Path, how: str
) -> None:
    folder, _ = _private_photo(tmp_path)
    kw = {"root": None, "root_absolute": str(folder)} if how == "absolute" else {}
    evil = _evil_manifest(tmp_path, saved, **kw)
    with pytest.raises(ManifestError, match=r"outside its own folder.*pass the dataset folder"):
        Split.load(evil, verify=None, on_edit="warn")


def test_audit_does_not_embed_a_photo_from_outside(
    saved: tuple[Split, Path], tmp_path: Path
) -> None:
    evil = _evil_manifest(tmp_path, saved)
    out = tmp_path / "report"
    flags = ["--no-label-issues", "--no-near-duplicates", "--on-edit", "warn"]
    proc = subprocess.run(
        [sys.executable, "-m", "tlkit", "audit", str(evil), "-o", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "outside its own folder" in proc.stderr and "--root DATASET_FOLDER" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "audit.html").exists()


def test_a_symlinked_root_leading_out_is_refused(saved: tuple[Split, Path], tmp_path: Path) -> None:
    folder, _ = _private_photo(tmp_path)
    evil = _evil_manifest(tmp_path, saved, root="photos", root_absolute=None)
    (evil.parent / "photos").symlink_to(folder, target_is_directory=True)
    with pytest.raises(ManifestError, match="outside its own folder"):
        Split.load(evil, verify=None, on_edit="warn")


def test_a_symlinked_entry_leading_out_is_refused_even_with_root(
    saved: tuple[Split, Path], tmp_path: Path
) -> None:
    split, path = saved
    secret = write_image(tmp_path / "home" / "secret.png", color=99)
    victim = split.train[0].path
    (split.root / victim).unlink()
    (split.root / victim).symlink_to(secret)
    for kw in ({}, {"root": split.root}):
        with pytest.raises(ManifestError, match=rf"lists '{victim}', which a symbolic link takes"):
            Split.load(path, verify=None, **kw)


@pytest.mark.parametrize("bad", ["a/./x.png", "a//x.png", "a/x\x00.png", "a/"])
def test_entries_that_are_not_plain_relative_paths_are_refused(
    saved: tuple[Split, Path], bad: str
) -> None:
    _, path = saved
    _rewrite(path, lambda d: d["samples"][0].update(path=bad))
    with pytest.raises(ManifestError, match="points outside its dataset root"):
        Split.load(path)


@pytest.mark.parametrize("sha", ["", None, "ABC", "0" * 63, "G" * 64])
def test_an_empty_missing_or_malformed_hash_is_refused(saved: tuple[Split, Path], sha: Any) -> None:
    _, path = saved

    def change(d: dict[str, Any]) -> None:
        if sha is None:
            del d["samples"][0]["sha256"]
        else:
            d["samples"][0]["sha256"] = sha

    _rewrite(path, change)
    for verify in ("hash", "exists", None):
        with pytest.raises(ManifestError, match="sha256"):
            Split.load(path, verify=verify)


def test_manifest_beside_or_inside_its_folder_loads_by_default(tree: Path) -> None:
    split = DatasetSplitter(val=0.2, test=0.2, seed=1).split(tree)
    for where in (tree.parent / "photos.split.json", tree / "split.json"):
        assert Split.load(split.save(where)) == split


def test_manifest_kept_elsewhere_needs_the_root_named(tree: Path, tmp_path: Path) -> None:
    split = DatasetSplitter(val=0.2, test=0.2, seed=1).split(tree)
    path = split.save(tmp_path / "out" / "split.json")
    with pytest.raises(ManifestError, match=r"outside its own folder.*root="):
        Split.load(path)
    assert Split.load(path, root=tree) == split


def test_cli_root_flag_and_split_note(tree: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "out" / "split.json"
    assert main(["split", str(tree), "--val", "0.2", "--test", "0.2", "-o", str(out)]) == 0
    assert f"need --root '{tree}'" in capsys.readouterr().err
    audit = ["audit", str(out), "-o", str(tmp_path / "r"), "--no-label-issues"]
    assert main(audit) == 1
    assert "--root DATASET_FOLDER" in capsys.readouterr().err
    assert main([*audit, "--root", str(tree)]) == 0
    assert (tmp_path / "r" / "audit.html").is_file()


# -- finding 8: hand edits -------------------------------------------------------------------------


def test_a_test_file_moved_to_train_is_refused_or_warned(saved: tuple[Split, Path]) -> None:
    split, path = saved
    victim = split.test[0].path
    _rewrite(path, lambda d: _entry(d, victim).update(split="train"))
    with pytest.raises(
        ManifestMismatchError,
        match=rf"(?s)edited.*'{victim}' is in train but its seed and "
        r"settings put it in test.*on_edit='warn'",
    ):
        Split.load(path)
    with pytest.warns(UserWarning, match="was edited"):
        loaded = Split.load(path, on_edit="warn")
    assert victim in [s.path for s in loaded.train]
    assert any(f"'{victim}' is in train" in w for w in loaded.warnings)


def test_a_relabelled_file_is_refused(saved: tuple[Split, Path]) -> None:
    split, path = saved
    victim = split.train[0].path  # in folder a, label 0
    _rewrite(path, lambda d: _entry(d, victim).update(label=1))
    with pytest.raises(
        ManifestMismatchError, match=rf"'{victim}' has label 1 \('b'\) but lies in the class folder"
    ):
        Split.load(path)


def test_relabelling_a_split_samples_manifest_changes_the_assignment(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "flat", {"all": 40})
    pairs = [(f"all/all_{i:03d}.png", "cat" if i < 20 else "dog") for i in range(40)]
    split = DatasetSplitter(val=0.25, test=0.25, seed=3).split_samples(pairs, root=root)
    path = split.save(root / "split.json")
    assert Split.load(path) == split
    victim = split.test[0].path
    data = json.loads(path.read_text())
    _entry(data, victim)["label"] = 1 - _entry(data, victim)["label"]
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestMismatchError, match="its seed and settings put it in"):
        Split.load(path)


@pytest.mark.parametrize(
    "label, kind",
    [(1.9, "float"), (1.0, "float"), (True, "bool"), ("1", "str"), (None, "NoneType")],
)
def test_labels_must_be_integers(saved: tuple[Split, Path], label: Any, kind: str) -> None:
    _, path = saved
    _rewrite(path, lambda d: d["samples"][0].update(label=label))
    with pytest.raises(ManifestError, match=rf"label must be an integer class index.*\({kind}\)"):
        Split.load(path)


@pytest.mark.parametrize(
    "names, match",
    [
        (["a", "b", "a"], "class name 'a' appears twice"),
        (["a"], r"1 class\(es\).*at least 2"),
        ([], r"0 class\(es\).*at least 2"),
        (["a", 1, "c"], "class_names must be a list of non-empty strings"),
        (["a", "", "c"], "class_names must be a list of non-empty strings"),
    ],
)
def test_class_names_are_unique_strings_and_at_least_two(
    saved: tuple[Split, Path], names: list[Any], match: str
) -> None:
    _, path = saved
    _rewrite(path, lambda d: d.update(class_names=names))
    with pytest.raises(ManifestError, match=match):
        Split.load(path)


def test_groups_not_shaped_as_the_splitter_makes_them_are_edits(saved: tuple[Split, Path]) -> None:
    split, path = saved
    a, b = split.train[0].path, split.train[1].path
    _rewrite(path, lambda d: [_entry(d, p).update(group=b) for p in (a, b)])
    with pytest.raises(ManifestMismatchError, match=rf"group '{b}' \(2 file\(s\)\) is not named"):
        Split.load(path)
    twin = split.test[0]
    _rewrite(path, lambda d: [_entry(d, p).update(group=p) for p in (a, b)])
    _rewrite(path, lambda d: _entry(d, a).update(sha256=twin.sha256))
    with pytest.raises(ManifestError, match=r"identical files .* in test, train"):
        Split.load(path, verify=None)
    with pytest.raises(ManifestMismatchError, match="same content as the files of group"):
        Split.load(path, verify=None, on_leak="warn")


def test_a_manifest_without_settings_cannot_be_checked(saved: tuple[Split, Path]) -> None:
    split, path = saved
    _rewrite(path, lambda d: d.pop("params"))
    with pytest.raises(ManifestMismatchError, match="does not record the splitter settings"):
        Split.load(path)
    with pytest.warns(UserWarning, match="does not record"):
        assert Split.load(path, on_edit="warn").test == split.test
    with pytest.raises(ValueError, match="on_edit must be"):
        Split.load(path, on_edit="ignore")


def test_an_edited_orientation_or_size_is_a_changed_file(saved: tuple[Split, Path]) -> None:
    split, path = saved
    victim = split.val[0].path
    _rewrite(path, lambda d: _entry(d, victim).update(orientation=6))
    with pytest.raises(ManifestMismatchError, match=rf"{victim}: changed \(the manifest records"):
        Split.load(path)


def test_settings_that_cannot_have_made_the_split(saved: tuple[Split, Path]) -> None:
    _, path = saved
    _rewrite(path, lambda d: d["params"].update(val=500))
    with pytest.raises(ManifestMismatchError, match="settings cannot have made it"):
        Split.load(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"groups": r"_0(\d)\d\.png$"},
        {"on_conflict": "keep_first"},
        {"val": 3, "test": 5},
        {"val": 0.0, "test": 0.3},
        {"near_duplicates": "group"},
    ],
)
def test_every_kind_of_split_reloads_unchanged(tree: Path, kwargs: dict[str, Any]) -> None:
    shutil.copy(tree / "a" / "a_000.png", tree / "a" / "a_copy.png")
    shutil.copy(tree / "b" / "b_000.png", tree / "c" / "c_conflict.png")
    kwargs.setdefault("on_conflict", "drop")
    split = DatasetSplitter(seed=5, allow_small_classes=True, **kwargs).split(tree)
    assert Split.load(split.save(tree.parent / "photos.split.json")) == split
