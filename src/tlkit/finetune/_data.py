"""Turn what a user passes to ``fit``/``predict`` into tf.data pipelines FineTuner can use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._files import check_file
from tlkit._validation import MIN_IMAGE_SIZE, type_name
from tlkit.data import Sample, SplitPart, without_autotune_thread
from tlkit.errors import ArgumentTypeError, ScheduleError

__all__ = [
    "Data",
    "as_data",
    "as_pixels",
    "batches",
    "fit_classes",
    "fit_image_size",
    "image_bytes",
    "paths_part",
    "tta_views",
]


@dataclass
class Data:
    """Training or validation data in one of two forms.

    ``part`` is set for a :class:`~tlkit.data.SplitPart`: tlkit builds the
    pipeline itself. ``dataset`` is set for a user's ``tf.data.Dataset`` of
    ``(images, labels)`` batches, used as given.
    """

    part: SplitPart | None = None
    dataset: Any = None
    _labels: np.ndarray | None = None

    @property
    def is_part(self) -> bool:
        return self.part is not None

    def labels(self) -> np.ndarray:
        """Class indices in iteration order (one pass over a dataset's labels, then kept)."""
        if self._labels is None:
            if self.part is not None:
                self._labels = np.asarray(self.part.labels, dtype=np.int64)
            else:
                out = []
                for y in self.dataset.map(lambda *e: e[1]).as_numpy_iterator():
                    y = np.asarray(y)
                    out.append(np.argmax(y, axis=-1) if y.ndim == 2 and y.shape[1] > 1 else y)
                self._labels = np.concatenate(out).astype(np.int64).ravel() if out else np.zeros(0)
        return self._labels

    def __len__(self) -> int:
        if self.part is not None:
            return len(self.part)
        return len(self.labels())


def as_data(value: Any, what: str) -> Data:
    """Accept a SplitPart or a batched ``tf.data.Dataset`` of ``(images, labels)``."""
    if isinstance(value, SplitPart):
        if len(value) == 0:
            raise ScheduleError(f"{what} (the {value.name!r} part) holds no images")
        return Data(part=value)
    if hasattr(value, "element_spec") and hasattr(value, "as_numpy_iterator"):
        spec = value.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise ScheduleError(
                f"{what} must yield (images, labels) pairs; it yields {type(spec).__name__}"
            )
        if spec[0].shape.rank != 4:
            raise ScheduleError(
                f"{what} must yield batches of images (rank 4: batch, height, width, 3); it "
                f"yields rank {spec[0].shape.rank}: call .batch(32) on it"
            )
        import tensorflow as tf

        if int(value.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ScheduleError(f"{what} is infinite (.repeat()?); pass a finite dataset")
        return Data(dataset=without_autotune_thread(value))
    raise ArgumentTypeError(
        f"{what} must be a SplitPart (e.g. split.train) or a tf.data.Dataset of (images, labels) "
        f"batches, got {type_name(value)}"
    )


def fit_classes(
    class_names: list[str] | None, train: Data, *, placeholder: bool = False
) -> list[str]:
    """The classes ``fit`` trains on: the FineTuner's, else ``train``'s; every label must be one.

    ``placeholder`` says the FineTuner's names were made up from ``num_classes``
    alone (``class_0``, ...): a SplitPart's names then replace them, provided
    the counts agree.
    """
    if train.part is not None:
        part_names = list(train.part.class_names)
        if placeholder and class_names is not None:
            if len(part_names) != len(class_names):
                raise ScheduleError(
                    f"num_classes={len(class_names)} but train has {len(part_names)} classes "
                    f"{part_names}: pass num_classes={len(part_names)}, or leave it out"
                )
            class_names = part_names
        if class_names is not None and part_names != list(class_names):
            raise ScheduleError(
                f"train has classes {part_names} but the FineTuner was made for {class_names}"
            )
        class_names = part_names
    labels = train.labels()
    if class_names is None:
        class_names = [f"class_{i}" for i in range(int(labels.max()) + 1)]
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ScheduleError(
            f"train holds label {int(labels.max())}, but the model has {len(class_names)} "
            f"classes ({class_names}); num_classes/class_names must cover every label"
        )
    return list(class_names)


def fit_image_size(image_size: tuple[int, int], train: Data, *, adoptable: bool) -> tuple[int, int]:
    """The size ``fit`` trains at, checked against a ``tf.data`` dataset's image shape.

    A dataset whose ``element_spec`` fixes the height and width must match
    ``image_size``; when ``adoptable`` (the user gave no ``image_size`` and no
    model or backbone was built yet) the dataset's size is taken instead.
    A SplitPart is resized by tlkit and always fits.
    """
    if train.is_part:
        return image_size
    shape = train.dataset.element_spec[0].shape
    h, w = shape[1], shape[2]
    if h is None or w is None or (int(h), int(w)) == tuple(image_size):
        return image_size
    found = (int(h), int(w))
    if adoptable:
        if min(found) < MIN_IMAGE_SIZE:
            raise ScheduleError(
                f"train yields {found[0]}x{found[1]} images, under the smallest size tlkit trains "
                f"at ({MIN_IMAGE_SIZE} px): resize them (e.g. keras.layers.Resizing) first"
            )
        return found
    raise ScheduleError(
        f"train yields {found[0]}x{found[1]} images but the FineTuner's image_size is "
        f"{image_size[0]}x{image_size[1]}: pass image_size={found} to FineTuner (or resize the "
        "dataset's images to the FineTuner's image_size)"
    )


def image_bytes(n: int, size: tuple[int, int]) -> int:
    """Memory a float32 cache of ``n`` decoded images of ``size`` takes."""
    return n * size[0] * size[1] * 3 * 4


def paths_part(paths: Sequence[str | os.PathLike[str]]) -> SplitPart:
    """A SplitPart over image files (absolute paths), EXIF orientation read from each."""
    from PIL import Image, UnidentifiedImageError

    samples = []
    for p in paths:
        path = Path(p).resolve()
        if not os.path.lexists(path):
            raise FileNotFoundError(f"image file not found: {p}")
        check_file(path)  # a pipe or device is refused here, never opened
        orientation = 1
        try:
            with Image.open(path) as im:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
        except (UnidentifiedImageError, OSError, ValueError):
            orientation = 1  # the decoder reports unreadable files, naming them
        samples.append(Sample(str(path).lstrip("/"), 0, orientation=orientation))
    return SplitPart("predict", Path("/"), (), tuple(samples))


def as_pixels(
    data: Any, image_size: tuple[int, int], batch_size: int
) -> tuple[Any, np.ndarray | None]:
    """A batched dataset of images at ``image_size``, and their labels when known."""
    import tensorflow as tf

    bs = batch_size
    if isinstance(data, (str, os.PathLike)):
        p = Path(data)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        data = [str(q) for q in files]
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (str, os.PathLike)):
        part = paths_part(data)
        return part.to_dataset(image_size, batch_size=bs, check_files=False), None
    if isinstance(data, SplitPart):
        return data.to_dataset(image_size, batch_size=bs, shuffle=False), data.labels
    if hasattr(data, "element_spec"):
        d = as_data(data, "data")
        return d.dataset.map(lambda *e: e[0]), d.labels()
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ScheduleError(
            f"images must be an array (n, height, width, 3) of raw RGB in [0, 255], got "
            f"shape {arr.shape}"
        )
    if tuple(arr.shape[1:3]) != tuple(image_size):
        arr = tf.image.resize(arr, image_size).numpy()
    return without_autotune_thread(tf.data.Dataset.from_tensor_slices(arr).batch(bs)), None


def batches(ds: Any) -> Any:
    """The image batches of a dataset (of images, or of ``(images, labels)`` pairs)."""
    for x in ds.as_numpy_iterator():
        yield x[0] if isinstance(x, tuple) else x


def tta_views(tta: Any) -> Any:
    """``tta`` as a :class:`~tlkit.augment.Views` (see :meth:`~tlkit.augment.Views.coerce`)."""
    if tta is None:
        return None
    from tlkit.augment import Views

    return Views.coerce(tta)
