"""The schedule machinery: :class:`Phase`, the :class:`Schedule` base class, configs and rates.

The concrete schedules (:class:`~tlkit.finetune.schedules.Frozen`, ...) live in
:mod:`tlkit.finetune.schedules`, which registers them here with
:func:`register` so that :func:`from_config` can rebuild them; import
everything from :mod:`tlkit.finetune.schedules`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from tlkit._validation import check_bool, check_int, check_number, type_name
from tlkit.errors import ArgumentTypeError, ScheduleError

__all__ = ["Phase", "Schedule", "check_unfreeze", "from_config", "register", "with_epochs"]

_S = TypeVar("_S", bound="type[Schedule]")

#: Schedule classes :func:`from_config` may build, by class name (filled by :func:`register`).
_SCHEDULES: dict[str, type[Schedule]] = {}


@dataclass(frozen=True)
class Phase:
    """One stretch of training with a fixed set of trainable layer groups.

    Attributes
    ----------
    name
        ``"head"``, ``"finetune"``, ``"unfreeze-2"``, ``"full"``...
    epochs
        Epochs in the phase.
    unfrozen
        Number of backbone layer groups trained, counted from the top; ``0``
        trains the head alone (the backbone is frozen).
    lr_scale
        The phase's base learning rate, as a factor of the FineTuner's.
    """

    name: str
    epochs: int
    unfrozen: int
    lr_scale: float = 1.0

    @property
    def frozen(self) -> bool:
        """True when the backbone is entirely frozen in this phase."""
        return self.unfrozen == 0


def check_unfreeze(name: str, value: Any) -> int | str:
    """``value`` if it is ``"all"`` or an int >= 0 (a number of layer groups)."""
    if isinstance(value, str):
        if value == "all":
            return "all"
        raise ScheduleError(f"{name} must be an int >= 0 or 'all', got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(
            f"{name} must be an int >= 0 or 'all', got {value!r} ({type_name(value)})"
        )
    return check_int(name, value, minimum=0, error=ScheduleError)


class Schedule:
    """Base class: options shared by every schedule.

    Parameters
    ----------
    lr_decay : float, optional
        Discriminative rates: backbone group ``k`` from the top trains at
        ``base * lr_decay**k`` (``0 < lr_decay <= 1``). Default: one rate for all.
    lr_multipliers : mapping of str to float, optional
        Explicit factor per group name (``{"stage7": 0.5, "head": 1.0}``);
        overrides ``lr_decay`` for the groups it names. The classifier is
        ``"classifier"``.
    warmup : float
        Epochs of linear warm-up at the start of each phase (default 0).
    cosine : bool
        Cosine decay of the rate to zero over each phase (default True).
    train_bn : bool
        Train the BatchNormalization layers of unfrozen groups: batch
        statistics in training, moving statistics updated, scale and offset
        learned. Default False: they stay frozen in inference mode (Keras 3 does
        this for a non-trainable BatchNormalization layer), the advice of the
        Keras fine-tuning guides for small datasets, whose batches give noisy
        statistics.
    """

    kind: ClassVar[str] = "schedule"

    def __init__(
        self,
        *,
        lr_decay: float | None = None,
        lr_multipliers: Mapping[str, float] | None = None,
        warmup: float = 0.0,
        cosine: bool = True,
        train_bn: bool = False,
    ) -> None:
        self.lr_decay = check_number(
            "lr_decay", lr_decay, low=0.0, high=1.0, low_open=True, allow_none=True,
            error=ScheduleError,
        )  # fmt: skip
        if lr_multipliers is not None and not isinstance(lr_multipliers, Mapping):
            raise ArgumentTypeError(
                f"lr_multipliers must be a mapping of group name to factor, got "
                f"{lr_multipliers!r} ({type_name(lr_multipliers)})"
            )
        self.lr_multipliers = {
            str(k): check_number(f"lr_multipliers[{k!r}]", v, low=0.0, error=ScheduleError)
            for k, v in (lr_multipliers or {}).items()
        }
        self.warmup = check_number("warmup", warmup, low=0.0, error=ScheduleError)
        check_bool("cosine", cosine)
        check_bool("train_bn", train_bn)
        self.cosine = bool(cosine)
        self.train_bn = bool(train_bn)

    # -- expansion ----------------------------------------------------------------------------

    def phases(self, num_groups: int) -> list[Phase]:
        """The phases for a backbone with ``num_groups`` layer groups."""
        raise NotImplementedError

    @property
    def total_epochs(self) -> int:
        """Epochs over all phases (for any backbone)."""
        return sum(p.epochs for p in self.phases(num_groups=10**6))

    def group_rate(self, group: str, depth: int) -> float:
        """Factor of the phase rate for a group ``depth`` levels below the classifier.

        The classifier has depth 0, the top backbone group depth 1, and so on.
        """
        if group in self.lr_multipliers:
            return self.lr_multipliers[group]
        if self.lr_decay is None or depth == 0:
            return 1.0
        return self.lr_decay**depth

    def lr_at(self, phase: Phase, step: float, steps: int) -> float:
        """Factor of the phase's base rate after ``step`` of ``steps`` steps (for plots and tests)."""
        return float(rate_factor(step, steps, self.warmup_steps(steps, phase), self.cosine))

    def warmup_steps(self, steps_per_phase: int, phase: Phase) -> int:
        """Warm-up length in steps for a phase of ``steps_per_phase`` steps."""
        if phase.epochs == 0:
            return 0
        return min(steps_per_phase, round(self.warmup * steps_per_phase / phase.epochs))

    # -- serialisation ------------------------------------------------------------------------

    def _own_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """A JSON-compatible dict that :func:`from_config` turns back into an equal schedule."""
        return {
            "class_name": type(self).__name__,
            "config": {
                **self._own_config(),
                "lr_decay": self.lr_decay,
                "lr_multipliers": dict(self.lr_multipliers),
                "warmup": self.warmup,
                "cosine": self.cosine,
                "train_bn": self.train_bn,
            },
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Schedule:
        """Rebuild a schedule from :meth:`get_config` output (either form)."""
        if "class_name" in config:
            return from_config(config)
        return cls(**dict(config))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        cfg = self.get_config()["config"]
        defaults: dict[str, Any]
        defaults = {"lr_decay": None, "lr_multipliers": {}, "warmup": 0.0, "cosine": True}
        defaults["train_bn"] = False
        shown = [f"{k}={v!r}" for k, v in cfg.items() if k not in defaults or defaults[k] != v]
        return f"{type(self).__name__}({', '.join(shown)})"


def register(cls: _S) -> _S:
    """Let :func:`from_config` rebuild ``cls`` from its class name (a class decorator)."""
    _SCHEDULES[cls.__name__] = cls
    return cls


def from_config(config: Mapping[str, Any]) -> Schedule:
    """Rebuild any schedule from ``schedule.get_config()``.

    Examples
    --------
    >>> from_config({"class_name": "Frozen", "config": {"epochs": 3}})
    Frozen(epochs=3)
    """
    if not isinstance(config, Mapping):
        raise ArgumentTypeError(
            f"a schedule config is a dict {{'class_name': ..., 'config': {{...}}}}, got "
            f"{config!r} ({type_name(config)})"
        )
    if set(config) != {"class_name", "config"}:
        raise ScheduleError(
            f"a schedule config is {{'class_name': ..., 'config': {{...}}}}, got {config!r}"
        )
    name = config["class_name"]
    cls = _SCHEDULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ScheduleError(
            f"unknown schedule {config['class_name']!r}; known: {', '.join(sorted(_SCHEDULES))}"
        )
    if not isinstance(config["config"], Mapping):
        raise ScheduleError(f"schedule config must be a mapping, got {config['config']!r}")
    try:
        return cls(**dict(config["config"]))
    except TypeError as exc:  # unexpected keyword
        raise ScheduleError(f"bad {cls.__name__} config: {exc}") from None


def with_epochs(schedule: Schedule, epochs: int) -> Schedule:
    """A copy of a one-phase ``schedule`` (``Frozen``, ``FullTraining``) running ``epochs`` epochs."""
    cfg = schedule.get_config()
    if "epochs" not in cfg["config"] or "milestones" in cfg["config"]:
        raise ScheduleError(
            f"fit(epochs=...) only changes a one-phase schedule (Frozen, FullTraining); set the "
            f"epochs of {type(schedule).__name__} on the schedule itself"
        )
    cfg["config"]["epochs"] = epochs
    return from_config(cfg)


def rate_factor(step: Any, steps: Any, warmup: Any, cosine: bool) -> Any:
    """Warm-up then cosine (or flat) factor; works on floats and on tensors (keras.ops)."""
    from keras import ops

    step = ops.cast(step, "float32")
    steps = ops.maximum(ops.cast(steps, "float32"), 1.0)
    warmup = ops.cast(warmup, "float32")
    warm = ops.where(warmup > 0, ops.minimum(1.0, (step + 1.0) / ops.maximum(warmup, 1.0)), 1.0)
    if not cosine:
        return warm
    progress = ops.clip((step - warmup) / ops.maximum(steps - warmup, 1.0), 0.0, 1.0)
    return warm * 0.5 * (1.0 + ops.cos(math.pi * progress))
