"""make_synthetic_dataset writes real, reproducible, distinguishable images."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlkit.datasets import make_synthetic_dataset


def test_files_formats_and_sizes(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, {"a": 4, "b": 3}, image_size=(20, 30), seed=1)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))
    assert files == [
        "a/a_0000.jpg", "a/a_0001.png", "a/a_0002.jpg", "a/a_0003.png",
        "b/b_0000.jpg", "b/b_0001.png", "b/b_0002.jpg",
    ]  # fmt: skip
    with Image.open(root / "a" / "a_0000.jpg") as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (30, 20), "RGB")
    with Image.open(root / "b" / "b_0001.png") as im:
        assert im.format == "PNG"


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "x", [3, 3], image_size=16, seed=5)
    b = make_synthetic_dataset(tmp_path / "y", [3, 3], image_size=16, seed=5)
    c = make_synthetic_dataset(tmp_path / "z", [3, 3], image_size=16, seed=6)
    for p in a.rglob("*.*"):
        rel = p.relative_to(a)
        assert p.read_bytes() == (b / rel).read_bytes()
    assert any(p.read_bytes() != (c / p.relative_to(a)).read_bytes() for p in a.rglob("*.png"))


def test_classes_are_distinguishable_by_hue(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, [6, 6, 6, 6], image_size=24, seed=0)
    for k in range(4):
        for p in (root / f"class_{k}").iterdir():
            arr = np.asarray(Image.open(p).convert("RGB"), dtype=float) / 255
            hue = colorsys.rgb_to_hsv(*arr.reshape(-1, 3).mean(axis=0))[0]
            dist = min(abs(hue - k / 4), 1 - abs(hue - k / 4))
            assert dist < 0.06, (p, hue)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_counts": {}}, "class_counts is empty"),
        ({"class_counts": {"a": -1}}, "must be >= 0"),
        ({"class_counts": {".hidden": 1}}, "cannot be a folder name"),
        ({"class_counts": {"a/b": 1}}, "cannot be a folder name"),
        ({"image_size": 0}, "image_size must be"),
        ({"formats": ("gif",)}, "formats must be"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    kwargs.setdefault("class_counts", {"a": 1})
    with pytest.raises(ValueError, match=match):
        make_synthetic_dataset(tmp_path, **kwargs)


def _fake_elpv(root: Path, rows: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_elpv_samples_reads_labels_in_place(tmp_path: Path) -> None:
    from tlkit.datasets import ELPV_CLASS_NAMES, elpv_samples

    root = _fake_elpv(
        tmp_path / "elpv",
        [
            "images/cell0001.png  1.0                 mono",
            "images/cell0002.png  0.0                 poly",
            "images/cell0003.png  0.3333333333333333  mono",
            "images/cell0004.png  0.6666666666666666  poly",
        ],
    )
    pairs, names = elpv_samples(data_dir=root)
    assert names == ELPV_CLASS_NAMES
    assert [(p.name, c) for p, c in pairs] == [
        ("cell0001.png", "defective"),
        ("cell0002.png", "functional"),
        ("cell0003.png", "possibly_defective"),
        ("cell0004.png", "likely_defective"),
    ]
    assert pairs[0][0] == root / "images" / "cell0001.png"
    mono, _ = elpv_samples(types=("mono",), data_dir=root)
    assert [p.name for p, _ in mono] == ["cell0001.png", "cell0003.png"]


def test_elpv_bad_input(tmp_path: Path) -> None:
    from tlkit.datasets import elpv_samples
    from tlkit.errors import DatasetError

    with pytest.raises(ValueError, match="types must be a non-empty subset"):
        elpv_samples(types=("thin-film",), data_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"labels\.csv' is missing"):
        elpv_samples(data_dir=tmp_path)
    root = _fake_elpv(tmp_path / "bad", ["images/cell0001.png  0.5  mono"])
    with pytest.raises(DatasetError, match="line 1 is not 'path probability type'"):
        elpv_samples(data_dir=root)


def test_synthetic_image_size_is_image_size_and_size_is_refused() -> None:
    from tlkit.datasets import synthetic_image
    from tlkit.errors import ArgumentTypeError

    new = synthetic_image(1, 3, image_size=(8, 10), rng=np.random.default_rng(0))
    assert new.shape == (8, 10, 3)
    with pytest.raises(TypeError, match="'size'"):  # the old name of image_size is gone
        synthetic_image(1, 3, size=(8, 10), rng=np.random.default_rng(0))
    assert synthetic_image(0, 2, 6, np.random.default_rng(0)).shape == (6, 6, 3)
    with pytest.raises(ArgumentTypeError, match=r"rng must be a numpy\.random\.Generator"):
        synthetic_image(1, 3, (8, 8), 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_counts": "abc"}, "class_counts must be a mapping"),
        ({"class_counts": {"a": 1.5}}, r"class_counts\['a'\] must be an int"),
        ({"image_size": "64"}, "image_size must be an int or a"),
        ({"seed": "1"}, r"seed must be an int >= 0, got '1' \(str\)"),
        ({"formats": "png"}, "formats must be a list of strings"),
        ({"root": 3}, "root must be a path"),
    ],
)
def test_wrong_types_are_argument_type_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    from tlkit.errors import ArgumentTypeError

    kwargs = {"root": tmp_path, "class_counts": {"a": 1}, **kwargs}
    with pytest.raises(ArgumentTypeError, match=match):
        make_synthetic_dataset(**kwargs)
