"""tlkit train / predict / export / compare, each run as a user would: a subprocess, exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli_conventions import assert_one_line_error, tlkit

from tlkit.cli import main
from tlkit.datasets import make_synthetic_dataset

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic dataset, its split, and a model trained by ``tlkit train`` in a subprocess."""
    tmp = tmp_path_factory.mktemp("cli")
    root = make_synthetic_dataset(tmp / "photos", {"red": 16, "green": 16, "blue": 16}, 40)
    manifest = tmp / "photos.split.json"
    assert main(["split", str(root), "--val", "0.25", "--test", "0.25", "-o", str(manifest)]) == 0
    model = tmp / "model.keras"
    proc = tlkit(
        "train",
        str(manifest),
        "--backbone",
        "scratch_cnn",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--schedule",
        "frozen:2",
        "--batch-size",
        "8",
        "--pooling",
        "auto",
        "--calibrate",
        "-o",
        str(model),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # stdout holds the JSON summary only
    # --pooling auto: the probes' scores, and the pooling they chose, in the summary
    scores = summary["pooling_probe_balanced_accuracy"]
    assert summary["pooling"] == ("blocks" if scores["blocks"] > scores["avg"] else "avg")
    assert f"tlkit: pooling='{summary['pooling']}': a linear probe" in proc.stderr
    assert summary["model"] == str(model) and summary["class_names"] == ["blue", "green", "red"]
    assert "model written to" in proc.stderr and model.is_file()
    # the kept epochs, and the saved model's own scores on the val part
    first, last = summary["kept_epochs"]
    assert 1 <= first <= last == summary["best_epoch"] <= summary["epochs"] == 2
    from tlkit import FineTuner, Split

    val = Split.load(manifest).val
    loaded = FineTuner.load(model)
    again = loaded.evaluate(val)
    assert summary["val_metrics"] == {f"val_{k}": round(float(again[k]), 4) for k in again}
    # --calibrate: the temperature fitted on the val part, in the file and the summary
    assert 0.01 <= summary["temperature"] <= 100
    assert loaded.temperature == pytest.approx(summary["temperature"])
    assert f"calibrated on {len(val)} validation images" in proc.stderr
    return {"tmp": tmp, "root": root, "manifest": manifest, "model": model}


def test_predict_reports_unreadable_files_and_predicts_the_rest(trained) -> None:
    folder = trained["tmp"] / "new"
    shutil.copytree(trained["root"] / "red", folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0")
    proc = tlkit("predict", str(trained["model"]), str(folder), "--top-k", "2")
    assert proc.returncode == 1, proc.stderr  # some files failed: exit 1, rows for all
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 16 + 2
    assert set(rows[0]) == {"path", "label", "probability", "label_2", "probability_2", "error"}
    bad = {Path(r["path"]).name: r for r in rows if r["error"]}
    assert set(bad) == {"broken.jpg", "notes.txt"} and not bad["notes.txt"]["label"]
    good = [r for r in rows if not r["error"]]
    assert all(r["label"] in {"red", "green", "blue"} for r in good)
    assert all(float(r["probability"]) >= float(r["probability_2"]) for r in good)
    assert "2 of 18 file(s) could not be read" in proc.stderr
    assert "1 hidden file(s) left out" in proc.stderr


def test_predict_json_on_files(trained, capsys) -> None:
    files = sorted((trained["root"] / "blue").iterdir())[:3]
    code = main(["predict", str(trained["model"]), *map(str, files), "--format", "json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert all(0 <= r["probability"] <= 1 and r["error"] is None for r in rows)


def test_export_command_checks_the_file(trained) -> None:
    out = trained["tmp"] / "deploy" / "model.tflite"
    proc = tlkit(
        "export", str(trained["model"]), "--check", str(trained["manifest"]), "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["path"] == str(out) and out.is_file()
    assert report["agreement"] >= 0.98 and report["n_checked"] == 12
    assert (out.parent / "model.labels.txt").read_text().split() == ["blue", "green", "red"]
    assert "agreement with Keras" in proc.stderr


def test_compare_command_with_an_exported_row(trained) -> None:
    tflite = trained["tmp"] / "deploy" / "model.tflite"
    if not tflite.is_file():
        pytest.skip("needs the export test's file")
    out = trained["tmp"] / "report"
    proc = tlkit(
        "compare",
        str(trained["manifest"]),
        str(trained["model"]),
        "--exported",
        str(tflite),
        "--n-boot",
        "20",
        "-o",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    names = [m["name"] for m in report["models"]]
    assert names[1:] == ["model", "model.tflite"]  # after the baseline
    assert {"report.html", "report.md", "report.json"} <= {p.name for p in out.iterdir()}


def test_corrupt_and_truncated_model_files(trained, capsys) -> None:
    tmp = trained["tmp"]
    data = trained["model"].read_bytes()
    cut = tmp / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    noise = tmp / "noise.keras"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    image = next((trained["root"] / "red").iterdir())
    line = assert_one_line_error(tlkit("predict", str(cut), str(image)), "predict")
    assert str(cut) in line and "not a .keras model file" in line
    # Random bytes are refused before Keras reads them, like the cut file: in-process is enough.
    capsys.readouterr()
    assert main(["predict", str(noise), str(image)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tlkit predict: error:") and str(noise) in err[-1]


def test_unknown_backbone(trained, capsys) -> None:
    code = main(["train", str(trained["manifest"]), "--backbone", "mobilenet_v9", "-o", "x.keras"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown backbone 'mobilenet_v9'" in err[0]
    assert "tlkit backbones" in err[0] and "list_backbones()" not in err[0]


def test_manifest_whose_files_moved(trained, tmp_path: Path, capsys) -> None:
    root = make_synthetic_dataset(tmp_path / "data", {"a": 8, "b": 8}, 16)
    manifest = tmp_path / "m.json"
    assert main(["split", str(root), "--val", "2", "--test", "2", "-o", str(manifest)]) == 0
    shutil.move(root / "a", tmp_path / "elsewhere")
    capsys.readouterr()
    for argv in (
        ["export", str(trained["model"]), "--check", str(manifest)],
        ["compare", str(manifest), str(trained["model"]), "-o", str(tmp_path / "r")],
        ["train", str(manifest), "--backbone", "mobilenet_v3_small", "-o", "x.keras"],
        ["cv", str(manifest), "--backbone", "mobilenet_v3_small", "-o", str(tmp_path / "cv")],
        ["learning-curve", str(manifest), "--backbone", "mobilenet_v3_small", "-o", "lc"],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert "missing or changed" in err[0] and "--skip-missing" in err[0]
        assert "on_mismatch" not in err[0]


def test_command_usage_errors(trained, capsys) -> None:
    model, manifest = str(trained["model"]), str(trained["manifest"])
    assert main(["export", model, "--quantize", "int8"]) == 2  # no --representative
    assert "--representative SPLIT.json" in capsys.readouterr().err
    assert main(["export", model, "--format", "onnx", "--quantize", "dynamic"]) == 2
    assert main(["predict", model, "x.png", "--top-k", "0"]) == 2
    assert main(["compare", manifest, "-o", "r"]) == 2  # nothing to compare
    assert main(["train", manifest, "-o", "model.h5"]) == 2
    assert main(["train", manifest, "--image-size", "8", "-o", "m.keras"]) == 2
    assert "--image-size must be at least 32, got 8" in capsys.readouterr().err
    assert main(["train", manifest, "--input-size", "32", "-o", "m.keras"]) == 2  # old name
    assert "unrecognized arguments: --input-size" in capsys.readouterr().err
    no_val = trained["tmp"] / "no-val.split.json"
    root = str(trained["root"])
    assert main(["split", root, "--val", "0", "--test", "0.25", "-o", str(no_val)]) == 0
    capsys.readouterr()
    assert main(["train", str(no_val), "--calibrate", "-o", "m.keras"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("tlkit train: error: --calibrate fits the temperature on the val")
    assert str(no_val) in err[0] and "split again with --val" in err[0]
    assert main(["export", model, "--format", "coreml"]) == 2  # argparse choices


@pytest.mark.slow
def test_train_strategy_mirrored_and_multiworker_argument(trained, monkeypatch) -> None:
    out = trained["tmp"] / "mirrored.keras"
    proc = tlkit(
        "train", str(trained["manifest"]), "--backbone", "scratch_cnn", "--weights", "none",
        "--image-size", "32", "--schedule", "freeze_then_unfreeze:1,1,all", "--batch-size", "8",
        "--strategy", "mirrored", "--quiet", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["image_size"] == [32, 32] and "input_size" not in summary
    assert summary["strategy"] == "mirrored" and summary["replicas"] >= 1
    assert summary["epochs"] == 2 and out.is_file()
    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = [str(trained["manifest"]), "--strategy", "multiworker", "-o", str(out)]
    line = assert_one_line_error(tlkit("train", *args), "train", code=2)
    assert "TF_CONFIG" in line
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    line = assert_one_line_error(tlkit("train", *args), "train", code=2)
    assert "TF_CONFIG is not a cluster description" in line
    # both are found before TensorFlow loads (seconds earlier)
    code = (
        "import sys; from tlkit.cli import main; "
        f"code = main(['train', {str(trained['manifest'])!r}, '--strategy', 'multiworker', "
        "'-o', 'm.keras']); print(code, 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stderr[-2000:]
    proc = tlkit("train", *args[:-2], "--strategy", "ring", "-o", str(out))
    assert proc.returncode == 2 and "invalid choice: 'ring'" in proc.stderr


# -- issue 18: every format from a model on disk; nothing replaced; untrusted models refused ----


@pytest.mark.parametrize("fmt", ["litert", "onnx", "saved_model"])
def test_export_every_format_from_the_saved_model(trained, fmt, tmp_path: Path, capsys) -> None:
    """``tlkit export`` loads the .keras file (a model never called) and exports every format."""
    from tlkit.export import FORMATS

    assert fmt in FORMATS and len(FORMATS) == 3  # a new format needs a case here
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
    out = tmp_path / {"litert": "m.tflite", "onnx": "m.onnx", "saved_model": "m_saved_model"}[fmt]
    argv = ["export", str(trained["model"]), "--format", fmt, "--check", str(trained["manifest"])]
    assert main([*argv, "-o", str(out)]) == 0, capsys.readouterr().err[-2000:]
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == fmt and report["agreement"] >= 0.98 and report["n_checked"] == 12
    labels = out.with_name(out.stem + ".labels.txt")
    assert labels.read_text().split() == ["blue", "green", "red"]
    # again: refused without --overwrite (naming it), replaced with it
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert main([*argv, "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert main([*argv, "-o", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)


def test_export_dash_o_dot_leaves_the_working_folder(trained, tmp_path: Path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("three years of work")
    monkeypatch.chdir(work)
    for extra in ([], ["--overwrite"]):
        argv = ["export", str(trained["model"]), "--format", "saved_model", "-o", ".", *extra]
        assert main(argv) == 1
        assert "working folder" in capsys.readouterr().err
    assert [p.name for p in work.iterdir()] == ["thesis.tex"]
    assert (work / "thesis.tex").read_text() == "three years of work"


def test_compare_and_predict_refuse_an_untrusted_saved_model(trained, tmp_path: Path, capsys):
    from test_export_safety import evil_saved_model

    written = tmp_path / "written.txt"
    evil = evil_saved_model(tmp_path / "evil_sm", written, size=32, classes=3)
    image = sorted((trained["root"] / "red").iterdir())[0]
    compare = ["compare", str(trained["manifest"]), "--exported", str(evil), "--n-boot", "0"]
    assert main([*compare, "-o", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert "--trust-model" in err and "SavedModel" in err
    assert main(["predict", str(evil), str(image)]) == 1  # predict takes .keras files only
    capsys.readouterr()
    assert not written.exists() and not (tmp_path / "report").exists()
    assert main([*compare, "--trust-model", "-o", str(tmp_path / "report")]) == 0
    assert written.is_file()  # it ran: what --trust-model allows
