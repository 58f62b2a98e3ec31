"""What FineTuner does with its model once built: predict, evaluate, save, load, lr_find."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from tlkit._validation import check_int
from tlkit.data import SplitPart
from tlkit.errors import ScheduleError
from tlkit.finetune._predictions import Predictions, as_pixels, batches
from tlkit.metrics import classification_metrics

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from tlkit.finetune._tuner import FineTuner

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
    #: The temperature :meth:`calibrate` fitted (None: the model's own probabilities).
    temperature: float | None = None

    if TYPE_CHECKING:  # pragma: no cover - provided by FineTuner

        @property
        def model(self) -> keras.Model: ...

        def is_chief(self) -> bool: ...

        def log(self, message: str) -> None: ...

    def _known_class_names(self) -> list[str]:
        """``class_names`` where they must be known (given to FineTuner, or set by fit or load)."""
        if self.class_names is None:
            raise ScheduleError(
                "the number of classes is not known yet: pass class_names= or num_classes= to "
                "FineTuner, or fit on a SplitPart (split.train), which knows its classes"
            )
        return self.class_names

    def _pixels(self, data: Any, batch_size: int | None = None) -> tuple[Any, np.ndarray | None]:
        return as_pixels(data, self.image_size, batch_size or self.batch_size)

    def _probabilities(self, ds: Any, tta: Any, *, calibrated: bool = True) -> np.ndarray:
        """The model's probabilities (mean over ``tta`` views), then the temperature if any."""
        views = tta_views(tta)
        if views is None:
            probs = [np.asarray(self.model.predict_on_batch(x)) for x in batches(ds)]
        else:
            probs = [views.average(self.model.predict_on_batch, x) for x in batches(ds)]
        k = len(self.class_names or [])
        out = np.concatenate(probs) if probs else np.zeros((0, k))
        if calibrated and self.temperature is not None:
            from tlkit._calibration import apply_temperature

            out = apply_temperature(out, self.temperature)
        return out

    def predict(self, data: Any, batch_size: int | None = None, *, tta: Any = None) -> Predictions:
        """Class names and probabilities for images.

        ``data``: an array ``(n, h, w, 3)`` of raw RGB in [0, 255] (resized to
        ``image_size`` if needed), a ``SplitPart``, a ``tf.data.Dataset`` of
        ``(images, labels)`` batches, image file paths, or a folder.

        ``tta``: test-time augmentation, a :class:`~tlkit.augment.Views` or a
        view-set name (``"flip"``, ``"dihedral"``, ``"crops"``): the
        probabilities are the mean over the views of each image (one forward
        pass per view). None (default): the plain model.

        After :meth:`calibrate`, the probabilities are temperature-scaled
        (``softmax(log(p) / T)``, after the mean over the views); the predicted
        classes do not change.

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
        return Predictions(self._probabilities(ds, tta), self._known_class_names())

    def evaluate(
        self, data: Any, batch_size: int | None = None, *, tta: Any = None
    ) -> dict[str, float]:
        """Loss, accuracy, balanced accuracy and macro-F1 on labelled data.

        ``tta`` as in :meth:`predict`: the metrics of the view-averaged probabilities.
        Each is defined in ``tlkit.metrics.classification_metrics`` (a split
        holding a single class included).
        After :meth:`calibrate` the loss is that of the temperature-scaled probabilities.
        """
        ds, labels = self._pixels(data, batch_size)
        if labels is None:
            raise ScheduleError("evaluate needs labels: pass a SplitPart or a dataset of pairs")
        probs = self._probabilities(ds, tta)
        return classification_metrics(np.asarray(labels), probs, len(self._known_class_names()))

    def calibrate(self, val: Any, *, batch_size: int | None = None) -> float:
        """Fit a temperature on labelled validation data so that the probabilities can be trusted.

        Temperature scaling (Guo et al. 2017): one number ``T > 0`` divides the
        log-probabilities, ``p' = softmax(log(p) / T)``, chosen to minimise the
        negative log-likelihood of ``val``'s labels
        (:func:`scipy.optimize.minimize_scalar` over ``log T`` in
        ``[log 0.01, log 100]``). ``T > 1`` softens an over-confident model,
        ``T < 1`` sharpens an under-confident one; the predicted classes, hence
        accuracy, do not change. From then on :meth:`predict` and
        :meth:`evaluate` (with or without ``tta``) and
        :class:`~tlkit.compare.ModelComparator` use the scaled probabilities;
        :meth:`save` keeps ``T`` in the file; :func:`tlkit.export.export` writes
        the plain network and says that ``T`` is not applied inside it. A new
        :meth:`fit` discards ``T``.

        The negative log-likelihood and expected calibration error on ``val``
        before and after are logged (``tlkit.finetune`` logger, and stderr
        unless ``verbose=0``).

        Parameters
        ----------
        val : SplitPart or tf.data.Dataset
            Labelled data the model was not trained on, in the model's classes:
            ``split.val``, or batches of ``(images, labels)``. Not the test
            set, which must stay unseen to judge the calibrated model.
        batch_size : int, optional
            Images per batch when predicting (default: the FineTuner's).

        Returns
        -------
        float
            The temperature, also kept in :attr:`temperature`.

        Raises
        ------
        tlkit.errors.ScheduleError
            The FineTuner was never trained (call :meth:`fit` first, or
            :meth:`load` a saved model), or ``val`` has no labels, no images,
            or other classes than the model.

        Examples
        --------
        >>> import tempfile
        >>> from tlkit import DatasetSplitter, FineTuner
        >>> from tlkit.datasets import make_synthetic_dataset
        >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 12, "b": 12}, image_size=32)
        >>> split = DatasetSplitter(seed=0, progress=False).split(root)
        >>> tuner = FineTuner.scratch_cnn(class_names=split.class_names, image_size=32, epochs=1,
        ...                               widths=(8,), seed=0, verbose=0)
        >>> _ = tuner.fit(split.train, split.val)
        >>> t = tuner.calibrate(split.val)
        >>> tuner.temperature == t and 0.01 <= t <= 100
        True
        """
        from tlkit._calibration import (
            MAX_TEMPERATURE,
            MIN_TEMPERATURE,
            apply_temperature,
            fit_temperature,
            negative_log_likelihood,
            reliability_bins,
        )
        from tlkit.finetune._data import as_data

        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
        if not self._is_trained():
            raise ScheduleError(
                "calibrate needs a trained model: call fit(train, val) first (or FineTuner.load "
                "a saved one); a temperature fitted to an untrained model's outputs means nothing"
            )
        if not isinstance(val, SplitPart) and not hasattr(val, "element_spec"):
            raise ScheduleError(
                "calibrate(val): val must be labelled data, a SplitPart (split.val) or a "
                "tf.data.Dataset of (images, labels) batches; images alone (an array, files, a "
                "folder) carry no labels to fit a temperature on"
            )
        data = as_data(val, "val")  # refuses an empty part, a dataset without labels
        k = len(self.class_names or [])
        if data.part is not None and list(data.part.class_names) != list(self.class_names or []):
            raise ScheduleError(
                f"calibrate(val): val has classes {list(data.part.class_names)} but the model "
                f"was trained on {self.class_names}"
            )
        if not data.is_part:
            label_shape = data.dataset.element_spec[1].shape
            if label_shape.rank == 2 and label_shape[-1] not in (None, 1, k):
                raise ScheduleError(
                    f"calibrate(val): val's one-hot labels have {label_shape[-1]} classes but the "
                    f"model has {k} ({self.class_names})"
                )
        ds, labels = self._pixels(val, batch_size)
        y = np.asarray(labels, dtype=np.int64).ravel()
        if y.size == 0:
            raise ScheduleError("calibrate(val): val holds no images")
        if y.min() < 0 or y.max() >= k:
            bad = int(y.max()) if y.max() >= k else int(y.min())
            raise ScheduleError(
                f"calibrate(val): val holds label {bad} but the model has {k} classes "
                f"(0 .. {k - 1}: {self.class_names})"
            )
        probs = self._probabilities(ds, None, calibrated=False)
        if len(probs) != y.size:
            raise ScheduleError(
                f"calibrate(val): val yields {len(probs)} images but {y.size} labels"
            )
        t = fit_temperature(y, probs)
        before = (negative_log_likelihood(y, probs), reliability_bins(y, probs).ece)
        self.temperature = t
        scaled = apply_temperature(probs, t)
        after = (negative_log_likelihood(y, scaled), reliability_bins(y, scaled).ece)
        edge = (
            f" (at the bound of [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}])"
            if t <= MIN_TEMPERATURE * 1.0001 or t >= MAX_TEMPERATURE * 0.9999
            else ""
        )
        self.log(
            f"tlkit: calibrated on {y.size} validation images: temperature T={t:.4g}{edge}; "
            f"NLL {before[0]:.4f} -> {after[0]:.4f}, ECE {before[1]:.4f} -> {after[1]:.4f}"
        )
        return t

    def _is_trained(self) -> bool:
        """Whether :meth:`fit` ran or the model was loaded from a file."""
        return getattr(self, "history", None) is not None or bool(getattr(self, "_loaded", False))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.keras`` file carrying the classes, backbone, image size and schedule.

        The file also carries the :attr:`temperature` of :meth:`calibrate`, if any;
        :meth:`load` restores it.

        Under a multi-worker strategy only the chief writes (:meth:`is_chief`);
        the other workers write nothing and return the same path.
        """
        from tlkit.finetune._io import save_tuner

        if not self.is_chief():
            self.log(f"tlkit: not the chief worker: {path} is written by the chief")
            return Path(path)
        return save_tuner(cast("FineTuner", self), Path(path))

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike[str]) -> _T:
        """Load a file written by :meth:`save` (Keras safe mode on)."""
        from tlkit.finetune._io import load_tuner

        return cast(_T, load_tuner(cast("type[FineTuner]", cls), Path(path)))

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

        return lr_find(cast("FineTuner", self), train, min_lr=min_lr, max_lr=max_lr, steps=steps)
