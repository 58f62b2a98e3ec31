"""Where FineTuner computes: a ``tf.distribute`` strategy's scope, the chief worker, mixed precision."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tlkit.backbones import Backbone
from tlkit.errors import ScheduleError

__all__ = ["check_backbone_scope", "is_chief", "precision", "strategy_scope"]


def strategy_scope(strategy: Any) -> Any:
    """``strategy.scope()``, or a context that does nothing without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def is_chief(strategy: Any) -> bool:
    """Whether this process writes files: True without a strategy or on the chief worker."""
    if strategy is None:
        return True
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def check_backbone_scope(strategy: Any, backbone: Backbone | None) -> None:
    """Refuse a backbone built outside ``strategy.scope()`` (its variables would not be mirrored)."""
    if strategy is None or backbone is None:
        return
    weights = backbone.model.weights
    if weights and not strategy.extended.variable_created_in_scope(
        getattr(weights[0], "value", weights[0])
    ):
        raise ScheduleError(
            f"the backbone {backbone.name!r} was built outside strategy.scope(): "
            "build it inside `with strategy.scope():` or pass its registry name to FineTuner"
        )


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Keras's global dtype policy set to mixed float16 (GPU) or bfloat16 (CPU/TPU) meanwhile."""
    if not mixed:
        yield
        return
    import keras
    import tensorflow as tf

    before = keras.config.dtype_policy()
    gpu = bool(tf.config.list_logical_devices("GPU"))
    keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
