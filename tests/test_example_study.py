"""examples/mobilenet_vs_cnn.py: runs end to end, and bad arguments stop with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tree

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mobilenet_vs_cnn.py"


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=timeout
    )


def _example():
    """The example as a module (its functions, without running it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mobilenet_vs_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cv_compares_both_recipes_on_every_image(tmp_path: Path, capsys) -> None:
    """--cv K: the recipes' makers build new models of the study's settings (the pooling
    too), and both are cross-validated and compared on every image's out-of-fold prediction
    (here with tiny scratch CNNs standing in for the two models, to keep it quick)."""
    from tlkit import DatasetSplitter, FineTuner
    from tlkit.datasets import make_synthetic_dataset

    study = _example()
    args = study.parse_args(["--profile", "smoke", "--cv", "2", "--pooling", "blocks"])
    root = make_synthetic_dataset(tmp_path / "photos", {"a": 16, "b": 12, "c": 8}, image_size=32)
    split = DatasetSplitter(val=0.15, test=0.15, seed=0, progress=False).split(root)
    makers = study.recipe_makers(args, split, study.PROFILES["smoke"], 64, "efficientnet_lite0")
    pretrained, scratch = makers["efficientnet_lite0"](), makers["cnn_from_scratch"]()
    assert pretrained is not makers["efficientnet_lite0"]()  # a new model each call
    assert (pretrained.backbone_name, pretrained.pooling, pretrained.image_size) == (
        "efficientnet_lite0",
        "blocks",
        (64, 64),
    )
    assert scratch.backbone_name == "scratch_cnn" and scratch.class_names == list(split.class_names)

    def tiny() -> FineTuner:
        return FineTuner.scratch_cnn(class_names=split.class_names, image_size=32, epochs=1,
                                     widths=(4, 8), seed=0, verbose=0)  # fmt: skip

    names = ["majority-class baseline", "first", "second"]
    study.cross_validate_both(args, split, tmp_path, None, {"first": tiny, "second": tiny})
    text = capsys.readouterr().out
    assert "== cross-validation: 2 leak-free folds over all 36 images" in text
    assert "Verdict (cross-validation): " in text
    cv = json.loads((tmp_path / "cv_report" / "report.json").read_text())
    assert [m["name"] for m in cv["models"]] == names
    assert sorted(cv["y_true"]) == sorted(s.label for part in split.parts.values() for s in part)


def test_head_start_sets_the_head_rate_and_keeps_the_fine_tuning_rate() -> None:
    """--head-start probe (the default): the head starts from the probe and trains at a tenth of
    the rate of a random start; the fine-tuning phase's peak rate stays 1.5e-4 either way."""
    import types

    study = _example()
    split = types.SimpleNamespace(class_names=["a", "b", "c"])
    for argv, start, rate in (([], "probe", 3e-4), (["--head-start", "random"], "random", 3e-3)):
        settings = study.pretrained_settings(
            study.parse_args(argv), split, study.PROFILES["default"], 224
        )
        schedule = settings["schedule"]
        assert (schedule.head_start, settings["learning_rate"]) == (start, rate)
        assert rate * schedule.lr_factor == pytest.approx(1.5e-4)


def test_no_calibrate_leaves_the_model_uncalibrated() -> None:
    """--no-calibrate: no temperature is fitted (the flag reaches the study's calibrate step)."""
    study = _example()
    calls = []

    class Tuner:
        def calibrate(self, val):
            calls.append(val)
            return 1.5

    split = type("Split", (), {"val": [0, 1, 2]})()
    study.calibrate(study.parse_args(["--no-calibrate"]), Tuner(), split, "m")
    assert calls == []
    study.calibrate(study.parse_args([]), Tuner(), split, "m")
    assert calls == [[0, 1, 2]]


def test_cv_needs_two_folds() -> None:
    proc = run("--cv", "1", timeout=120)
    assert proc.returncode == 2 and "--cv 1: give at least 2 folds" in proc.stderr


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--data", "/nonexistent/photos"], "no such folder"),
        (["--backbone", "mobilenet_v9"], "unknown backbone"),
        (["--data", "ONE_CLASS"], "class"),
    ],
)
def test_bad_arguments_exit_with_one_line(args: list[str], reason: str, tmp_path: Path) -> None:
    if "ONE_CLASS" in args:
        make_tree(tmp_path / "one", {"only": 12})
        args = ["--data", str(tmp_path / "one")]
    proc = run(*args, "--out", str(tmp_path / "o"), timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and reason in last.lower(), last
    assert not (tmp_path / "o" / "split.json").exists()  # stopped before (or at) the split


def test_unknown_profile_is_a_usage_error() -> None:
    proc = run("--profile", "fastest", timeout=120)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def _plan(phases: list[tuple[str, int, int]], stopped: list[tuple[str, int]] = ()) -> dict:
    return {
        "phases": [{"phase": n, "schedule_epochs": s, "epochs": e} for n, s, e in phases],
        "stopped": [{"phase": n, "epochs": e} for n, e in stopped],
    }


@pytest.mark.slow
def test_smoke_study_replaying_a_recorded_plan_writes_the_whole_study(tmp_path: Path) -> None:
    """The smoke profile end to end (one run, the study's most expensive test), replaying a
    recorded plan: each model trains its recorded epochs (here the scratch CNN stops after 1 of
    its planned 3), no measuring, and the new run.json records the plans again."""
    from tlkit import FineTuner

    recorded = tmp_path / "run.json"
    plans = {
        "efficientnet_lite0": _plan([("head", 1, 2), ("finetune", 1, 1)]),
        "cnn_from_scratch": _plan([("full", 2, 3)], stopped=[("full", 1)]),
    }
    recorded.write_text(json.dumps({"budget_plans": plans}))
    out = tmp_path / "study"
    proc = run(
        "--profile", "smoke", "--out", str(out), "--backbone", "efficientnet_lite0",
        "--replay", str(recorded),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    # --pooling auto (the default): linear probes choose the head's features on validation
    run_info = json.loads((out / "run.json").read_text())
    pooling = run_info["pooling"]
    scores = pooling["probe_balanced_accuracy"]
    assert pooling["asked"] == "auto" and set(scores) == {"avg", "blocks"}
    assert pooling["used"] == ("blocks" if scores["blocks"] > scores["avg"] else "avg")
    assert "warmup=1.0, head_start='probe'), pooling='auto'" in text  # the head's start
    assert f"efficientnet_lite0: pooling='{pooling['used']}': a linear probe" in text
    assert pooling["choice_s"] > 0
    assert "data: a generated" in text
    # the replayed plans: 3 epochs for the pretrained model, 2 of the CNN's 3 (stopped after 1)
    assert "(64 px, 2 epochs; the pretrained model ran 3)" in text
    again = run_info["budget_plans"]
    assert again["efficientnet_lite0"]["replayed"] is True
    assert again["cnn_from_scratch"]["stopped"] == [{"phase": "full", "epochs": 1}]
    assert "precision    recall  f1-score   support" in text  # the study's report format
    for name in ("report.html", "report.md", "report.json"):
        assert (out / "report" / name).stat().st_size > 0
    for name in ("split.json", "efficientnet_lite0.keras", "cnn_from_scratch.keras", "run.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report" / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == ["majority-class baseline", "efficientnet_lite0", "cnn_from_scratch"]
    assert report["baseline"]["strategy"] == "majority class"
    assert report["verdict"]  # the one-paragraph verdict after the warnings
    assert "mobilenet_vs_cnn.py" in run_info["command"] and run_info["versions"]["keras"]
    assert run_info["cv_folds"] == 0 and not (out / "cv_report").exists()
    # --calibrate (the default): each model's temperature, fitted on the val part, is saved
    # with the model, recorded, and applied (and said) in the report
    for name, model in zip(names[1:], report["models"][1:], strict=True):
        t = run_info["temperature"][name]
        assert 0.01 <= t <= 100 and f"{name}: temperature T={t:.3g} fitted on the" in text
        assert FineTuner.load(out / f"{name}.keras").temperature == pytest.approx(t)
        assert any(f"temperature T={t:.4g}" in note for note in model["notes"]), model["notes"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not a readable run.json"),
        (json.dumps({"command": "x"}), "records no time-budget plans"),
        (json.dumps({"budget_plans": {"efficientnet_lite0": None}}), "records no time-budget"),
    ],
)
def test_replay_of_a_run_json_without_plans_stops_with_one_line(
    tmp_path: Path, content: str, reason: str
) -> None:
    recorded = tmp_path / "run.json"
    recorded.write_text(content)
    proc = run("--profile", "smoke", "--out", str(tmp_path / "o"), "--replay", str(recorded))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert reason in proc.stderr.strip().splitlines()[-1]


def test_replay_excludes_cv_and_time_budget() -> None:
    proc = run("--replay", "run.json", "--cv", "2", timeout=120)
    assert proc.returncode == 2 and "--replay trains the recorded epochs" in proc.stderr
