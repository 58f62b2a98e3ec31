"""The contracts between tlkit's layers, as :class:`typing.Protocol` classes.

A lower layer states what it needs from an object that a higher layer (or your
own code) makes, without importing that layer:

- :class:`TrainedClassifier`: what :class:`~tlkit.compare.ModelComparator`
  reads from a trained object. :class:`~tlkit.finetune.FineTuner` implements
  it; so can your own training code.
- :class:`Augmenter`: what the input pipeline (:func:`tlkit.data.to_dataset`)
  calls to augment a batch. :class:`~tlkit.augment.AugmentationPipeline`
  implements it.

Both are ``runtime_checkable``: ``isinstance(obj, TrainedClassifier)`` checks
that the attributes exist (not their types).

Examples
--------
Any object with these five attributes can be compared, for instance the
result of a hand-written Keras training loop:

>>> from dataclasses import dataclass
>>> from tlkit.protocols import TrainedClassifier
>>> @dataclass
... class MyRun:
...     model: object
...     class_names: list
...     history: dict
...     train_time_s: float
...     tflite_path: str | None = None
>>> isinstance(MyRun(None, ["a", "b"], {}, 1.5), TrainedClassifier)
True
>>> isinstance(object(), TrainedClassifier)
False
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["Augmenter", "TrainedClassifier"]


@runtime_checkable
class TrainedClassifier(Protocol):
    """A trained image classifier, as :meth:`ModelComparator.add <tlkit.compare.ModelComparator.add>` reads it.

    Notes
    -----
    For compatibility, ``ModelComparator.add`` also accepts an object that has
    only ``model``; the missing attributes count as ``None``.
    """

    # Read-only members (properties), so that a plain attribute, a dataclass field or a
    # property all satisfy the protocol, and a narrower type (list[str]) fits a wider one.
    @property
    def model(self) -> keras.Model:
        """The trained ``keras.Model``.

        It takes a batch of ``float32`` RGB images with pixel values in [0, 255]
        (the model does its own preprocessing) and returns class probabilities,
        shape ``(batch, K)``.
        """
        ...

    @property
    def class_names(self) -> Sequence[str] | None:
        """Label ``i`` is ``class_names[i]``; checked against the comparator's."""
        ...

    @property
    def history(self) -> Mapping[str, Sequence[float]] | Any | None:
        """Per-epoch metrics (``{"loss": [...], "val_accuracy": [...]}`` or a Keras ``History``), drawn as learning curves; or ``None``."""
        ...

    @property
    def train_time_s(self) -> float | None:
        """Wall-clock training time in seconds (the report's cost column), or ``None``."""
        ...

    @property
    def tflite_path(self) -> str | os.PathLike[str] | None:
        """An exported ``.tflite`` file whose size is reported, or ``None``."""
        ...


@runtime_checkable
class Augmenter(Protocol):
    """Batch augmentation, as the input pipeline applies it.

    ``apply`` takes ``float32`` images of shape ``(B, H, W, 3)`` with pixel
    values in [0, 255] and returns augmented images in the same range. It must
    work inside ``tf.data`` (graph mode). With ``seed`` given as an int or a
    shape-``(2,)`` int tensor it must be stateless: the same seed and images
    give the same output.
    """

    seed: int | None

    @property
    def layers(self) -> Sequence[Any]:
        """The augmentation steps; an empty sequence means "no augmentation"."""
        ...

    @property
    def mixes_labels(self) -> bool:
        """Whether ``apply`` mixes labels (MixUp, CutMix): labels are then one-hot."""
        ...

    def clone(self) -> Augmenter:
        """A fresh copy with the same configuration (the pipeline owns its copy)."""
        ...

    def output_size(self, size: tuple[int, int]) -> tuple[int | None, int | None]:
        """The ``(height, width)`` of the output for inputs of ``size``."""
        ...

    def apply(self, images: Any, labels: Any = None, seed: Any = None) -> tuple[Any, Any]:
        """Augment one batch: ``(images, labels) -> (images, labels)``."""
        ...
