"""What FineTuner does with its model once built: predict, evaluate, save, load, lr_find."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tlkit.data import SplitPart
from tlkit.errors import ScheduleError
from tlkit.finetune._predictions import Predictions, as_pixels, batches
from tlkit.metrics import classification_metrics

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["ModelUse", "tta_views"]


def tta_views(tta: Any) -> Any:
    """``tta`` as a :class:`~tlkit.augment.Views` (see :meth:`~tlkit.augment.Views.coerce`)."""
    if tta is None:
        return None
    from tlkit.augment import Views

    return Views.coerce(tta)


_T = TypeVar("_T", bound="ModelUse")


class ModelUse:
    """Mixin of :class:`~tlkit.finetune.FineTuner`: the methods that use the built model.

    They read ``model``, ``class_names``, ``image_size`` and ``batch_size``,
    which FineTuner provides.
    """

    class_names: list[str] | None
    image_size: tuple[int, int]
    batch_size: int

    if TYPE_CHECKING:  # pragma: no cover - provided by FineTuner

        @property
        def model(self) -> keras.Model: ...

        def is_chief(self) -> bool: ...

        def log(self, message: str) -> None: ...

    def _pixels(self, data: Any, batch_size: int | None = None) -> tuple[Any, np.ndarray | None]:
        return as_pixels(data, self.image_size, batch_size or self.batch_size)

    def _probabilities(self, ds: Any, tta: Any) -> np.ndarray:
        views = tta_views(tta)
        if views is None:
            probs = [np.asarray(self.model.predict_on_batch(x)) for x in batches(ds)]
        else:
            from tlkit.augment._views import average_over_views

            predict = self.model.predict_on_batch
            probs = [average_over_views(predict, x, views) for x in batches(ds)]
        k = len(self.class_names or [])
        return np.concatenate(probs) if probs else np.zeros((0, k))

    def predict(self, data: Any, batch_size: int | None = None, *, tta: Any = None) -> Predictions:
        """Class names and probabilities for images.

        ``data``: an array ``(n, h, w, 3)`` of raw RGB in [0, 255] (resized to
        ``image_size`` if needed), a ``SplitPart``, a ``tf.data.Dataset`` of
        ``(images, labels)`` batches, image file paths, or a folder.

        ``tta``: test-time augmentation, a :class:`~tlkit.augment.Views` or a
        view-set name (``"flip"``, ``"dihedral"``, ``"crops"``): the
        probabilities are the mean over the views of each image (one forward
        pass per view). None (default): the plain model.

        Examples
        --------
        Fit a tiny CNN on a generated dataset, then predict (seconds on a CPU):

        >>> import tempfile
        >>> from tlkit import DatasetSplitter, FineTuner
        >>> from tlkit.datasets import make_synthetic_dataset
        >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 12, "b": 12}, image_size=32)
        >>> split = DatasetSplitter(seed=0, progress=False).split(root)
        >>> tuner = FineTuner.scratch_cnn(class_names=split.class_names, image_size=32, epochs=2,
        ...                               widths=(8,), seed=0, verbose=0)
        >>> tuner.fit(split.train, split.val).phases
        ['full', 'full']
        >>> tuner.predict(split.test).probabilities.shape == (len(split.test), 2)
        True
        """
        ds, _ = self._pixels(data, batch_size)
        return Predictions(self._probabilities(ds, tta), self.class_names)

    def evaluate(
        self, data: Any, batch_size: int | None = None, *, tta: Any = None
    ) -> dict[str, float]:
        """Loss, accuracy, balanced accuracy and macro-F1 on labelled data.

        ``tta`` as in :meth:`predict`: the metrics of the view-averaged probabilities.
        Each is defined in ``tlkit.metrics.classification_metrics`` (a split
        holding a single class included).
        """
        ds, labels = self._pixels(data, batch_size)
        if labels is None:
            raise ScheduleError("evaluate needs labels: pass a SplitPart or a dataset of pairs")
        probs = self._probabilities(ds, tta)
        return classification_metrics(np.asarray(labels), probs, len(self.class_names))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.keras`` file carrying the classes, backbone, image size and schedule.

        Under a multi-worker strategy only the chief writes (:meth:`is_chief`);
        the other workers write nothing and return the same path.
        """
        from tlkit.finetune._io import save_tuner

        if not self.is_chief():
            self.log(f"tlkit: not the chief worker: {path} is written by the chief")
            return Path(path)
        return save_tuner(self, Path(path))

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike[str]) -> _T:
        """Load a file written by :meth:`save` (Keras safe mode on)."""
        from tlkit.finetune._io import load_tuner

        return load_tuner(cls, Path(path))

    def lr_find(
        self,
        train: SplitPart | Any,
        min_lr: float = 1e-7,
        max_lr: float = 10.0,
        steps: int = 100,
    ) -> Any:
        """Learning-rate range test on the first phase; returns the curve and a suggestion.

        The weights are restored afterwards. See :class:`tlkit.finetune.LRFinderResult`.
        """
        from tlkit.finetune._lr_find import lr_find

        return lr_find(self, train, min_lr=min_lr, max_lr=max_lr, steps=steps)
