"""tlkit._atomic and its users: files appear whole or not at all, never over a folder or a link."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tlkit._atomic import atomic_file, atomic_folder, atomic_write_bytes, atomic_write_text
from tlkit.errors import OutputPathError


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under root: file bytes, None for a folder, ``link->target`` for a link."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        key = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[key] = b"link->" + os.readlink(p).encode()
        elif p.is_dir():
            out[key] = None
        elif p.is_file():
            out[key] = p.read_bytes()
        else:  # a pipe: never read (it would block)
            out[key] = b"special"
    return out


def test_write_replaces_a_regular_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    assert atomic_write_text(target, "new") == target
    assert target.read_text() == "new"
    assert atomic_write_bytes(tmp_path / "a.png", b"\x89PNG").read_bytes() == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "report.md"]


@pytest.mark.parametrize("kind", ["folder", "link", "fifo"])
def test_write_refuses_a_folder_link_or_pipe(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    target = tmp_path / "out" / "report.md"
    target.parent.mkdir()
    if kind == "folder":
        target.mkdir()
        (target / "keep.txt").write_text("keep")
    elif kind == "link":
        target.symlink_to(outside)
    else:
        os.mkfifo(target)
    before = _tree(tmp_path)
    with pytest.raises(OutputPathError, match=r"report\.md"):
        atomic_write_text(target, "new")
    with pytest.raises(OutputPathError, match="not a regular file"):
        with atomic_file(target) as tmp:
            tmp.write_text("new")
    assert _tree(tmp_path) == before  # nothing replaced, written through, or left behind


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "m.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="converter"):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half a fi")
            raise RuntimeError("converter crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_atomic_folder_replaces_only_when_told(tmp_path: Path) -> None:
    target = tmp_path / "sm"
    target.mkdir()
    (target / "user.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="not empty"):
        with atomic_folder(target) as tmp:
            (tmp / "new.txt").write_text("new")
    assert _tree(tmp_path) == {"sm": None, "sm/user.txt": b"mine"}
    with pytest.raises(RuntimeError):
        with atomic_folder(target, replace=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("failed half-way")
    assert _tree(tmp_path) == {"sm": None, "sm/user.txt": b"mine"}
    with atomic_folder(target, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _tree(tmp_path) == {"sm": None, "sm/new.txt": b"new"}
    (tmp_path / "file").write_text("a file")
    with pytest.raises(OutputPathError, match="a file"):
        with atomic_folder(tmp_path / "file", replace=True):
            pass
    assert (tmp_path / "file").read_text() == "a file"


# -- the report writers -------------------------------------------------------------------------


def _link_trap(folder: Path, name: str, tmp_path: Path) -> Path:
    """``folder/name`` as a link to a private file outside: a writer must not write through it."""
    secret = tmp_path / "private.txt"
    secret.write_text("private")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).symlink_to(secret)
    return secret


def test_compare_report_refuses_a_link_and_overwrites_its_own_files(tmp_path: Path) -> None:
    from tlkit.compare import ModelComparator

    y = np.array([0, 1, 0, 1, 1, 0])
    report = ModelComparator(y, ["a", "b"], n_boot=0).add_predictions("m", y).run()
    out = tmp_path / "report"
    first = report.save(out)
    again = report.save(out)  # its own previous files: replaced
    assert first == again and all(p.is_file() for p in again)
    (out / "report.md").unlink()
    secret = _link_trap(out, "report.md", tmp_path)
    with pytest.raises(OutputPathError, match=r"report\.md"):
        report.save(out)
    assert secret.read_text() == "private" and (out / "report.md").is_symlink()


def test_audit_report_refuses_a_folder_or_link(tmp_path: Path) -> None:
    from tlkit.audit import AuditReport

    report = AuditReport(tmp_path, ("a", "b"), {c: {"train": 2, "val": 1, "test": 1} for c in "ab"})
    out = tmp_path / "audit"
    secret = _link_trap(out, "audit.md", tmp_path)
    (out / "audit.json").mkdir()
    with pytest.raises(OutputPathError, match=r"audit\.md"):
        report.save(out)
    assert secret.read_text() == "private"
    (out / "audit.md").unlink()
    with pytest.raises(OutputPathError, match=r"audit\.json.*a folder"):
        report.save(out)
    assert (out / "audit.json").is_dir()


def test_split_save_refuses_a_link(tree: Path, tmp_path: Path) -> None:
    from tlkit import DatasetSplitter

    split = DatasetSplitter(val=0.2, test=0.2, seed=7).split(tree)
    out = tmp_path / "out"
    secret = _link_trap(out, "photos.split.json", tmp_path)
    with pytest.raises(OutputPathError, match=r"photos\.split\.json"):
        split.save(out / "photos.split.json")
    assert secret.read_text() == "private"
    (out / "photos.split.json").unlink()
    split.save(out / "photos.split.json")
    split.save(out / "photos.split.json")  # its own file: replaced
    assert sorted(p.name for p in out.iterdir()) == ["photos.split.json"]
