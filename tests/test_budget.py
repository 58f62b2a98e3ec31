"""fit(time_budget=...): the duration argument, the epoch planner, the measuring, end to end.

No test reads the real clock: the measuring code reads ``tlkit.finetune._budget.clock``,
which the end-to-end tests replace with a fake one that ticks once per reading.
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from tlkit import DatasetSplitter, FineTuner, Split, schedules
from tlkit._validation import check_duration
from tlkit.backbones import get_backbone
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import ArgumentTypeError, InvalidArgumentError
from tlkit.finetune import _budget
from tlkit.finetune._budget import PhaseCost, phase_costs, plan_epochs
from tlkit.finetune._data import Data

SIZE = 32
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mobilenet_vs_cnn.py"


# -- the argument ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [
        (90, 90.0),
        (0.5, 0.5),
        ("90s", 90.0),
        ("90", 90.0),
        ("10min", 600.0),
        ("10 min", 600.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("1h30min", 5400.0),
        ("1H 30M", 5400.0),
        ("2 hours", 7200.0),
    ],
)
def test_durations_in_seconds_or_with_units(value, seconds: float) -> None:
    assert check_duration("time_budget", value) == seconds


@pytest.mark.parametrize(
    "value", ["", "ten minutes", "10 parsecs", "0s", "-5min", "1h30", "1e3s", "nan", 0, -1.0]
)
def test_bad_durations_name_the_allowed_forms(value) -> None:
    with pytest.raises(InvalidArgumentError, match=r"time_budget must be seconds > 0 .*'10min'"):
        check_duration("time_budget", value)


def test_a_long_duration_string_is_refused_quickly() -> None:
    with pytest.raises(InvalidArgumentError, match=r"\.\.\."):  # shown shortened
        check_duration("time_budget", "1" * 5000 + "x")


@pytest.mark.parametrize("value", [True, [600], b"10min"])
def test_duration_types(value) -> None:
    with pytest.raises(ArgumentTypeError, match="time_budget must be seconds"):
        check_duration("time_budget", value)


# -- the planner (a pure function) -----------------------------------------------------------

HEAD = PhaseCost("head", 30, 0.4, 5.0)
FINETUNE = PhaseCost("finetune", 8, 38.0, 20.0)


def test_the_budget_is_split_in_proportion_to_the_schedule() -> None:
    plan = plan_epochs([HEAD, FINETUNE], 300.0)
    assert plan.fits and not plan.capped
    # 25 s fixed; a factor of 0.875 would give the finetune phase 7 epochs: 301.4 s, too much.
    # Below it: finetune 6 (0.75 x 8), head 26 (floor 0.867 x 30), then rounded up to 27.
    assert plan.epochs == (27, 6) and plan.scale == pytest.approx(26 / 30)
    assert plan.planned_s == pytest.approx(25.0 + 27 * 0.4 + 6 * 38.0) and plan.planned_s <= 300
    assert plan.planned_s + 38.0 > 300.0  # what is left does not buy a finetune epoch
    assert plan_epochs([HEAD, FINETUNE], 600.0).epochs == (57, 14)  # about 1.87 x each


def test_the_schedule_itself_when_the_budget_is_just_enough() -> None:
    exact = 25.0 + 30 * 0.4 + 8 * 38.0
    assert plan_epochs([HEAD, FINETUNE], exact).epochs == (30, 8)
    assert plan_epochs([HEAD, FINETUNE], exact - 1.0).epochs[1] == 7


def test_every_phase_keeps_one_epoch() -> None:
    # The budget affords the finetune phase's one epoch and little more: the head keeps 1.
    plan = plan_epochs([HEAD, FINETUNE], 25.0 + 38.0 + 0.4)
    assert plan.fits and plan.epochs == (1, 1)


def test_a_tiny_budget_trains_the_minimum_and_says_it_does_not_fit() -> None:
    plan = plan_epochs([HEAD, FINETUNE], 10.0)
    assert plan.epochs == (1, 1) and not plan.fits and not plan.capped
    assert plan.planned_s == pytest.approx(25.0 + 0.4 + 38.0) and plan.available_s == 10.0
    assert not plan_epochs([HEAD], -5.0).fits  # measuring already overran the budget


def test_a_huge_budget_stops_at_the_largest_scale() -> None:
    plan = plan_epochs([HEAD, FINETUNE], 1e9)
    assert plan.capped and plan.epochs == (4 * 30, 4 * 8)
    assert plan_epochs([HEAD, FINETUNE], 1e9, max_scale=1.5).epochs == (45, 12)


def test_rounding_favours_the_phase_furthest_under_its_share() -> None:
    a, b = PhaseCost("a", 3, 1.0, 0.0), PhaseCost("b", 3, 1.0, 0.0)
    # 7 s: a factor of 4/3 gives (4, 4) = 8 s, too much; 1 gives (3, 3) = 6 s, 1 s left
    assert plan_epochs([a, b], 7.0).epochs == (4, 3)  # a tie: the earlier phase
    c = PhaseCost("c", 6, 1.0, 0.0)
    # 6 s: a factor of 2/3 gives (2, 4); 1 s left goes to "c" (4/6 under 2/3? no: a tie again)
    # and with 7 s a factor of 5/6 gives (2, 5): 7 s exactly
    assert plan_epochs([a, c], 6.0).epochs == (2, 4)
    assert plan_epochs([a, c], 7.0).epochs == (2, 5)
    d = PhaseCost("d", 4, 1.0, 0.0)
    # 4 s: factor 0.5 gives (1, 2) = 3 s, factor 2/3 gives (2, 2) = 4 s: fits
    # 5 s: factor 3/4 gives (2, 3) = 5 s
    assert plan_epochs([a, d], 4.0).epochs == (2, 2)
    assert plan_epochs([a, d], 5.0).epochs == (2, 3)


def test_the_planned_total_never_exceeds_the_budget() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 5))
        costs = [
            PhaseCost(
                f"p{i}",
                int(rng.integers(1, 60)),
                float(rng.uniform(0.01, 60.0)),
                float(rng.uniform(0.0, 30.0)),
            )
            for i in range(n)
        ]
        budget = float(rng.uniform(0.0, 5000.0))
        plan = plan_epochs(costs, budget)
        assert all(e >= 1 for e in plan.epochs)
        assert all(e <= 4 * c.epochs for e, c in zip(plan.epochs, costs, strict=True))
        spent = sum(c.fixed_s + e * c.epoch_s for c, e in zip(costs, plan.epochs, strict=True))
        assert plan.planned_s == pytest.approx(spent)
        if plan.fits:
            assert plan.planned_s <= budget
            if not plan.capped:  # what is left would not buy an epoch of the dearest phase
                assert budget - plan.planned_s < max(c.epoch_s for c in costs)
        else:
            assert plan.epochs == (1,) * n and plan.planned_s > budget


# -- measuring: times to costs ---------------------------------------------------------------


class Phase:  # what phase_costs reads of a schedule's phase
    def __init__(self, name: str, epochs: int) -> None:
        self.name, self.epochs = name, epochs


def test_phase_costs_from_the_noted_times() -> None:
    def epoch(begin: float, first: float, step: float, n: int, val: float) -> dict:
        batches = [begin + first + step * k for k in range(n)]
        return {"begin": begin, "batches": batches, "end": batches[-1] + val}

    # phase 1 starts 3 s after the run; epoch 1: 2 s trace + 4 batches of 0.5 s, val 1.5 s;
    # epoch 2 (steady): 4 batches of 0.5 s, val 0.5 s; 0.25 s after its end.
    e1 = epoch(3.0, 2.5, 0.5, 4, 1.5)
    e2 = epoch(e1["end"], 0.5, 0.5, 4, 0.5)
    rec1 = {"begin": 3.0, "epochs": [e1, e2], "end": e2["end"] + 0.25}
    # phase 2 starts 1 s later, cheap steady epochs, no trace
    f1 = epoch(rec1["end"] + 1.0, 0.1, 0.1, 4, 0.2)
    f2 = epoch(f1["end"], 0.1, 0.1, 4, 0.2)
    rec2 = {"begin": f1["begin"], "epochs": [f1, f2], "end": f2["end"]}
    stop = rec2["end"] + 0.5
    costs = phase_costs(
        [Phase("finetune", 8), Phase("head", 30)], [rec1, rec2], 0.0, stop,
        steps=40, val_scale=3.0, feature_s=[0.0, 7.0],
    )  # fmt: skip
    ft, head = costs
    assert ft.name == "finetune" and ft.epochs == 8
    assert ft.epoch_s == pytest.approx(40 * 0.5 + 3.0 * 0.5)
    # 3 s before + 2 s trace + first validation 1 s more (x3) + 0.25 s after
    assert ft.fixed_s == pytest.approx(3.0 + 2.0 + 3.0 + 0.25)
    assert head.epoch_s == pytest.approx(40 * 0.1 + 3.0 * 0.2)
    assert head.fixed_s == pytest.approx(1.0 + 7.0 + 0.5)  # before, features, end of the run


def test_phase_costs_when_the_whole_data_is_decoded_every_epoch() -> None:
    # Epoch 1 decodes (0.3 s a batch), epoch 2 reads the cache the few images fitted in
    # (0.1 s a batch). Cached in the fit too: the decoding is fixed (one epoch's worth).
    e1 = {"begin": 0.0, "batches": [0.3, 0.6, 0.9, 1.2], "end": 1.2}
    e2 = {"begin": 1.2, "batches": [1.3, 1.4, 1.5, 1.6], "end": 1.6}
    rec = {"begin": 0.0, "epochs": [e1, e2], "end": 1.6}
    cached, = phase_costs([Phase("full", 5)], [rec], 0.0, 1.6, 10, 1.0, [0.0])  # fmt: skip
    assert cached.epoch_s == pytest.approx(10 * 0.1)
    assert cached.fixed_s == pytest.approx(10 * 0.2)
    # Too many images for the cache in the fit: every epoch decodes.
    refill, = phase_costs([Phase("full", 5)], [rec], 0.0, 1.6, 10, 1.0, [0.0], refill=(True, False))  # fmt: skip
    assert refill.epoch_s == pytest.approx(10 * 0.3) and refill.fixed_s == pytest.approx(0.0)


# -- end to end, on a tiny scratch CNN with a fake clock --------------------------------------


class FakeClock:
    """One second passes between two readings."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("budget") / "photos", {"a": 16, "b": 12, "c": 12}, image_size=SIZE
    )
    return DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(root)


def tiny(schedule, **kwargs) -> FineTuner:
    bb = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8, 16, 16))
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("batch_size", 8)
    return FineTuner(bb, schedule=schedule, seed=0, **kwargs)


def costs_of(plan: dict) -> list[PhaseCost]:
    return [
        PhaseCost(p["phase"], p["schedule_epochs"], p["epoch_s"], p["fixed_s"])
        for p in plan["phases"]
    ]


@pytest.mark.slow
def test_fit_runs_the_planned_epochs_and_measuring_leaves_no_trace(
    split: Split, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(_budget, "clock", FakeClock())
    schedule = schedules.FreezeThenUnfreeze(1, 1, unfreeze=1)
    common = {"class_weight": "balanced", "batch_size": 4, "class_names": split.class_names}
    t = tiny(schedule, verbose=2, **common)
    # The fit of the planned schedule without a budget, from the same initial weights.
    plain = tiny(schedules.FreezeThenUnfreeze(4, 4, unfreeze=1), **common)
    plain.build().set_weights(t.build().get_weights())
    t.fit(split.train, split.val, time_budget="1000h")  # the fake clock says the schedule fits
    plan = t.budget_plan
    assert plan["budget_s"] == 3.6e6 and plan["fits"] and plan["capped"]
    assert plan["available_s"] == 3.6e6 * (1 - _budget.BUDGET_MARGIN) - plan["measure_s"]
    assert plan_epochs(costs_of(plan), plan["available_s"]).epochs == (4, 4)  # 4x at most
    assert [p["epochs"] for p in plan["phases"]] == [4, 4]
    assert t.history.phases == ["head"] * 4 + ["finetune"] * 4
    assert t.schedule == schedule and [p.epochs for p in t.phases] == [1, 1]
    assert len(t.phase_log) == 2 and t.class_weight == "balanced"
    err = capsys.readouterr().err
    assert "tlkit: time budget 1000h: head 4 epochs (~" in err and "finetune 4 epochs" in err
    assert "phase 1/2 'head': epochs 1-4" in err
    # Measuring trained the model, its optimizers and dropout: all of it was put back, so
    # the result is the fit of the planned schedule without a budget, weight for weight.
    plain.fit(split.train, split.val)
    assert plain.history.history["loss"] == t.history.history["loss"]
    for a, b in zip(plain.model.get_weights(), t.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_measuring_keeps_tensorflow_retracing_warnings_off(split: Split, monkeypatch) -> None:
    """Measuring runs inside quiet_retracing(), which drops TensorFlow's retracing warning
    (and nothing else) while it lasts."""
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger, keep = logging.getLogger("tensorflow"), Keep()
    logger.addHandler(keep)
    retracing = "6 out of the last 16 calls to <function f> triggered tf.function retracing."
    try:
        with _budget.quiet_retracing():
            logger.warning(retracing)
            logger.warning("something else")
        logger.warning(retracing)
    finally:
        logger.removeHandler(keep)
    assert seen == ["something else", retracing]
    quiet_while_measuring: list[bool] = []
    real = _budget.measure

    def measure(*args, **kwargs):
        quiet_while_measuring.append(
            any(isinstance(f, _budget._NoRetracingWarning) for f in logger.filters)
        )
        return real(*args, **kwargs)

    monkeypatch.setattr(_budget, "measure", measure)
    monkeypatch.setattr(_budget, "clock", FakeClock())
    tiny(schedules.Frozen(1), batch_size=4, class_names=split.class_names).fit(
        split.train, split.val, time_budget="1h"
    )
    assert quiet_while_measuring == [True]
    assert not any(isinstance(f, _budget._NoRetracingWarning) for f in logger.filters)


def test_the_plan_scales_the_schedule_to_the_budget(split: Split, monkeypatch) -> None:
    costs = [PhaseCost("head", 3, 2.0, 10.0), PhaseCost("finetune", 2, 20.0, 30.0)]
    monkeypatch.setattr(_budget, "measure", lambda *args: costs)
    monkeypatch.setattr(_budget, "clock", FakeClock())  # measuring "takes" 1 s
    # The schedule takes 40 + 6 + 40 = 86 s, twice its epochs 40 + 12 + 80 = 132 s.
    budget = (1.0 + 133.0) / (1 - _budget.BUDGET_MARGIN)
    t = tiny(schedules.FreezeThenUnfreeze(3, 2, unfreeze=1))
    t.fit(split.train, split.val, time_budget=budget)
    assert t.budget_plan["measure_s"] == 1.0
    assert t.budget_plan["available_s"] == pytest.approx(133.0)
    assert plan_epochs(costs, 133.0).epochs == (6, 4)
    assert t.history.phases == ["head"] * 6 + ["finetune"] * 4
    assert t.best_epoch is not None  # the best epoch is kept as always

    # Too small a budget: one epoch per phase, and a warning that says so.
    budget = _budget.TimeBudget.start(t, 30)
    with (
        pytest.warns(UserWarning, match="time_budget 30 s is too small: measuring took 1 s"),
        budget.applied(Data(part=split.train), None),
    ):
        assert [p.epochs for p in t.phases] == [1, 1]
    assert [p.epochs for p in t.phases] == [3, 2]
    assert not t.budget_plan["fits"]


def test_time_budget_is_checked_before_training(split: Split) -> None:
    t = tiny(schedules.Frozen(1))
    with pytest.raises(InvalidArgumentError, match="time_budget must be seconds > 0"):
        t.fit(split.train, time_budget="soon")
    assert t.history is None
    with pytest.raises(InvalidArgumentError, match="time_budget and resume_dir cannot be combined"):
        tiny(schedules.Frozen(1), resume_dir="ckpt").fit(split.train, time_budget=60)


# -- the command line and the study ----------------------------------------------------------


def test_cli_time_budget(split: Split, tmp_path: Path, monkeypatch, capsys) -> None:
    from tlkit.cli import main
    from tlkit.finetune import FineTuner as Tuner

    manifest = split.save(Path(split.train.root).parent / "s.split.json")  # beside the images
    args = ["train", str(manifest), "--backbone", "scratch_cnn", "--weights", "none", "-o"]
    assert main([*args, str(tmp_path / "m.keras"), "--time-budget", "soon"]) == 2
    err = capsys.readouterr().err
    assert "argument --time-budget: a time budget must be seconds > 0" in err and "'10min'" in err

    seen = {}

    def fit(self, train, val=None, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(Tuner, "fit", fit)
    assert main([*args, str(tmp_path / "m.keras"), "--time-budget", "10min"]) == 1
    assert seen == {"time_budget": "10min"}
    assert main([*args, str(tmp_path / "m.keras")]) == 1
    assert seen == {"time_budget": None}
    # a JSON file: a train summary's plan (or the plan itself) is passed on to replay
    plan = {"phases": [{"phase": "head", "schedule_epochs": 1, "epochs": 3}]}
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"model": "m.keras", "time_budget": {"plan": plan}}))
    assert main([*args, str(tmp_path / "m.keras"), "--time-budget", str(summary)]) == 1
    assert seen == {"time_budget": plan}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert (
        main([*args, str(tmp_path / "m.keras"), "--time-budget", str(tmp_path / "plan.json")]) == 1
    )
    assert seen == {"time_budget": plan}
    for bad, why in [
        ("{x", "not a readable JSON plan"),
        ('{"model": 1}', "holds no time-budget plan"),
    ]:
        (tmp_path / "bad.json").write_text(bad)
        assert main([*args, "m.keras", "--time-budget", str(tmp_path / "bad.json")]) == 2
        assert why in capsys.readouterr().err
    assert main([*args, "m.keras", "--time-budget", str(tmp_path / "none.json")]) == 2
    assert "not a readable JSON plan" in capsys.readouterr().err


def test_cli_train_replays_the_plan_its_summary_recorded(
    split: Split, tmp_path: Path, monkeypatch, capsys
) -> None:
    from tlkit.cli import main

    monkeypatch.setattr(_budget, "measure", lambda *args: [PhaseCost("head", 1, 1.0, 0.0)])
    monkeypatch.setattr(_budget, "clock", FakeClock())
    manifest = split.save(Path(split.train.root).parent / "r.split.json")
    args = ["train", str(manifest), "--backbone", "scratch_cnn", "--weights", "none",
            "--image-size", str(SIZE), "--schedule", "frozen:1", "--quiet", "-o"]  # fmt: skip
    assert main([*args, str(tmp_path / "a.keras"), "--time-budget", "20s"]) == 0
    first = json.loads(capsys.readouterr().out)
    epochs = first["time_budget"]["epochs"]["head"]
    assert epochs > 1 and first["time_budget"]["plan"]["phases"][0]["epochs"] == epochs
    (tmp_path / "first.json").write_text(json.dumps(first))

    def no_measuring(*args):
        raise AssertionError("a replayed plan measures nothing")

    monkeypatch.setattr(_budget, "measure", no_measuring)
    assert (
        main([*args, str(tmp_path / "b.keras"), "--time-budget", str(tmp_path / "first.json")]) == 0
    )
    second = json.loads(capsys.readouterr().out)
    assert second["time_budget"]["replayed"] and second["epochs"] == first["epochs"] == epochs


def test_study_profiles_take_a_time_budget_as_an_option() -> None:
    spec = importlib.util.spec_from_file_location("study_example", EXAMPLE)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    assert study.PROFILES["default"]["time_budget"] == "4min"  # equal CPU time for both models
    assert study.PROFILES["smoke"]["time_budget"] is None  # seconds of tiny data: epochs as given
    assert study.parse_args([]).time_budget is None  # None: the profile's budget applies
    assert study.parse_args(["--time-budget", "5min"]).time_budget == "5min"
    assert study.parse_args(["--time-budget", "none"]).time_budget == "none"
    with warnings.catch_warnings(), pytest.raises(SystemExit) as exc:
        study.parse_args(["--time-budget", "later"])
    assert exc.value.code == 2


class SlowClock:
    """Ten seconds pass between two readings: epochs take far longer than measured."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def test_phases_stop_at_their_deadlines_when_epochs_run_slower_than_measured(
    split: Split, monkeypatch, capsys
) -> None:
    """The plan says 1 s an epoch, the machine then takes 20 s (two clock readings):
    each phase stops when its next epoch would end past its deadline, the later phase
    still runs, and the fit ends near the budget instead of far past it."""
    costs = [PhaseCost("head", 3, 1.0, 0.0), PhaseCost("finetune", 2, 1.0, 0.0)]
    monkeypatch.setattr(_budget, "measure", lambda *args: costs)
    clock = SlowClock()
    monkeypatch.setattr(_budget, "clock", clock)
    t = tiny(schedules.FreezeThenUnfreeze(3, 2, unfreeze=1), verbose=2)
    t.fit(split.train, split.val, time_budget=100)
    plan = t.budget_plan
    planned = [p["epochs"] for p in plan["phases"]]
    assert planned == [12, 8]  # 4x the schedule: the measured epochs were cheap
    ran = [t.history.phases.count("head"), t.history.phases.count("finetune")]
    assert 1 <= ran[0] < planned[0] and 1 <= ran[1] < planned[1]
    assert [s["phase"] for s in plan["stopped"]] == ["head", "finetune"]
    assert [s["epochs"] for s in plan["stopped"]] == ran
    assert plan["fit_s"] <= 100 + 2 * 20  # within an epoch or so of the budget, not 20 x 20 s
    err = capsys.readouterr().err
    assert f"phase 'head' stops after {ran[0]} of 12 planned epochs" in err
    assert t.best_epoch is not None
    assert getattr(t, "_budget_deadlines", None) is None  # nothing left on the tuner


def test_deadlines_leave_room_for_the_later_phases() -> None:
    costs = [PhaseCost("head", 3, 2.0, 10.0), PhaseCost("finetune", 2, 20.0, 30.0)]
    budget = _budget.TimeBudget(None, 200.0)  # type: ignore[arg-type]
    budget.started = 5.0
    ends = budget.deadlines(costs, plan_epochs(costs, 180.0))
    epochs = plan_epochs(costs, 180.0).epochs
    assert ends[1] == 205.0
    assert ends[0] == pytest.approx(205.0 - (epochs[1] * 20.0 + 30.0))


def test_an_epochs_start_is_counted_once_not_per_step() -> None:
    """The measured epoch waits 3 s for its first batch (the input pipeline warming up),
    then 0.5 s a batch: on 58 steps that is 3 + 57 x 0.5 s, not 58 x (3 + 3 x 0.5) / 4
    (the start spread over the 4 measured batches and so charged to every step)."""
    e1 = {"begin": 0.0, "batches": [3.0, 3.5, 4.0, 4.5], "end": 4.5}
    e2 = {"begin": 4.5, "batches": [7.5, 8.0, 8.5, 9.0], "end": 9.0}
    rec = {"begin": 0.0, "epochs": [e1, e2], "end": 9.0}
    cost, = phase_costs([Phase("finetune", 8)], [rec], 0.0, 9.0, 58, 1.0, [0.0])  # fmt: skip
    assert cost.epoch_s == pytest.approx(3.0 + 57 * 0.5)


def test_a_recorded_plan_replays_the_same_epochs_stops_and_weights(
    split: Split, monkeypatch, capsys
) -> None:
    """A budgeted run under load stopped both phases early; replaying its plan (read back
    from JSON) runs the same epochs without measuring and gives the same weights."""
    import json

    costs = [PhaseCost("head", 3, 1.0, 0.0), PhaseCost("finetune", 2, 1.0, 0.0)]
    monkeypatch.setattr(_budget, "measure", lambda *args: costs)
    monkeypatch.setattr(_budget, "clock", SlowClock())
    schedule = schedules.FreezeThenUnfreeze(3, 2, unfreeze=1)
    recorded = tiny(schedule, class_names=split.class_names)
    again = tiny(schedule, class_names=split.class_names, verbose=2)
    again.build().set_weights(recorded.build().get_weights())
    recorded.fit(split.train, split.val, time_budget=100)
    plan = json.loads(json.dumps(recorded.budget_plan))
    assert plan["stopped"]  # the case worth replaying: epochs cut by the deadlines

    def no_measuring(*args):
        raise AssertionError("a replayed plan measures nothing")

    monkeypatch.setattr(_budget, "measure", no_measuring)
    again.fit(split.train, split.val, time_budget=plan)
    assert again.history.phases == recorded.history.phases
    assert again.history.history["loss"] == recorded.history.history["loss"]
    for a, b in zip(recorded.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.budget_plan["replayed"] is True and again.schedule == schedule
    assert getattr(again, "_budget_stops", None) is None  # nothing left on the tuner
    err = capsys.readouterr().err
    head = plan["phases"][0]["epochs"]
    assert f"replaying a recorded time-budget plan: head {head} epochs (stopped after" in err


def _plan(head: object = 2, finetune: object = 1, **extra: object) -> dict:
    return {
        "phases": [
            {"phase": "head", "schedule_epochs": 3, "epochs": head},
            {"phase": "finetune", "schedule_epochs": 2, "epochs": finetune},
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"phases": "head"}, "a recorded plan is a mapping with a 'phases' list"),
        ({"phases": [{"phase": "head", "schedule_epochs": 3, "epochs": 1}]}, "has 1 phase"),
        ({"phases": [1, 2]}, "each entry of 'phases' must be a mapping"),
        (
            {"phases": [{"phase": "head", "schedule_epochs": 30, "epochs": 1}, {}]},
            "recorded for another schedule: phase 'head' of 30 epochs",
        ),
        (_plan(head=0), "epochs of phase 'head' must be an int >= 1, got 0"),
        (_plan(head=True), "must be an int >= 1, got True"),
        (_plan(finetune="2"), "must be an int >= 1, got '2'"),
        (_plan(stopped={"phase": "head"}), "'stopped' must be a list"),
        (_plan(stopped=[{"phase": "full", "epochs": 1}]), "'stopped' names no phase"),
        (_plan(stopped=["head"]), "'stopped' names no phase"),
        (_plan(stopped=[{"phase": "head", "epochs": 5}]), "stopped after 5 of 2 planned"),
        (_plan(stopped=[{"phase": "head", "epochs": -1}]), "must be an int >= 1, got -1"),
    ],
)
def test_a_plan_for_another_schedule_or_malformed_is_refused_before_training(
    split: Split, plan: object, message: str
) -> None:
    t = tiny(schedules.FreezeThenUnfreeze(3, 2, unfreeze=1))
    with pytest.raises(InvalidArgumentError, match=re.escape(message)) as exc:
        t.fit(split.train, split.val, time_budget=plan)
    assert exc.value.argument == "time_budget" and getattr(t, "history", None) is None
    # a well-formed plan for this schedule is taken
    _budget.replay_plan(_plan(stopped=[{"phase": "head", "epochs": 1}]), t.phases)


def test_cache_fills_count_each_view_of_the_training_images() -> None:
    """What the plan charges for filling caches: the frozen features once per fit, a
    boundary cache per phase, training images once per cached view (issue: a head phase
    with two views was charged for one, ran out of its time and stopped after one epoch)."""
    head, boundary, images = (
        {"cached_features": True}, {"cached_boundary": True}, {"cached_features": False},
    )  # fmt: skip
    assert _budget.cache_fills([head, boundary], 100, 20, views=2) == [220, 220]
    assert _budget.cache_fills([head, head, images], 100, 20, views=1) == [120, 0, 0]
    assert _budget.cache_fills([images, boundary, boundary], 10, 0, views=8) == [0, 80, 80]
    assert _budget.cache_fills([], 10, 5, views=2) == []
    # a boundary cache filled in the frozen phases' pass costs its phase nothing more
    shared = {"cached_boundary": True, "cached_boundary_shared": True}
    assert _budget.cache_fills([head, shared], 100, 20, views=2) == [220, 0]
    assert _budget.cache_fills([head, shared, boundary], 100, 20, views=2) == [220, 0, 220]
