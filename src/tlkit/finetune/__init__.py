"""Fine-tuning: :class:`FineTuner` and its layer-freezing :mod:`~tlkit.finetune.schedules`.

Examples
--------
>>> from tlkit.finetune import FineTuner, schedules
>>> FineTuner("efficientnet_lite0", class_names=["ok", "crack", "dark"])  # doctest: +ELLIPSIS
FineTuner('efficientnet_lite0', classes=3, image_size=(224, 224), schedule=FreezeThenUnfreeze(...))
"""

from __future__ import annotations

from tlkit.finetune import schedules
from tlkit.finetune._callbacks import TrainingHistory
from tlkit.finetune._lr_find import LRFinderResult
from tlkit.finetune._pooling import PoolingChoice, choose_pooling
from tlkit.finetune._tuner import FineTuner, Predictions, default_schedule

__all__ = [
    "FineTuner",
    "LRFinderResult",
    "PoolingChoice",
    "Predictions",
    "TrainingHistory",
    "choose_pooling",
    "default_schedule",
    "schedules",
]
