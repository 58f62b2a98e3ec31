"""A class too small to split: ``audit(allow_small_classes=True)`` and ``tlkit audit
--allow-small-classes``, and each error names the option of its own interface (issue 18, item 12)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tlkit.audit import audit
from tlkit.cli import main
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import SmallClassError


@pytest.fixture
def one_image_class(tmp_path: Path) -> Path:
    root = make_synthetic_dataset(tmp_path / "d", {"a": 12, "b": 12, "c": 1}, image_size=32, seed=0)
    assert len(list((root / "c").iterdir())) == 1
    return root


def _thumb(x):
    return x[:, ::8, ::8].reshape(len(x), -1).astype(float)


def test_library_names_the_argument_and_takes_it(one_image_class: Path) -> None:
    with pytest.raises(SmallClassError, match=r"allow_small_classes=True"):
        audit(one_image_class, label_issues=False)
    with pytest.warns(UserWarning, match="class 'c' has 1 image"):
        report = audit(one_image_class, allow_small_classes=True, features=_thumb, image_size=32)
    assert report.num_images == 25
    assert sum(report.class_counts["c"].values()) == 1


def test_library_checks_the_argument_type(one_image_class: Path) -> None:
    with pytest.raises(TypeError, match="allow_small_classes"):
        audit(one_image_class, allow_small_classes="yes")


def test_cli_names_the_flag_and_takes_it(one_image_class: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "audit",
            str(one_image_class),
            "-o",
            str(out),
            "--no-label-issues",
            "--no-feature-duplicates",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "--allow-small-classes" in err and "allow_small_classes" not in err
    assert not out.exists()
    with pytest.warns(UserWarning, match="class 'c' has 1 image"):
        code = main(
            [
                "audit",
                str(one_image_class),
                "-o",
                str(out),
                "--no-label-issues",
                "--no-feature-duplicates",
                "--allow-small-classes",
            ]
        )
    assert code == 0, capsys.readouterr().err
    assert "audit of 25 images in 3 classes" in capsys.readouterr().out
    assert (out / "audit.md").is_file()
    shutil.rmtree(out)


def test_cli_help_lists_the_flag(capsys) -> None:
    assert main(["audit", "--help"]) == 0
    assert "--allow-small-classes" in capsys.readouterr().out
