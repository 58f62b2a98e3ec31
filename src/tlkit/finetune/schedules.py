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
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from tlkit._validation import check_int, check_number, type_name
from tlkit.errors import ArgumentTypeError, ScheduleError
from tlkit.finetune._schedule_base import (
    Phase,
    Schedule,
    check_unfreeze,
    from_config,
    register,
)

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
        self.epochs = check_int("epochs", epochs, minimum=1, error=ScheduleError)

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
        self.head_epochs = check_int("head_epochs", head_epochs, minimum=0, error=ScheduleError)
        self.finetune_epochs = check_int(
            "finetune_epochs", finetune_epochs, minimum=0, error=ScheduleError
        )
        if self.head_epochs + self.finetune_epochs == 0:
            raise ScheduleError("head_epochs + finetune_epochs must be at least 1")
        self.unfreeze = check_unfreeze("unfreeze", unfreeze)
        if self.unfreeze == 0 and self.finetune_epochs:
            raise ScheduleError(
                "unfreeze must be >= 1 or 'all' (use Frozen to train the head only)"
            )
        self.lr_factor = check_number("lr_factor", lr_factor, low=0.0, error=ScheduleError)

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
                f"({type_name(milestones)})"
            )
        if not milestones:
            raise ScheduleError(
                f"milestones must be a non-empty mapping {{epoch: groups}}, got {milestones!r}"
            )
        parsed: dict[int, int | str] = {}
        for k, v in milestones.items():
            epoch = int(k) if isinstance(k, str) and k.isdigit() else k
            parsed[check_int("milestone epoch", epoch, minimum=0, error=ScheduleError)] = (
                check_unfreeze(f"milestones[{k!r}]", v)
            )
        if 0 not in parsed:
            raise ScheduleError(f"milestones must say what trains from epoch 0, got {milestones!r}")
        self.milestones = dict(sorted(parsed.items()))
        counts = [10**9 if v == "all" else int(v) for v in self.milestones.values()]
        if any(b <= a for a, b in itertools.pairwise(counts)):
            raise ScheduleError(
                f"milestones must unfreeze more groups each time, got {milestones!r}"
            )
        self.epochs = check_int("epochs", epochs, minimum=1, error=ScheduleError)
        if self.epochs <= max(self.milestones):
            raise ScheduleError(
                f"epochs ({epochs}) must be larger than the last milestone ({max(self.milestones)})"
            )
        self.lr_factor = check_number("lr_factor", lr_factor, low=0.0, error=ScheduleError)

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
        self.epochs = check_int("epochs", epochs, minimum=1, error=ScheduleError)

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
        raise ScheduleError(
            f"cannot read schedule {identifier!r}; write 'frozen:EPOCHS', "
            "'freeze_then_unfreeze:HEAD_EPOCHS,FINETUNE_EPOCHS,GROUPS' or 'full:EPOCHS'"
        )
    raise ArgumentTypeError(
        f"schedule must be a Schedule, a config dict or a string, got {identifier!r} "
        f"({type_name(identifier)})"
    )


def _parse_int(text: str, whole: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ScheduleError(f"cannot read {text!r} in schedule {whole!r} as a number") from None
