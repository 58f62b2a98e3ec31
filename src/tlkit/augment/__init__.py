"""Augmentation: Keras 3 image augmentation layers as a seeded, serialisable pipeline.

Importing this package imports TensorFlow and Keras.
"""

from tlkit.augment._pipeline import AugmentationPipeline
from tlkit.augment._presets import PRESETS

__all__ = ["PRESETS", "AugmentationPipeline"]
