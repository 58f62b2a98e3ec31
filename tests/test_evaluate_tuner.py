"""Cross-validation and learning curves with a real (tiny) FineTuner, in Python and in the CLI.

The scratch CNN at 32 px with one frozen-backbone epoch keeps each fit to about a second.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from tlkit import DatasetSplitter, FineTuner, schedules
from tlkit.backbones import get_backbone
from tlkit.cli import main
from tlkit.datasets import make_synthetic_dataset
from tlkit.evaluate import cross_validate

SIZE = 32


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("evt") / "photos", {"a": 10, "b": 8}, image_size=SIZE
    )


def make_tuner() -> FineTuner:
    bb = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8, 16, 16))
    return FineTuner(bb, schedule=schedules.Frozen(1), seed=0, verbose=0, batch_size=16)


def test_cross_validate_a_fine_tuner(root: Path) -> None:
    cv = cross_validate(make_tuner, root, folds=2, n_boot=50, verbose=False)
    assert cv.probabilities.shape == (1, 18, 2)
    np.testing.assert_allclose(cv.oof_probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert sorted(np.bincount(cv.fold[0])) == [9, 9]
    assert all(r["n_val"] > 0 and r["train_time_s"] > 0 for r in cv.fold_results)
    report = cv.report("scratch")
    assert report["scratch"].cost.train_time_s == pytest.approx(cv.train_time_s)


def test_cli_cv_and_learning_curve(root: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """The commands' plumbing, with the fake classifier of test_evaluate (no training)."""
    from test_evaluate import Spy

    import tlkit.cli._cv
    import tlkit.cli._learning_curve

    for module in (tlkit.cli._cv, tlkit.cli._learning_curve):
        monkeypatch.setattr(module, "model_factory", lambda args: lambda: Spy(None))
    recipe = ["--backbone", "scratch_cnn", "--weights", "none", "--image-size", str(SIZE)]
    recipe += ["--schedule", "frozen:1", "--n-boot", "20", "--quiet"]
    assert main(["cv", str(root), "--folds", "3", *recipe, "-o", str(tmp_path / "cv")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 18 and out["folds"] == 3 and out["skipped"] == 0
    files = {p.name for p in (tmp_path / "cv").iterdir()}
    assert {"report.html", "report.md", "cv.json", "oof_predictions.csv"} <= files
    assert len((tmp_path / "cv" / "oof_predictions.csv").read_text().splitlines()) == 19

    manifest = DatasetSplitter(val=0.2, test=0.3, seed=0, progress=False).split(root)
    saved = root.parent / "photos.split.json"  # beside its images: the manifest root rule
    manifest.save(saved)
    assert main(["cv", str(saved), *recipe, "-o", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 18  # a manifest's parts are pooled
    args = ["learning-curve", str(saved), "--fractions", "0.5,1"]
    assert main([*args, *recipe, "-o", str(tmp_path / "lc")]) == 0
    captured = capsys.readouterr()
    curve = json.loads(captured.out)
    assert [p["n_train"] for p in curve["points"]] == [5, 9]
    assert curve["fit"]["ok"] is False and "at least 3 training sizes" in captured.err
    assert {p.name for p in (tmp_path / "lc").iterdir()} == {
        f"learning_curve.{x}" for x in ("png", "json", "md", "html")
    }


def test_cli_recipe_makes_new_fine_tuners() -> None:
    from tlkit.cli import build_parser
    from tlkit.cli._recipe import model_factory

    args = build_parser().parse_args(
        ["cv", "x", "-o", "y", "--backbone", "scratch_cnn", "--weights", "none",
         "--image-size", "40", "--schedule", "frozen:3", "--batch-size", "8"]
    )  # fmt: skip
    make = model_factory(args)
    a, b = make(), make()
    assert a is not b and a.history is None
    assert a.image_size == (40, 40) and a.batch_size == 8 and a.weights is None
    assert a.schedule == schedules.Frozen(3)


def test_cli_cv_refuses_bad_flags_before_training(root: Path, tmp_path: Path, capsys) -> None:
    assert main(["cv", str(root), "--image-size", "16", "-o", str(tmp_path)]) == 2
    assert main(["cv", str(tmp_path / "gone"), "-o", str(tmp_path)]) == 1
    assert main(["cv", str(root), "--backbone", "nope", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--image-size must be at least 32" in err and "gone" in err and "nope" in err


def test_recipe_flags_reach_fit_and_every_command_shares_them(tmp_path: Path) -> None:
    from tlkit.cli import build_parser
    from tlkit.cli._recipe import fit_kwargs

    parse = build_parser().parse_args
    args = parse(["cv", "x", "-o", "y", "--epochs", "3", "--time-budget", "10min"])
    assert fit_kwargs(args) == {"epochs": 3, "time_budget": "10min"}
    assert fit_kwargs(parse(["learning-curve", "s.json", "-o", "y"])) == {}
    plan = {"phases": [{"phase": "head", "epochs": 2}], "budget_s": 60}
    (tmp_path / "run.json").write_text(json.dumps({"time_budget": {"plan": plan}}))
    args = parse(
        ["learning-curve", "s.json", "-o", "y", "--time-budget", str(tmp_path / "run.json")]
    )
    assert fit_kwargs(args) == {"time_budget": plan}
    recipe = ["--backbone", "scratch_cnn", "--image-size", "40", "--augment", "light",
              "--batch-size", "8", "--learning-rate", "0.01", "--class-weight", "sqrt",
              "--schedule", "frozen:3", "--weights", "none", "--quiet", "--pooling", "blocks"]  # fmt: skip
    seen = [
        vars(parse([*cmd, *recipe]))
        for cmd in (["train", "s.json", "-o", "m.keras"], ["cv", "x", "-o", "y"],
                    ["learning-curve", "s.json", "-o", "y"])
    ]  # fmt: skip
    keys = ("backbone", "image_size", "augment", "batch_size", "learning_rate", "class_weight",
            "schedule", "weights", "quiet", "pooling")  # fmt: skip
    assert all({k: s[k] for k in keys} == {k: seen[0][k] for k in keys} for s in seen)
    assert "epochs" not in seen[0] and seen[1]["epochs"] is None
    from tlkit.cli._recipe import model_factory

    made = model_factory(argparse.Namespace(**{"seed": 0, **seen[1]}))()
    assert (made.pooling, made.backbone_name, made.image_size) == (
        "blocks",
        "scratch_cnn",
        (40, 40),
    )
