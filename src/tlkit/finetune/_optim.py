"""Per-group optimizers: discriminative learning rates with real per-group steps.

Keras has one optimizer per model and no per-layer learning rates. Scaling
gradients instead is wrong under Adam (its update divides the scale away), so
:class:`GroupOptimizer` holds one optimizer per layer group and routes each
variable's gradient to its group's optimizer. Each group's optimizer keeps its
own moments and step count, so a group that trains through several phases
keeps its state while a newly unfrozen group starts fresh.

Everything here uses Keras's public optimizer API: ``build``, ``apply``,
``variables``, ``iterations`` and ``LearningRateSchedule``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tlkit.finetune.schedules import rate_factor

__all__ = ["GroupOptimizer", "PhaseRate", "make_optimizer"]


class PhaseRate(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up plus cosine decay within one phase, re-aimed at each phase without retracing.

    The rate is ``peak * factor(step - start)``; ``peak``, ``start``,
    ``warmup`` and ``steps`` are variables, so a new phase only assigns new
    values (:meth:`set_phase`) and the compiled training step stays valid.
    """

    def __init__(self, cosine: bool = True) -> None:
        self.cosine = cosine
        self.peak = keras.Variable(0.0, trainable=False, name="peak_lr")
        self.start = keras.Variable(0.0, trainable=False, name="phase_start")
        self.warmup = keras.Variable(0.0, trainable=False, name="warmup_steps")
        self.steps = keras.Variable(1.0, trainable=False, name="phase_steps")

    def set_phase(self, peak: float, start: int, warmup: int, steps: int) -> None:
        self.peak.assign(float(peak))
        self.start.assign(float(start))
        self.warmup.assign(float(warmup))
        self.steps.assign(float(max(steps, 1)))

    def __call__(self, step: Any) -> Any:
        from keras import ops

        local = ops.cast(step, "float32") - self.start
        return self.peak * rate_factor(local, self.steps, self.warmup, self.cosine)

    def get_config(self) -> dict[str, Any]:
        return {"cosine": self.cosine}


def make_optimizer(name: str | keras.optimizers.Optimizer, rate: PhaseRate) -> Any:
    """A fresh optimizer of kind ``name`` driven by ``rate``."""
    if isinstance(name, keras.optimizers.Optimizer):
        # A user's optimizer is a template: one copy per group, same hyperparameters.
        config = name.get_config()
        config["learning_rate"] = rate
        return type(name).from_config(config)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=0.01)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(learning_rate=rate)


class GroupOptimizer(keras.optimizers.Optimizer):
    """Route each variable's gradient to the optimizer of its layer group.

    Parameters
    ----------
    groups : sequence of (name, optimizer, variables)
        One entry per trainable group. A variable must be in exactly one group.
    """

    def __init__(self, groups: Sequence[tuple[str, Any, Sequence[Any]]], name: str = "groups"):
        super().__init__(learning_rate=0.0, name=name)
        self.groups = [(g, opt, list(vs)) for g, opt, vs in groups]
        self._route: dict[int, int] = {}
        for i, (_gname, _, variables) in enumerate(self.groups):
            for v in variables:
                if id(v) in self._route:
                    raise ValueError(f"variable {v.path} is in two groups")
                self._route[id(v)] = i

    def build(self, variables: Sequence[Any]) -> None:
        super().build(variables)
        missing = [v.path for v in variables if id(v) not in self._route]
        if missing:
            raise ValueError(f"trainable variables without a group: {missing[:5]}")
        for _, opt, vs in self.groups:
            if not opt.built:
                opt.build(vs)

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        per_group: list[tuple[list[Any], list[Any]]] = [([], []) for _ in self.groups]
        for g, v in zip(grads, trainable_variables, strict=False):
            gs, vs = per_group[self._route[id(v)]]
            gs.append(g)
            vs.append(v)
        for (_, opt, _), (gs, vs) in zip(self.groups, per_group, strict=False):
            if vs:
                opt.apply(gs, vs)
        self._iterations.assign_add(1)

    def rates(self) -> dict[str, float]:
        """Current learning rate of each group (for logs)."""
        return {g: float(np.asarray(opt.learning_rate)) for g, opt, _ in self.groups}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "groups": [g for g, _, _ in self.groups]}
