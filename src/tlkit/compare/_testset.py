"""The test set ModelComparator reads, and how a model is run on it.

:class:`TestSet` holds the test data in any of its forms (a tf.data.Dataset, a
SplitPart, (images, labels) arrays or labels alone); :func:`predict` is the one
prediction pass of a model over it, and :func:`as_probabilities` reads the model's
outputs as probabilities.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from tlkit._keras_model import input_image_size
from tlkit.compare._gallery import ImageFiles
from tlkit.compare._inputs import PROB_ATOL, check_labels
from tlkit.data import without_autotune_thread
from tlkit.errors import ArgumentTypeError, ComparisonError

__all__ = ["TestSet", "as_probabilities", "classify_test_data", "predict"]


def classify_test_data(data: Any) -> tuple[str, Any, np.ndarray | None]:
    """Return (kind, data, labels or None) for the accepted test-data forms."""
    if hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator"):
        import tensorflow as tf

        if int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ComparisonError(
                "test_data is an infinite dataset (.repeat()?); pass a finite one"
            )
        return "dataset", data, None
    if hasattr(data, "to_dataset") and hasattr(data, "labels"):
        return "part", data, np.asarray(data.labels)
    if isinstance(data, tuple) and len(data) == 2 and np.ndim(data[0]) == 4:
        x, y = data
        if len(x) != len(y):
            raise ComparisonError(
                f"test_data (images, labels) have {len(x)} images but {len(y)} labels"
            )
        return "arrays", (x, y), np.asarray(y)
    if isinstance(data, (str, bytes, os.PathLike)):
        raise ArgumentTypeError(
            "test_data must be a tf.data.Dataset, a SplitPart, (images, labels) arrays or an "
            f"array of labels, got the path {data!r}; load it first, e.g. split.test"
        )
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            "test_data must be a tf.data.Dataset, a SplitPart, (images, labels) arrays or an "
            f"array of labels, got {type(data).__name__}"
        ) from exc
    if arr.dtype == object or arr.ndim not in (1, 2):
        raise ArgumentTypeError(
            "test_data must be a tf.data.Dataset, a SplitPart, (images, labels) arrays or a "
            f"1-D array of labels, got {type(data).__name__} of shape {arr.shape}"
        )
    return "labels", None, arr


class TestSet:
    """One test set, read in batches in a fixed order, at the image size each model needs.

    ``kind`` is ``"dataset"``, ``"part"``, ``"arrays"`` or ``"labels"``. Set
    :attr:`class_names` before reading labels: they are checked against them.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, data: Any, *, batch_size: int = 32) -> None:
        self.kind, self.data, self._y_true = classify_test_data(data)
        self.batch_size = batch_size
        self.class_names: tuple[str, ...] = ()
        self._datasets: dict[tuple[int, int], Any] = {}

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.class_names)

    def set_class_names(self, names: Sequence[str]) -> None:
        """Fix the class names and check the labels known so far against them."""
        self.class_names = tuple(names)
        if self._y_true is not None:
            self._y_true = check_labels(self._y_true, "test_data labels", self.class_names)

    @property
    def y_true(self) -> np.ndarray:
        """Test labels in test-set order (read from the data on first use)."""
        if self._y_true is None:
            labels = [y for _, y in self.batches(None, labels_only=True)]
            self._y_true = check_labels(
                np.concatenate(labels) if labels else np.zeros(0, np.int64),
                "test_data labels",
                self.class_names,
            )
        return self._y_true

    def predict_in_order(
        self, call: str, model: Any, size: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Predict the test set; check its labels come in the order of the first pass.

        Returns the raw outputs, sample images and the seconds spent in the model.
        """
        raw, labels, sample, seconds = predict(model, self.batches(size))
        labels = check_labels(labels, "test_data labels", self.class_names)
        if self._y_true is None:
            self._y_true = labels
        elif not np.array_equal(labels, self._y_true):
            raise ComparisonError(
                f"{call}: test_data yielded its labels in a different order than on "
                "the first pass (is it shuffled, e.g. .shuffle() with "
                "reshuffle_each_iteration=True?); predictions would not line up with the labels. "
                "Pass a test set in a fixed order."
            )
        return raw, sample, seconds

    def image_files(self) -> ImageFiles | None:
        """The test images' files in test-set order (a SplitPart's), else ``None``."""
        return ImageFiles.of(self.data) if self.kind == "part" else None

    @property
    def has_images(self) -> bool:
        """Whether models can predict on it (``False`` for labels only)."""
        return self.kind != "labels"

    def image_size(
        self, name: str, model: Any, image_size: int | tuple[int, int] | None
    ) -> tuple[int, int] | None:
        """The size to load a SplitPart's images at for ``model`` (``None`` for other data)."""
        if self.kind != "part":
            return None
        if image_size is not None:
            if isinstance(image_size, (int, np.integer)):
                return int(image_size), int(image_size)
            h, w = image_size
            return int(h), int(w)
        return input_image_size(
            model,
            ComparisonError,
            what=f"model {name!r}",
            hint=": pass image_size=(height, width) to add()",
        )

    def dataset(self, size: tuple[int, int] | None) -> Any:
        """The ``tf.data.Dataset`` of batches (a SplitPart's is made once per size)."""
        if self.kind == "dataset":
            ds = self.data
            spec = ds.element_spec
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise ComparisonError(
                    "test_data must yield (images, labels) pairs; it yields "
                    f"{type(spec).__name__} elements"
                )
            if spec[0].shape.rank == 3:  # unbatched images
                ds = ds.batch(self.batch_size)
            # Deleting an iterator can wait for tf.data's autotuning thread, idle time
            # the prediction-time cost column would count (benchmarks/iterator_teardown.py).
            return without_autotune_thread(ds)
        key = size or (0, 0)
        if key not in self._datasets:
            self._datasets[key] = self.data.to_dataset(
                image_size=size, batch_size=self.batch_size, shuffle=False
            )
        return self._datasets[key]

    def batches(
        self, size: tuple[int, int] | None, *, labels_only: bool = False
    ) -> Iterator[tuple[Any, np.ndarray]]:
        """Yield ``(images, labels)`` batches in test-set order (images ``None`` if labels only)."""
        if self.kind == "arrays":
            x, y = self.data
            for i in range(0, len(y), self.batch_size):
                yield x[i : i + self.batch_size], self.batch_labels(y[i : i + self.batch_size])
            return
        ds = self.dataset(size)
        if labels_only:
            ds = ds.map(lambda *e: e[1])
            for y in ds.as_numpy_iterator():
                yield None, self.batch_labels(y)
            return
        for element in ds.as_numpy_iterator():
            yield element[0], self.batch_labels(element[1])

    def batch_labels(self, y: Any) -> np.ndarray:
        """One batch of labels as class indices (one-hot rows and ``(n, 1)`` columns read)."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        elif y.ndim == 2:
            if y.shape[1] != self.num_classes:
                raise ComparisonError(
                    f"test_data yields label batches of shape {y.shape}: one-hot labels need "
                    f"{self.num_classes} columns, one per class name"
                )
            y = np.argmax(y, axis=1)
        elif y.ndim == 0:
            y = y.reshape(1)
        return y


def predict(
    model: Any, batches: Iterable[tuple[Any, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Run ``model.predict_on_batch`` over the batches.

    Returns the raw outputs, the labels, up to 32 sample images (for latency
    measurement) and the seconds spent in the model.
    """
    outputs, labels = [], []
    sample: list[np.ndarray] = []
    seconds = 0.0
    for x, y in batches:
        x = np.asarray(x)
        if len(sample) < 32:
            sample.extend(x[: 32 - len(sample)])
        t0 = time.perf_counter()
        out = model.predict_on_batch(x)
        seconds += time.perf_counter() - t0
        if isinstance(out, (list, tuple, dict)):
            raise ComparisonError("the model has several outputs; compare models with one output")
        outputs.append(np.asarray(out))
        labels.append(y)
    if not outputs:
        raise ComparisonError("test_data holds no examples")
    return np.concatenate(outputs), np.concatenate(labels), np.stack(sample), seconds


def as_probabilities(name: str, raw: np.ndarray, k: int) -> tuple[np.ndarray, str]:
    """Read a model's outputs as probabilities; say how they were read."""
    out = np.asarray(raw, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim == 1:
        if k != 2:
            raise ComparisonError(
                f"model {name!r} has one output unit but there are {k} classes; it needs {k}"
            )
        if np.all((out >= 0) & (out <= 1)):
            return np.stack([1 - out, out], axis=1), "sigmoid probability of class 1"
        p = expit(out)
        return np.stack([1 - p, p], axis=1), "one logit (sigmoid applied)"
    if out.ndim != 2 or out.shape[1] != k:
        raise ComparisonError(
            f"model {name!r} outputs shape (batch, {', '.join(map(str, raw.shape[1:]))}), "
            f"expected (batch, {k}): one value per class"
        )
    if not np.all(np.isfinite(out)):
        raise ComparisonError(f"model {name!r} outputs NaN or infinite values")
    if np.all((out >= -1e-6) & (out <= 1 + 1e-6)) and np.allclose(
        out.sum(axis=1), 1, atol=PROB_ATOL
    ):
        out = np.clip(out, 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True), "probabilities"
    return softmax(out, axis=1), "logits (softmax applied)"
