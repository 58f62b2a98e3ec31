"""The pure half of the time budget: phase costs from noted times, epochs from costs.

No clock and no model here: :class:`PhaseTimer` notes the times a clock it is
given reads, :func:`phase_costs` turns them into what each phase costs, and
:func:`plan_epochs` fits epochs into a budget. :mod:`tlkit.finetune._budget`
measures and applies the plan.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import keras

from tlkit.errors import ScheduleError

__all__ = ["MAX_EPOCH_SCALE", "EpochPlan", "PhaseCost", "PhaseTimer", "phase_costs", "plan_epochs"]

#: A budget may lengthen the schedule to at most this many times its epochs.
MAX_EPOCH_SCALE = 4.0


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
