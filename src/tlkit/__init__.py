"""tlkit: transfer learning for image classification, done honestly.

``import tlkit`` is cheap: names that need TensorFlow are imported on first use.

Examples
--------
>>> from tlkit import DatasetSplitter
>>> DatasetSplitter(val=0.1, test=0.1, seed=0)
DatasetSplitter(val=0.1, test=0.1, seed=0, groups=None, on_conflict='error')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tlkit._version import __version__
from tlkit.data import DatasetSplitter, Sample, Split, SplitPart

# Public names that live in modules importing TensorFlow: loaded lazily.
_LAZY: dict[str, str] = {
    "AugmentationPipeline": "tlkit.augment",
    "FineTuner": "tlkit.finetune",
    "ModelComparator": "tlkit.compare",
    "schedules": "tlkit.finetune",
}

__all__ = ["DatasetSplitter", "Sample", "Split", "SplitPart", "__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see for the lazy names
    from tlkit.augment import AugmentationPipeline as AugmentationPipeline
    from tlkit.compare import ModelComparator as ModelComparator
    from tlkit.finetune import FineTuner as FineTuner
    from tlkit.finetune import schedules as schedules


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tlkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (``dir(tlkit)`` and tab completion show no helpers)."""
    return sorted(__all__)
