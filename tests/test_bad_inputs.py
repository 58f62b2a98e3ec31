"""The bad-input corpus: each case gives a named error or a counted skip, never a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg_bytes, make_tree, write_image
from PIL import Image

from tlkit import DatasetSplitter, Split
from tlkit.errors import DatasetError, LabelConflictError, SmallClassError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"a": 12, "b": 12, "c": 12})


def _split(root: Path, **kw: object) -> Split:
    return DatasetSplitter(val=0.25, test=0.25, seed=0, **kw).split(root)


def _reason(split: Split, path: str) -> str:
    found = {s.path: s.reason for s in split.skipped}
    assert path in found, f"{path} not in skipped: {found}"
    return found[path]


def _sample(split: Split, path: str):
    for part in split.parts.values():
        for s in part:
            if s.path == path:
                return s
    raise AssertionError(f"{path} is in no split")


def test_zero_byte_file(root: Path) -> None:
    (root / "a" / "empty.jpg").write_bytes(b"")
    split = _split(root)
    assert _reason(split, "a/empty.jpg") == "empty file (0 bytes)"
    assert len(split) == 36 and len(split.skipped) == 1


def test_truncated_jpeg(root: Path) -> None:
    data = jpeg_bytes((64, 48))
    (root / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert _reason(_split(root), "a/cut.jpg").startswith(
        "cannot decode image: image file is truncated"
    )


def test_text_file_named_jpg(root: Path) -> None:
    (root / "b" / "fake.jpg").write_text("this is not a photo\n")
    assert _reason(_split(root), "b/fake.jpg").startswith("not an image")


def test_unsupported_format_is_skipped_with_advice(root: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(root / "b" / "scan.tiff")
    reason = _reason(_split(root), "b/scan.tiff")
    assert "TIFF images are not supported" in reason and "convert the file" in reason


@pytest.mark.parametrize(
    ("name", "mode", "fmt"),
    [
        ("cmyk.jpg", "CMYK", "JPEG"),
        ("rgba.png", "RGBA", "PNG"),
        ("gray.png", "L", "PNG"),
        ("gray.jpg", "L", "JPEG"),
        ("palette.gif", "P", "GIF"),
        ("palette.png", "P", "PNG"),
        ("old.bmp", "RGB", "BMP"),
    ],
)
def test_valid_image_modes_are_samples(root: Path, name: str, mode: str, fmt: str) -> None:
    write_image(root / "c" / name, size=(10, 7), color=999, mode=mode, fmt=fmt)
    s = _sample(_split(root), f"c/{name}")
    assert (s.width, s.height, s.label) == (10, 7, 2)


def test_16_bit_png_is_valid(root: Path) -> None:
    arr = (np.arange(12 * 9, dtype=np.uint16).reshape(9, 12) * 600).astype(np.uint16)
    Image.fromarray(arr).save(root / "c" / "deep.png")
    assert Image.open(root / "c" / "deep.png").mode.startswith("I")
    s = _sample(_split(root), "c/deep.png")
    assert (s.width, s.height) == (12, 9)


def test_large_exif_rotated_jpeg_with_trailing_zeros(root: Path) -> None:
    img = Image.new("RGB", (3000, 2000), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = root / "a" / "phone.jpg"
    img.save(path, "JPEG", exif=exif, quality=80)
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)
    s = _sample(_split(root), "a/phone.jpg")
    assert (s.orientation, s.width, s.height) == (6, 3000, 2000)


def test_unicode_and_space_names_round_trip(root: Path, tmp_path: Path) -> None:
    names = ["café au lait.png", "日本 写真.png", "emoji 📷.png"]
    for i, n in enumerate(names):
        write_image(root / "a" / n, color=500 + i)
    split = _split(root)
    for n in names:
        _sample(split, f"a/{n}")
    loaded = Split.load(split.save(tmp_path / "m.json"))
    assert {s.path for p in loaded.parts.values() for s in p} >= {f"a/{n}" for n in names}


def test_hidden_files_and_folders(root: Path) -> None:
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    shutil.copy(root / "a" / "a_000.png", root / "a" / "._a_000.png")
    (root / "b" / ".thumbnails").mkdir()
    write_image(root / "b" / ".thumbnails" / "t.png", color=77)
    write_image(root / "b" / ".thumbnails" / "u.png", color=78)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    split = _split(root)
    assert _reason(split, ".DS_Store") == "hidden file"
    assert _reason(split, "a/.DS_Store") == "hidden file"
    assert _reason(split, "a/._a_000.png") == "hidden file"
    assert _reason(split, "b/.thumbnails") == "hidden folder (2 files not scanned)"
    assert _reason(split, ".git") == "hidden folder (1 files not scanned)"
    assert split.class_names == ("a", "b", "c")
    assert len(split) == 36


def test_file_outside_class_folders(root: Path) -> None:
    write_image(root / "stray.png", color=4242)
    assert "not inside a class folder" in _reason(_split(root), "stray.png")


def test_empty_class_folder(root: Path) -> None:
    (root / "d").mkdir()
    with pytest.raises(SmallClassError, match=r"class 'd' has 0 image\(s\)"):
        _split(root)
    with pytest.warns(UserWarning, match="class 'd' has no valid images"):
        split = _split(root, allow_small_classes=True)
    assert split.counts()["d"] == {"train": 0, "val": 0, "test": 0}


def test_class_folder_with_only_junk(root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "x.jpg").write_bytes(b"")
    with pytest.raises(SmallClassError, match="class 'd' has 0"):
        _split(root)


def test_only_one_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"only": 10})
    with pytest.raises(DatasetError, match=r"1 class folder\(s\) \(only 'only'\).*at least 2"):
        _split(root)


def test_no_class_at_all(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    with pytest.raises(DatasetError, match=r"0 class folder\(s\) \(none\)"):
        _split(tmp_path / "p")


def test_symlink_loop_folder(root: Path) -> None:
    os.symlink(root / "a", root / "a" / "loop")
    split = _split(root)
    assert _reason(split, "a/loop") == "symlink loop (folder already scanned)"
    assert len(split) == 36


def test_self_referencing_symlink_file(root: Path) -> None:
    os.symlink(root / "a" / "self.png", root / "a" / "self.png")
    reason = _reason(_split(root), "a/self.png")
    assert reason.startswith("cannot")


def test_symlinked_image_is_a_sample(root: Path, tmp_path: Path) -> None:
    target = write_image(tmp_path / "outside.png", color=31337)
    os.symlink(target, root / "b" / "linked.png")
    assert _sample(_split(root), "b/linked.png").label == 1


def test_duplicate_files_across_two_classes(root: Path) -> None:
    shutil.copy(root / "a" / "a_003.png", root / "c" / "same.png")
    with pytest.raises(LabelConflictError, match=r"'a/a_003.png' \(class 'a'\) and 'c/same.png'"):
        _split(root)


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (0.6, 0.6), (0.99, 0.01)])
def test_fractions_summing_to_one_or_more(val: float, test: float) -> None:
    with pytest.raises(ValueError, match=rf"val={val} and test={test} leave no training data"):
        DatasetSplitter(val=val, test=test)


def test_unreadable_file(root: Path) -> None:
    if os.geteuid() == 0:
        # root can read anything: simulate with a folder in place of a file's parent link.
        os.symlink(root / "missing-target.png", root / "a" / "dangling.png")
        assert _reason(_split(root), "a/dangling.png").startswith("cannot read file")
    else:  # pragma: no cover - CI runs as root
        p = write_image(root / "a" / "locked.png", color=1)
        p.chmod(0)
        assert _reason(_split(root), "a/locked.png").startswith("cannot read file")


def test_bmps_the_pipeline_cannot_read_are_skipped(root: Path) -> None:
    Image.new("RGB", (6, 4), (200, 30, 60)).convert("1").save(root / "c" / "mono.bmp", "BMP")
    reason = _reason(_split(root), "c/mono.bmp")
    assert reason.startswith("1-bit or compressed BMP is not supported")
