"""A time budget for :meth:`FineTuner.fit`: measure each phase on a few batches, then plan epochs.

``fit(train, val, time_budget="10min")`` runs in three steps:

1. **Measure.** Every phase of the schedule runs for ``PROBE_EPOCHS`` short
   epochs of ``PROBE_BATCHES`` batches of the training data (taken evenly over
   it) and as many validation images, through the same code as the real fit
   (the same caching, tracing and validation pass) on the real model; the
   weights, the optimizers' state and the fit's records are put back
   afterwards. A :class:`PhaseTimer` notes when each phase starts, each batch
   ends and each validation pass ends; :func:`phase_costs` turns those times
   into the seconds of one epoch and the fixed seconds of each phase on the
   whole data.
2. **Plan.** :func:`plan_epochs` scales the schedule's epochs by one factor so
   that the phases fit in what is left of the budget (``BUDGET_MARGIN`` kept
   spare), at least one epoch per phase, at most ``MAX_EPOCH_SCALE`` times the
   schedule's epochs.
3. **Train** the schedule with the planned epochs, keeping the best epoch as
   always; the plan is logged and kept in ``tuner.budget_plan``. Each phase
   has a deadline, the budget's end less the planned time of the phases after
   it: when epochs run slower than measured (other work on the machine), a
   phase stops after the epoch whose successor would end past its deadline
   (never before its first epoch), logged and noted in
   ``budget_plan["stopped"]``.

A budget trades run-to-run reproducibility for a bounded wall time: on another
machine, or the same one under load, the plan differs. ``fit(train, val,
time_budget=tuner.budget_plan)`` (a plan recorded by an earlier fit, e.g. read
back from JSON) *replays* it: no measuring, the recorded epochs of each phase,
and a phase the deadline stopped stops after the same epoch, so a seeded fit
on a CPU gives the recorded run's weights again (:func:`replay_plan` checks the
plan against the schedule).

The planning half (:class:`PhaseTimer`, :func:`phase_costs`, :func:`plan_epochs`) reads
no clock and touches no model: the timer notes the times a clock it is given reads. The
measuring half reads :data:`clock` (``time.perf_counter``); tests replace it with a fake
one, so no test depends on how fast the machine is.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import keras

from tlkit._validation import check_duration
from tlkit.errors import InvalidArgumentError, ScheduleError
from tlkit.finetune._boundary import cached_views
from tlkit.finetune._data import Data

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.finetune._tuner import FineTuner

__all__ = [
    "BUDGET_MARGIN",
    "MAX_EPOCH_SCALE",
    "PROBE_BATCHES",
    "PROBE_EPOCHS",
    "EpochPlan",
    "PhaseCost",
    "PhaseTimer",
    "TimeBudget",
    "cache_fills",
    "measure",
    "phase_costs",
    "plan_epochs",
    "replay_plan",
]

#: Training batches per epoch while a phase is measured (the first one traces the step).
PROBE_BATCHES = 4
#: Epochs each phase runs while it is measured: the first has the one-off costs, the last is steady.
PROBE_EPOCHS = 2
#: Share of the budget kept spare for what measuring cannot foresee (0.05: plan for 95%).
BUDGET_MARGIN = 0.05
#: A budget may lengthen the schedule to at most this many times its epochs.
MAX_EPOCH_SCALE = 4.0
#: The clock the measuring code reads (seconds); tests put a fake one here.
clock: Callable[[], float] = time.perf_counter


# -- planning: phase costs from noted times, epochs from costs (no clock, no model) ----------


@dataclasses.dataclass(frozen=True)
class PhaseCost:
    """What one phase costs on the whole data, measured before training.

    Attributes
    ----------
    name
        The phase's name (``"head"``, ``"finetune"``...).
    epochs
        The schedule's epochs for the phase.
    epoch_s
        Seconds per epoch: the training steps and the validation pass.
    fixed_s
        Seconds the phase costs once: building and compiling its model,
        tracing the first step, computing cached features.
    """

    name: str
    epochs: int
    epoch_s: float
    fixed_s: float


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """Epochs per phase that fit in ``available_s`` (see :func:`plan_epochs`).

    ``fits`` is False when even one epoch per phase takes longer than
    ``available_s`` (the plan is then one epoch per phase); ``capped`` is True
    when the epochs stopped at ``max_scale`` times the schedule's.
    """

    epochs: tuple[int, ...]
    planned_s: float
    available_s: float
    scale: float
    fits: bool
    capped: bool


def _seconds(costs: Sequence[PhaseCost], epochs: Sequence[int]) -> float:
    return float(sum(c.fixed_s + e * c.epoch_s for c, e in zip(costs, epochs, strict=True)))


def plan_epochs(
    costs: Sequence[PhaseCost], available_s: float, *, max_scale: float | None = None
) -> EpochPlan:
    """Scale every phase's epochs by one factor so the phases take at most ``available_s``.

    Phase ``i`` gets ``max(1, floor(s * epochs_i))`` epochs for the largest
    factor ``s <= max_scale`` whose total (fixed costs plus epochs times the
    cost of an epoch) fits; then phases are rounded up by one epoch, those
    furthest under ``s * epochs_i`` first, while the total still fits. A pure
    function: no clock, no model. ``max_scale`` defaults to :data:`MAX_EPOCH_SCALE`.

    Examples
    --------
    >>> costs = [PhaseCost("head", 30, 0.4, 5.0), PhaseCost("finetune", 8, 38.0, 20.0)]
    >>> plan = plan_epochs(costs, 300.0)
    >>> plan.epochs, round(plan.planned_s, 1)
    ((27, 6), 263.8)
    >>> plan_epochs(costs, 10.0).fits
    False
    """
    if max_scale is None:
        max_scale = MAX_EPOCH_SCALE
    if not costs:
        return EpochPlan((), 0.0, float(available_s), 1.0, True, False)
    base = [max(int(c.epochs), 1) for c in costs]
    caps = [max(1, math.floor(max_scale * e)) for e in base]

    def at(s: Fraction) -> list[int]:
        return [max(1, min(cap, math.floor(s * e))) for e, cap in zip(base, caps, strict=True)]

    minimum = [1] * len(costs)
    if _seconds(costs, minimum) > available_s:
        return EpochPlan(
            tuple(minimum), _seconds(costs, minimum), float(available_s), 0.0, False, False
        )
    # Every factor where some phase gains an epoch, in order; the cost grows with the factor.
    steps = sorted(
        {Fraction(k, e) for e, cap in zip(base, caps, strict=True) for k in range(1, cap + 1)}
    )
    lo, hi = 0, len(steps)  # steps[:lo] fit, steps[hi:] do not
    while lo < hi:
        mid = (lo + hi) // 2
        if _seconds(costs, at(steps[mid])) <= available_s:
            lo = mid + 1
        else:
            hi = mid
    scale = steps[lo - 1] if lo else Fraction(0)
    epochs = at(scale)
    # Rounding: one more epoch for the phases furthest under their share, while it fits.
    order = sorted(range(len(costs)), key=lambda i: (Fraction(epochs[i], base[i]), i))
    for i in order:
        if epochs[i] < caps[i] and _seconds(costs, epochs) + costs[i].epoch_s <= available_s:
            epochs[i] += 1
    capped = epochs == caps
    return EpochPlan(
        tuple(epochs), _seconds(costs, epochs), float(available_s), float(scale), True, capped
    )


class PhaseTimer(keras.callbacks.Callback):
    """Note the clock at the events of each phase's ``model.fit`` (one record per phase).

    A record is ``{"begin", "epochs": [{"begin", "batches": [...], "end"}, ...], "end"}``:
    the start of the phase's training, per epoch its start, the end of each
    batch and its end (after the validation pass: tlkit's callbacks run before
    this one), and the end of the phase's training.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.records: list[dict[str, Any]] = []

    def on_train_begin(self, logs: Any = None) -> None:
        self.records.append({"begin": self.clock(), "epochs": []})

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.records[-1]["epochs"].append({"begin": self.clock(), "batches": []})

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.records[-1]["epochs"][-1]["batches"].append(self.clock())

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.records[-1]["epochs"][-1]["end"] = self.clock()

    def on_train_end(self, logs: Any = None) -> None:
        self.records[-1]["end"] = self.clock()


def _epoch_times(e: dict[str, Any]) -> tuple[float, float, float, float]:
    """(first batch, steady step, step with the epoch's start, validation) of one epoch."""
    batches = e["batches"] or [e["begin"]]
    end = e.get("end", batches[-1])
    first = batches[0] - e["begin"]
    steady = (batches[-1] - batches[0]) / (len(batches) - 1) if len(batches) > 1 else first
    return first, steady, (batches[-1] - e["begin"]) / len(batches), end - batches[-1]


def phase_costs(
    phases: Sequence[Any],
    records: Sequence[dict[str, Any]],
    start: float,
    stop: float,
    steps: int,
    val_scale: float,
    feature_s: Sequence[float],
    *,
    refill: tuple[bool, bool] = (False, False),
) -> list[PhaseCost]:
    """The cost of each phase on the whole data, from the times :class:`PhaseTimer` noted.

    Parameters
    ----------
    phases
        The schedule's phases (``name``, ``epochs``), in order.
    records
        One :class:`PhaseTimer` record per phase, from a run of two short epochs each.
    start, stop
        The clock when that run started and when it returned.
    steps
        Training batches of one epoch on the whole data.
    val_scale
        How many times more validation data the whole has than the measured run.
    feature_s
        Seconds each phase adds for the features of the images the run left out.
    refill
        Whether the whole train (val) data is decoded again every epoch: too
        large for the image cache, while the measured few images were cached.

    The second epoch is the steady state: an epoch costs what its measured
    batches took from the epoch's start (the input pipeline's warm-up counted
    once), the remaining ``steps`` at its steady rate between batches, and its
    validation pass scaled by ``val_scale``. What the first
    epoch took more is fixed: tracing (its first batch), filling the image
    cache (its steps, over ``steps`` batches) and the first validation pass
    (scaled by ``val_scale``). Also fixed: the time before training starts
    (models, compiling, features), the time after, ``feature_s``, and after the
    last phase the time until the run returned (going back to the best epoch).
    """
    if len(records) != len(phases):
        raise ScheduleError(
            f"time_budget: measured {len(records)} phases, the schedule has {len(phases)}"
        )
    out = []
    before = start
    for i, (phase, r) in enumerate(zip(phases, records, strict=True)):
        epochs = r["epochs"] or [{"begin": r["begin"], "batches": []}]
        first, steady1, _, val1 = _epoch_times(epochs[0])
        _, steady, step, val = _epoch_times(epochs[-1])
        fill = 0.0 if len(epochs) == 1 else max(steady1 - step, 0.0)
        # An epoch: what the measured one took up to its last batch (its start, the
        # pipeline's warm-up, included once), then the rest of the steps at its steady
        # rate. Spreading the start over the few measured batches instead would charge
        # it to every step of the whole data: ~2x an image-path epoch on 58 steps.
        measured = min(len(epochs[-1]["batches"]) or 1, steps)
        train_s = step * measured + steady * (steps - measured)
        if refill[0]:
            step, fill = max(step, steady1), 0.0
            train_s = step * steps
        if refill[1]:
            val = max(val, val1)
        end = r.get("end", epochs[-1].get("end", r["begin"]))
        fixed = (r["begin"] - before) + (epochs[0]["begin"] - r["begin"])
        fixed += max(first - steady1, 0.0) + fill * steps + max(val1 - val, 0.0) * val_scale
        fixed += (end - epochs[-1].get("end", end)) + feature_s[i]
        if i == len(phases) - 1:
            fixed += stop - end
        epoch = train_s + val * val_scale
        out.append(PhaseCost(phase.name, int(phase.epochs), max(epoch, 0.0), max(fixed, 0.0)))
        before = end
    return out


# -- measuring and applying the plan --------------------------------------------------------


def _now() -> float:
    """The current reading of :data:`clock` (looked up at each call, so tests can swap it)."""
    return clock()


def with_phase_epochs(schedule: Any, epochs: Sequence[int]) -> Any:
    """A copy of ``schedule`` whose phases run ``epochs`` (same rates, warm-up, groups)."""
    planned = copy.copy(schedule)
    phases_of = schedule.phases
    epochs = tuple(epochs)

    def phases(num_groups: int) -> list[Any]:
        return [
            dataclasses.replace(p, epochs=e)
            for p, e in zip(phases_of(num_groups), epochs, strict=True)
        ]

    planned.phases = phases
    return planned


def _first_phase(schedule: Any) -> Any:
    """A copy of ``schedule`` that runs one epoch of its first phase."""
    short = copy.copy(schedule)
    phases_of = schedule.phases
    short.phases = lambda num_groups: [dataclasses.replace(phases_of(num_groups)[0], epochs=1)]
    return short


def _probe_data(data: Data, batch_size: int, what: str, batches: int = PROBE_BATCHES) -> Data:
    """``batches`` batches of ``data``, taken evenly over it (every class of a sorted part)."""
    if data.part is not None:
        part = data.part
        n = min(len(part), batches * batch_size)
        return Data(part=part[:: max(1, len(part) // n)][:n])
    if what == "train" and int(data.dataset.cardinality()) < 0:  # .filter() and friends
        raise ScheduleError(
            f"time_budget needs the number of batches of {what}, and the dataset's is unknown; "
            f"tell tf.data with {what}.apply(tf.data.experimental.assert_cardinality(n))"
        )
    return Data(dataset=data.dataset.take(batches))


def _steps(data: Data, batch_size: int) -> int:
    if data.part is not None:
        return math.ceil(len(data.part) / batch_size)
    return int(data.dataset.cardinality())


@contextlib.contextmanager
def _put_back(tuner: FineTuner) -> Iterator[None]:
    """Undo what a measuring run does to the tuner: weights, optimizers, records, settings."""
    variables = list(tuner.model.variables)  # weights, BatchNorm statistics, dropout seeds
    values = [v.numpy().copy() for v in variables]
    optimizers, rates = dict(tuner._optimizers), dict(tuner._rates)
    opt_values = {k: [v.numpy().copy() for v in o.variables] for k, o in optimizers.items()}
    names = ("schedule", "verbose", "tensorboard_dir", "class_weight", "phase_log", "progress")
    saved = {a: getattr(tuner, a) for a in (*names, "best_epoch", "kept_epochs", "_resumed")}
    tuner.phase_log = list(tuner.phase_log)
    try:
        yield
    finally:
        for v, x in zip(variables, values, strict=True):
            v.assign(x)
        for k, o in optimizers.items():
            for v, x in zip(o.variables, opt_values[k], strict=True):
                v.assign(x)
        tuner._optimizers, tuner._rates = optimizers, rates
        for a, x in saved.items():
            setattr(tuner, a, x)


class _NoRetracingWarning(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing() -> Iterator[None]:
    """Keep TensorFlow's frequent-retracing warning off the log meanwhile.

    Measuring builds a model for each phase and runs each on a few batches of two
    sizes, short-lived functions that TensorFlow counts as retracing too often and
    warns about (twice, at length, on a few hundred photos). The tracing is by
    design, and its cost is part of what measuring charges to the plan.
    """
    logger, quiet = logging.getLogger("tensorflow"), _NoRetracingWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def measure(
    tuner: FineTuner, train: Data, val: Data | None, clk: Callable[[], float]
) -> list[PhaseCost]:
    """Run each phase for a few short epochs and return the cost of each on all the data."""
    from tlkit.finetune._fit import run_schedule

    phases = tuner.phases
    bs = tuner.batch_size
    train_probe = _probe_data(train, bs, "train")
    val_probe = None if val is None else _probe_data(val, bs, "val")
    timer = PhaseTimer(clk)
    with _put_back(tuner):
        schedule = copy.copy(tuner.schedule)
        schedule.head_start = "random"  # the fit fits its probe on all the images, not these few
        tuner.verbose, tuner.tensorboard_dir = 0, None
        if tuner.class_weight is not None:  # the weights of the whole train data, not the probe's
            tuner.class_weight = tuner.class_weight_dict(train)
        # Untimed: one batch of the first phase pays what only the first fit in a process pays
        # (lazy imports, TensorFlow's start-up), which the fit itself will not pay again.
        tuner.schedule = _first_phase(schedule)
        run_schedule(
            tuner,
            _probe_data(train, bs, "train", batches=1),
            None if val is None else _probe_data(val, bs, "val", batches=1),
            [],
        )
        tuner.schedule = with_phase_epochs(schedule, [PROBE_EPOCHS] * len(phases))
        logged = len(tuner.phase_log)
        start = clk()
        run_schedule(tuner, train_probe, val_probe, [timer])
        stop = clk()
        entries = tuner.phase_log[logged:]
    # Cached features are computed once per fit, a boundary cache once per phase and view
    # (tlkit.finetune._boundary): the probe computed them for its few images, the fit
    # computes them for the rest too, at about the cost of running the backbone on them.
    left_train = len(train) - len(train_probe)
    left_val = 0 if val is None or val_probe is None else len(val) - len(val_probe)
    views = cached_views(tuner.augment)
    fills = cache_fills(
        entries[: len(phases)], left_train, left_val, len(views) if views is not None else 1
    )
    per_image = _seconds_per_image(tuner, train, clk) if any(fills) else 0.0
    feature_s = [per_image * images for images in fills]
    val_scale = 1.0 if val is None or val_probe is None else len(val) / max(len(val_probe), 1)
    refill = tuple(  # the few images were cached, all of them will not be
        d is not None and d.is_part and tuner.cache_images_here(len(d)) is None
        for d in (train, val)
    )
    return phase_costs(
        phases, timer.records, start, stop, _steps(train, bs), val_scale, feature_s,
        refill=refill,  # type: ignore[arg-type]
    )  # fmt: skip


class _BatchEnds(keras.callbacks.Callback):
    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.ends: list[float] = []

    def on_predict_batch_end(self, batch: int, logs: Any = None) -> None:
        self.ends.append(self.clock())


def cache_fills(
    entries: Sequence[dict[str, Any]], train_images: int, val_images: int, views: int
) -> list[int]:
    """Images each phase runs through the backbone to fill its caches (from the phase log).

    The frozen phases' feature cache is filled once per fit, by the first phase that
    uses it; a boundary cache by each phase that uses one, unless it was filled in
    the same pass as the frozen phases' features (``cached_boundary_shared``). Training images count once
    per cached view (``views``), validation images once.
    """
    fills, features_done = [], False
    for entry in entries:
        if entry.get("cached_boundary") and not entry.get("cached_boundary_shared"):
            fills.append(train_images * views + val_images)
        elif entry.get("cached_features") and not features_done:
            features_done = True
            fills.append(train_images * views + val_images)
        else:
            fills.append(0)
    return fills


def _seconds_per_image(tuner: FineTuner, train: Data, clk: Callable[[], float]) -> float:
    """Seconds per image to decode images and run the backbone on them (traced already).

    Timed over ``PROBE_BATCHES`` batches from the end of the first: what more
    images cost, without the fixed cost of a pass (starting its pipeline).
    """
    data = _probe_data(train, tuner.batch_size, "train")
    if data.part is not None:
        ds = data.part.to_dataset(tuner.image_size, batch_size=tuner.batch_size, shuffle=False)
    else:
        ds = data.dataset.map(lambda *e: e[0])
    timer = _BatchEnds(clk)
    start = clk()
    tuner.backbone.model.predict(ds, verbose=0, callbacks=[timer])
    n, first = len(data), min(len(data), tuner.batch_size)
    if len(timer.ends) > 1 and n > first:
        return max(timer.ends[-1] - timer.ends[0], 0.0) / (n - first)
    return ((timer.ends[-1] if timer.ends else clk()) - start) / max(n, 1)  # one batch: all of it


def _plan_error(problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"time_budget: {problem}; pass seconds, a duration such as '10min', or the "
        "budget_plan a fit with a time budget recorded for this schedule",
        argument="time_budget",
    )


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _plan_error(f"{what} must be an int >= 1, got {value!r}")
    return value


def replay_plan(plan: Any, phases: Sequence[Any]) -> tuple[list[int], dict[str, int]]:
    """The epochs of each phase and the early stops ``{phase: epochs run}`` of a recorded plan.

    ``plan`` is a :attr:`FineTuner.budget_plan` (or the same read back from
    JSON); ``phases`` are the schedule's. The plan must name the same phases in
    the same order with the same schedule epochs: a plan recorded for another
    schedule raises :class:`~tlkit.errors.InvalidArgumentError`.
    """
    if not isinstance(plan, Mapping) or not isinstance(plan.get("phases"), list):
        raise _plan_error(
            f"a recorded plan is a mapping with a 'phases' list, got {type(plan).__name__}"
        )
    recorded = plan["phases"]
    names = [p.name for p in phases]
    if len(recorded) != len(phases):
        raise _plan_error(
            f"the plan has {len(recorded)} phase entries, this schedule has {len(phases)} ({names})"
        )
    if not all(isinstance(r, Mapping) for r in recorded):
        raise _plan_error(
            "each entry of 'phases' must be a mapping (phase, schedule_epochs, epochs)"
        )
    epochs = []
    for r, phase in zip(recorded, phases, strict=True):
        if r.get("phase") != phase.name or r.get("schedule_epochs") != phase.epochs:
            raise _plan_error(
                f"the plan was recorded for another schedule: phase {r.get('phase')!r} of "
                f"{r.get('schedule_epochs')!r} epochs where this schedule has {phase.name!r} of "
                f"{phase.epochs}"
            )
        epochs.append(_count(r.get("epochs"), f"epochs of phase {phase.name!r}"))
    stops: dict[str, int] = {}
    stopped = plan.get("stopped", [])
    if not isinstance(stopped, list):
        raise _plan_error(f"'stopped' must be a list, got {type(stopped).__name__}")
    for stop in stopped:
        name = stop.get("phase") if isinstance(stop, Mapping) else None
        if not isinstance(name, str) or name not in names:
            raise _plan_error(f"'stopped' names no phase of this schedule: {stop!r}")
        planned = epochs[names.index(name)]
        run = _count(stop.get("epochs"), f"stopped epochs of phase {name!r}")
        if run > planned:
            raise _plan_error(f"phase {name!r} stopped after {run} of {planned} planned epochs")
        stops[name] = run
    return epochs, stops


def _duration(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class TimeBudget:
    """The time budget of one :meth:`FineTuner.fit` (none when ``seconds`` is None).

    Made when ``fit`` starts (the budget counts from then: model building,
    measuring and training); :meth:`applied` wraps the run of the schedule.
    """

    def __init__(
        self, tuner: FineTuner, seconds: float | None, text: Any = None, replay: Any = None
    ) -> None:
        self.tuner, self.seconds, self.text, self.replay = tuner, seconds, text, replay
        self.started = clock() if seconds is not None else 0.0

    @classmethod
    def start(cls, tuner: FineTuner, time_budget: Any) -> TimeBudget:
        """Check ``time_budget`` (seconds, ``"10min"`` or a recorded plan) and start its clock."""
        if isinstance(time_budget, Mapping):  # a recorded plan: checked against the schedule
            replay_plan(time_budget, tuner.phases)
            return cls(tuner, None, replay=copy.deepcopy(dict(time_budget)))
        seconds = check_duration("time_budget", time_budget, allow_none=True)
        if seconds is not None and tuner.resume_dir is not None:
            raise InvalidArgumentError(
                "time_budget and resume_dir cannot be combined: the plan rests on timings "
                "measured when a run starts, which a resumed run would not share; leave one out"
            )
        return cls(tuner, seconds, time_budget)

    @contextlib.contextmanager
    def _replayed(self) -> Iterator[None]:
        """Run the schedule with a recorded plan's epochs and early stops."""
        tuner = self.tuner
        epochs, stops = replay_plan(self.replay, tuner.phases)
        parts = ", ".join(
            f"{p.name} {e} epoch{'s' if e != 1 else ''}"
            + (f" (stopped after {stops[p.name]})" if p.name in stops else "")
            for p, e in zip(tuner.phases, epochs, strict=True)
        )
        tuner.log(f"tlkit: replaying a recorded time-budget plan: {parts}")
        tuner.budget_plan = {**self.replay, "replayed": True}
        original = tuner.schedule
        tuner.schedule = with_phase_epochs(original, epochs)
        tuner._budget_stops = stops
        try:
            yield
        finally:
            tuner.schedule = original
            tuner._budget_stops = None

    @contextlib.contextmanager
    def applied(self, train: Data, val: Data | None) -> Iterator[None]:
        """Measure, plan, and run the schedule inside with the planned epochs."""
        if self.replay is not None:
            with self._replayed():
                yield
            return
        if self.seconds is None:
            self.tuner.budget_plan = None
            yield
            return
        tuner = self.tuner
        what = self.text if isinstance(self.text, str) else _duration(self.seconds)
        tuner.log(f"tlkit: time budget {what}: measuring each phase on {PROBE_BATCHES} batches")
        with quiet_retracing():
            costs = measure(tuner, train, val, clock)
        spent = clock() - self.started
        chose = min(tuner._choice_s, spent)  # pooling="auto" chose the features first
        plan = plan_epochs(costs, self.seconds * (1.0 - BUDGET_MARGIN) - spent)
        self.record(costs, plan, spent)
        parts = ", ".join(
            f"{c.name} {e} epoch{'s' if e != 1 else ''} (~{_duration(c.epoch_s)} each)"
            for c, e in zip(costs, plan.epochs, strict=True)
        )
        tuner.log(
            f"tlkit: time budget {what}: {parts}, planned {_duration(spent + plan.planned_s)} "
            f"(measuring took {_duration(spent - chose)}"
            + (f"; choosing the head's features {_duration(chose)} before it" if chose else "")
            + ")"
            + (f"; {plan.scale:g}x the schedule's epochs at most" if plan.capped else "")
        )
        if not plan.fits:
            message = (
                f"time_budget {what} is too small: measuring took {_duration(spent)} and one "
                f"epoch of each phase takes about {_duration(plan.planned_s)} more; training "
                "that minimum (give a larger budget, a smaller image_size or fewer phases)"
            )
            tuner.log(f"tlkit: {message}")
            warnings.warn(message, UserWarning, stacklevel=4)
        original = tuner.schedule
        tuner.schedule = with_phase_epochs(original, plan.epochs)
        tuner._budget_deadlines = (self.deadlines(costs, plan), _now, self._stopped)
        try:
            yield
        finally:
            tuner.schedule = original
            tuner._budget_deadlines = None
            self._plan()["fit_s"] = clock() - self.started

    def deadlines(self, costs: Sequence[PhaseCost], plan: EpochPlan) -> list[float]:
        """When each phase must end (clock readings) for the later phases to fit as planned."""
        if self.seconds is None:  # pragma: no cover - applied() plans only with a budget
            raise RuntimeError("no time budget to plan deadlines for; please report this")
        end = self.started + self.seconds
        later = [e * c.epoch_s + c.fixed_s for c, e in zip(costs, plan.epochs, strict=True)]
        return [end - sum(later[i + 1 :]) for i in range(len(later))]

    def _stopped(self, phase: str, epochs: int, planned: int) -> None:
        stops = self._plan().setdefault("stopped", [])
        stops.append({"phase": phase, "epochs": epochs, "planned_epochs": planned})

    def _plan(self) -> dict[str, Any]:
        """The tuner's ``budget_plan``, which :meth:`record` makes before the schedule runs."""
        if self.tuner.budget_plan is None:  # pragma: no cover
            raise RuntimeError("the time budget has no plan yet; please report this")
        return self.tuner.budget_plan

    def record(self, costs: Sequence[PhaseCost], plan: EpochPlan, spent: float) -> None:
        self.tuner.budget_plan = {
            "budget_s": self.seconds,
            "measure_s": spent,
            "available_s": plan.available_s,
            "planned_s": spent + plan.planned_s,
            "fits": plan.fits,
            "capped": plan.capped,
            "scale": plan.scale,
            "phases": [
                {
                    "phase": c.name,
                    "schedule_epochs": c.epochs,
                    "epochs": e,
                    "epoch_s": c.epoch_s,
                    "fixed_s": c.fixed_s,
                }
                for c, e in zip(costs, plan.epochs, strict=True)
            ],
        }
