"""Augmentation: Keras 3 image augmentation layers as a seeded, serialisable pipeline.

Importing this package imports TensorFlow and Keras.
"""

from tlkit.augment._pipeline import PRESETS, AugmentationPipeline
from tlkit.augment._views import VIEW_SETS, VIEWS, Views

__all__ = ["PRESETS", "VIEWS", "VIEW_SETS", "AugmentationPipeline", "Views"]
