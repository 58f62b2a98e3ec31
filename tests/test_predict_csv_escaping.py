"""``tlkit predict`` CSV: hostile class and file names cannot run as spreadsheet formulas, and
a model with an empty class name is refused (issue 18, item 10)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlkit.cli import main

pytest.importorskip("keras")

HOSTILE_CLASSES = ["=cmd|' /C calc'!A0", "+1", "@SUM(1)", "-2", "<script>alert(1)</script>"]
HOSTILE_FILES = ["=HYPERLINK(1).png", "+3.png", "@x.png", "-4.png", "plain.png"]


def _model(path: Path, class_names: list[str]) -> Path:
    """An untrained tiny scratch CNN saved with ``class_names`` in its metadata."""
    from tlkit.finetune import FineTuner

    tuner = FineTuner(
        "scratch_cnn", weights=None, class_names=class_names, image_size=32, seed=0, verbose=0
    )
    tuner.build()
    return tuner.save(path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("predict_csv")
    model = _model(tmp / "hostile.keras", HOSTILE_CLASSES)
    images = tmp / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in HOSTILE_FILES:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / name)
    return {"tmp": tmp, "model": model, "images": images}


def test_csv_cells_are_neutralised(hostile, capsys, monkeypatch) -> None:
    monkeypatch.chdir(hostile["images"])  # relative paths: the file name starts the cell
    k = len(HOSTILE_CLASSES)
    code = main(["predict", str(hostile["model"]), "--top-k", str(k), "--", *HOSTILE_FILES])
    assert code == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    head, body = rows[0], rows[1:]
    assert len(body) == len(HOSTILE_FILES)
    for row in body:
        assert len(row) == len(head)
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    paths = [row[0] for row in body]
    assert paths == ["'" + f if f[0] in "=+-@" else f for f in HOSTILE_FILES]
    labels = {row[i] for row in body for i in range(1, 2 * k, 2)}
    want = {"'" + c if c[0] in "=+-@" else c for c in HOSTILE_CLASSES}
    assert labels == want
    for row in body:  # probabilities stay numbers
        assert all(0.0 <= float(row[i]) <= 1.0 for i in range(2, 2 * k + 1, 2))


def test_json_keeps_the_exact_names(hostile, capsys, monkeypatch) -> None:
    monkeypatch.chdir(hostile["images"])
    code = main(["predict", str(hostile["model"]), "--format", "json", "--", *HOSTILE_FILES])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == HOSTILE_FILES
    assert all(r["label"] in HOSTILE_CLASSES for r in rows)


def test_a_model_with_an_empty_class_name_is_refused(hostile, capsys) -> None:
    model = _model(hostile["tmp"] / "blank.keras", ["", "b"])
    image = hostile["images"] / "plain.png"
    assert main(["predict", str(model), str(image)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no blank row
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("tlkit predict: error:")
    # refused when the model file is read (its class_names field), naming the file
    assert "blank.keras" in err and "class_names[0]" in err
