"""Layer-freezing schedules: which backbone groups train, for how long, at what rates.

A schedule is a plain, serialisable object that expands into a list of
:class:`Phase` objects for a backbone with a given number of layer groups
(:attr:`tlkit.backbones.Backbone.layer_groups`, ordered stem to head). Each
phase trains the new classification head plus the top ``unfrozen`` backbone
groups; everything below stays frozen. :class:`~tlkit.FineTuner` runs the
phases in order, recompiling between them.

Learning rates
--------------
Every phase has a base rate: the FineTuner's ``learning_rate`` times the
phase's ``lr_scale``. Within a phase the rate warms up linearly for
``warmup`` epochs and then follows a cosine decay to zero (``cosine=True``)
or stays flat. With ``lr_decay=d``, backbone group ``k`` counted from the top
(``k = 1`` is the group just below the head) trains at ``base * d**k``; the
head trains at ``base``. ``lr_multipliers={"stage6": 0.3}`` sets a group's
factor explicitly instead. Each group has its own optimizer (real per-group
steps, so Adam's normalisation does not undo the rates), and a group that
keeps training from one phase to the next keeps its optimizer state.

Examples
--------
>>> from tlkit import schedules
>>> s = schedules.FreezeThenUnfreeze(head_epochs=5, finetune_epochs=10, unfreeze=3, lr_decay=0.5)
>>> [(p.name, p.epochs, p.unfrozen, p.lr_scale) for p in s.phases(num_groups=9)]
[('head', 5, 0, 1.0), ('finetune', 10, 3, 0.1)]
>>> schedules.from_config(s.get_config()) == s
True

The module holds the machinery (:class:`Phase`, the :class:`Schedule` base class, configs
with :func:`from_config`, the per-step rate factor) and the four schedules built on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from tlkit._validation import check_bool, check_choice, check_int, check_number, type_name
from tlkit.errors import ArgumentTypeError, InvalidArgumentError, ScheduleError

__all__ = [
    "FreezeThenUnfreeze",
    "Frozen",
    "FullTraining",
    "GradualUnfreezing",
    "Phase",
    "Schedule",
    "from_config",
    "get",
]


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
        raise InvalidArgumentError(
            f"{name} must be an int >= 0 or 'all', got {value!r}", argument=name
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(
            f"{name} must be an int >= 0 or 'all', got {value!r} ({type_name(value)})",
            argument=name,
        )
    return check_int(name, value, minimum=0)


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
    head_start : {"random", "probe"}
        How the head starts. ``"random"`` (default): drawn at random, as Keras
        draws a new layer. ``"probe"``: set to a linear probe on the frozen
        features (a logistic regression on standardised features, class-balanced,
        its strength chosen on validation balanced accuracy; with
        ``pooling="auto"`` the probe that chose the features), the first step of
        LP-FT (Kumar et al. 2022). The first phase must train the head alone on
        a frozen backbone, the head must be linear (``head_units=None``) and the
        fit needs validation data. A head that has trained before (a second
        ``fit``, a loaded trained model) goes on from its weights. A fitted head
        is easily undone by a head rate meant for random weights: pair it with a
        lower ``learning_rate`` (the fine-tuning guide has the measurements).
    """

    kind: ClassVar[str] = "schedule"
    #: What ``head_start`` may be.
    HEAD_STARTS: ClassVar[tuple[str, ...]] = ("random", "probe")

    def __init__(
        self,
        *,
        lr_decay: float | None = None,
        lr_multipliers: Mapping[str, float] | None = None,
        warmup: float = 0.0,
        cosine: bool = True,
        train_bn: bool = False,
        head_start: str = "random",
    ) -> None:
        self.lr_decay = check_number(
            "lr_decay", lr_decay, low=0.0, high=1.0, low_open=True, allow_none=True
        )  # fmt: skip
        if lr_multipliers is not None and not isinstance(lr_multipliers, Mapping):
            raise ArgumentTypeError(
                f"lr_multipliers must be a mapping of group name to factor, got "
                f"{lr_multipliers!r} ({type_name(lr_multipliers)})",
                argument="lr_multipliers",
            )
        self.lr_multipliers = {
            str(k): check_number(f"lr_multipliers[{k!r}]", v, low=0.0)
            for k, v in (lr_multipliers or {}).items()
        }
        self.warmup = check_number("warmup", warmup, low=0.0)
        check_bool("cosine", cosine)
        check_bool("train_bn", train_bn)
        self.cosine = bool(cosine)
        self.train_bn = bool(train_bn)
        self.head_start = check_choice("head_start", head_start, self.HEAD_STARTS)

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
                "head_start": self.head_start,
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
        defaults.update(train_bn=False, head_start="random")
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
            f"{config!r} ({type_name(config)})",
            argument="config",
        )
    if set(config) != {"class_name", "config"}:
        raise InvalidArgumentError(
            f"a schedule config is {{'class_name': ..., 'config': {{...}}}}, got {config!r}",
            argument="config",
        )
    name = config["class_name"]
    cls = _SCHEDULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidArgumentError(
            f"unknown schedule {config['class_name']!r}; known: {', '.join(sorted(_SCHEDULES))}",
            argument="config",
        )
    if not isinstance(config["config"], Mapping):
        raise InvalidArgumentError(
            f"schedule config must be a mapping, got {config['config']!r}", argument="config"
        )
    try:
        return cls(**dict(config["config"]))
    except TypeError as exc:  # unexpected keyword
        raise InvalidArgumentError(f"bad {cls.__name__} config: {exc}", argument="config") from None


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


# -- the schedules -----------------------------------------------------------------------


@register
class Frozen(Schedule):
    """Train the new head only; the backbone stays frozen (a linear probe with extras).

    Parameters
    ----------
    epochs : int
        Epochs of head training (cheap with feature caching: the backbone runs once).
    **options
        See :class:`Schedule`.

    Examples
    --------
    >>> Frozen(20).phases(9)
    [Phase(name='head', epochs=20, unfrozen=0, lr_scale=1.0)]
    """

    def __init__(self, epochs: int = 20, **options: Any) -> None:
        super().__init__(**options)
        self.epochs = check_int("epochs", epochs, minimum=1)

    def phases(self, num_groups: int) -> list[Phase]:
        return [Phase("head", self.epochs, 0, 1.0)]

    def _own_config(self) -> dict[str, Any]:
        return {"epochs": self.epochs}


@register
class FreezeThenUnfreeze(Schedule):
    """Train the head on a frozen backbone, then unfreeze the top groups at a lower rate.

    The recipe of fastai's ``fine_tune`` and of the Keras transfer-learning
    guide: the new head first learns from fixed features (a fresh random head
    would otherwise send large gradients into the pretrained weights), then
    the top ``unfreeze`` groups train together with it at ``lr_factor`` times
    the rate.

    Parameters
    ----------
    head_epochs : int
        Epochs with the backbone frozen (0 skips the phase).
    finetune_epochs : int
        Epochs with the top groups unfrozen.
    unfreeze : int or "all"
        Backbone groups to unfreeze, counted from the top (the backbone's
        ``head`` group, then ``stage7``, ...).
    lr_factor : float
        Base rate of the second phase relative to the first.
    **options
        See :class:`Schedule` (``lr_decay``, ``lr_multipliers``, ``warmup``,
        ``cosine``, ``train_bn``).

    Examples
    --------
    >>> [p.unfrozen for p in FreezeThenUnfreeze(3, 4, unfreeze="all").phases(9)]
    [0, 9]
    """

    def __init__(
        self,
        head_epochs: int = 10,
        finetune_epochs: int = 10,
        unfreeze: int | str = 3,
        lr_factor: float = 0.1,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.head_epochs = check_int("head_epochs", head_epochs, minimum=0)
        self.finetune_epochs = check_int("finetune_epochs", finetune_epochs, minimum=0)
        if self.head_epochs + self.finetune_epochs == 0:
            raise InvalidArgumentError(
                "head_epochs + finetune_epochs must be at least 1", argument="head_epochs"
            )
        self.unfreeze = check_unfreeze("unfreeze", unfreeze)
        if self.unfreeze == 0 and self.finetune_epochs:
            raise InvalidArgumentError(
                "unfreeze must be >= 1 or 'all' (use Frozen to train the head only)",
                argument="unfreeze",
            )
        self.lr_factor = check_number("lr_factor", lr_factor, low=0.0)

    def phases(self, num_groups: int) -> list[Phase]:
        n = num_groups if self.unfreeze == "all" else min(int(self.unfreeze), num_groups)
        out = []
        if self.head_epochs:
            out.append(Phase("head", self.head_epochs, 0, 1.0))
        if self.finetune_epochs:
            out.append(Phase("finetune", self.finetune_epochs, n, self.lr_factor))
        return out

    def _own_config(self) -> dict[str, Any]:
        return {
            "head_epochs": self.head_epochs,
            "finetune_epochs": self.finetune_epochs,
            "unfreeze": self.unfreeze,
            "lr_factor": self.lr_factor,
        }


@register
class GradualUnfreezing(Schedule):
    """Unfreeze more groups at given epochs (ULMFiT's gradual unfreezing, Lightning's milestones).

    Parameters
    ----------
    milestones : mapping of int to int or "all"
        ``{epoch: groups unfrozen from that epoch on}``; must contain epoch 0
        and increase. ``{0: 0, 3: 2, 6: "all"}`` trains the head for 3 epochs,
        then the top 2 groups for 3, then everything.
    epochs : int
        Total epochs; must exceed the last milestone.
    lr_factor : float
        Each phase after the first trains at ``lr_factor`` times the rate of the
        one before it.
    **options
        See :class:`Schedule`.

    Examples
    --------
    >>> s = GradualUnfreezing({0: 0, 2: 1, 4: "all"}, epochs=6, lr_factor=0.5)
    >>> [(p.epochs, p.unfrozen, p.lr_scale) for p in s.phases(9)]
    [(2, 0, 1.0), (2, 1, 0.5), (2, 9, 0.25)]
    """

    def __init__(
        self,
        milestones: Mapping[int, int | str],
        epochs: int,
        lr_factor: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(milestones, Mapping):
            raise ArgumentTypeError(
                f"milestones must be a mapping {{epoch: groups}}, got {milestones!r} "
                f"({type_name(milestones)})",
                argument="milestones",
            )
        if not milestones:
            raise InvalidArgumentError(
                f"milestones must be a non-empty mapping {{epoch: groups}}, got {milestones!r}",
                argument="milestones",
            )
        parsed: dict[int, int | str] = {}
        for k, v in milestones.items():
            epoch = int(k) if isinstance(k, str) and k.isdigit() else k
            parsed[check_int("milestone epoch", epoch, minimum=0)] = check_unfreeze(
                f"milestones[{k!r}]", v
            )
        if 0 not in parsed:
            raise InvalidArgumentError(
                f"milestones must say what trains from epoch 0, got {milestones!r}",
                argument="milestones",
            )
        self.milestones = dict(sorted(parsed.items()))
        counts = [10**9 if v == "all" else int(v) for v in self.milestones.values()]
        if any(b <= a for a, b in itertools.pairwise(counts)):
            raise InvalidArgumentError(
                f"milestones must unfreeze more groups each time, got {milestones!r}",
                argument="milestones",
            )
        self.epochs = check_int("epochs", epochs, minimum=1)
        if self.epochs <= max(self.milestones):
            raise InvalidArgumentError(
                f"epochs ({epochs}) must be larger than the last milestone ({max(self.milestones)})",
                argument="epochs",
            )
        self.lr_factor = check_number("lr_factor", lr_factor, low=0.0)

    def phases(self, num_groups: int) -> list[Phase]:
        starts = list(self.milestones)
        out = []
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else self.epochs
            v = self.milestones[start]
            n = num_groups if v == "all" else min(int(v), num_groups)
            name = "head" if n == 0 else ("full" if n == num_groups else f"unfreeze-{n}")
            out.append(Phase(name, end - start, n, self.lr_factor**i))
        return out

    def _own_config(self) -> dict[str, Any]:
        return {
            "milestones": {str(k): v for k, v in self.milestones.items()},
            "epochs": self.epochs,
            "lr_factor": self.lr_factor,
        }


@register
class FullTraining(Schedule):
    """Train every layer from the first epoch: models from scratch, or full fine-tuning.

    Parameters
    ----------
    epochs : int
        Epochs.
    **options
        See :class:`Schedule`. For a network trained from scratch pass
        ``train_bn=True`` (:meth:`tlkit.FineTuner.scratch_cnn` does).

    Examples
    --------
    >>> FullTraining(30, train_bn=True).phases(5)
    [Phase(name='full', epochs=30, unfrozen=5, lr_scale=1.0)]
    """

    def __init__(self, epochs: int = 30, **options: Any) -> None:
        super().__init__(**options)
        self.epochs = check_int("epochs", epochs, minimum=1)

    def phases(self, num_groups: int) -> list[Phase]:
        return [Phase("full", self.epochs, num_groups, 1.0)]

    def _own_config(self) -> dict[str, Any]:
        return {"epochs": self.epochs}


def get(identifier: str | Schedule | Mapping[str, Any]) -> Schedule:
    """A schedule from an instance, a config dict, or a short string.

    Strings: ``"frozen:20"``, ``"freeze_then_unfreeze:5,10,3"`` (head epochs,
    finetune epochs, groups), ``"full:30"``.

    Examples
    --------
    >>> get("freeze_then_unfreeze:5,10,3")
    FreezeThenUnfreeze(head_epochs=5, finetune_epochs=10, unfreeze=3, lr_factor=0.1)
    """
    if isinstance(identifier, Schedule):
        return identifier
    if isinstance(identifier, Mapping):
        return from_config(identifier)
    if isinstance(identifier, str):
        name, _, args = identifier.partition(":")
        parts = [a.strip() for a in args.split(",") if a.strip()]
        values: list[Any] = [p if p == "all" else _parse_int(p, identifier) for p in parts]
        table: dict[str, type[Schedule]] = {
            "frozen": Frozen,
            "freeze_then_unfreeze": FreezeThenUnfreeze,
            "full": FullTraining,
        }
        if name in table:
            try:
                return table[name](*values)
            except TypeError:
                pass
        raise InvalidArgumentError(
            f"cannot read schedule {identifier!r}; write 'frozen:EPOCHS', "
            "'freeze_then_unfreeze:HEAD_EPOCHS,FINETUNE_EPOCHS,GROUPS' or 'full:EPOCHS'",
            argument="identifier",
        )
    raise ArgumentTypeError(
        f"schedule must be a Schedule, a config dict or a string, got {identifier!r} "
        f"({type_name(identifier)})",
        argument="identifier",
    )


def _parse_int(text: str, whole: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(
            f"cannot read {text!r} in schedule {whole!r} as a number", argument="identifier"
        ) from None
