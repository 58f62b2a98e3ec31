"""The input pipeline: samples to a batched, augmented ``tf.data.Dataset``.

:func:`to_dataset` checks its arguments and chains the stages, each in its own
module: decoding (``_decode_stage``), caching (``_cache``), augmentation
(``_augment_step``) and error translation (``_decode_errors``). TensorFlow is
imported when :func:`to_dataset` is first called, not when this module is
imported, so ``import tlkit`` stays cheap.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from tlkit._validation import (
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_seed,
    type_name,
)
from tlkit.data._augment_step import augment_stage, check_augmenter
from tlkit.data._cache import FILE_CACHE_SHUFFLE_BUFFER, cache_file, check_cache
from tlkit.data._decode_errors import check_exists, decode_errors
from tlkit.data._sample import PartLike, Sample, sample_labels, sample_paths
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

    from tlkit.protocols import Augmenter

__all__ = ["decode_errors", "to_dataset"]

_RESIZE_POLICIES = ("stretch", "crop", "pad")


class _Source(NamedTuple):
    """The samples to load, with what the pipeline needs to know about them."""

    name: str
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[Sample, ...]


def to_dataset(
    samples: PartLike | Sequence[Sample],
    image_size: int | tuple[int, int] = 224,
    batch_size: int = 32,
    augment: Augmenter | None = None,
    shuffle: bool = False,
    cache: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    *,
    resize: str = "stretch",
    drop_remainder: bool = False,
    deterministic: bool | None = None,
    root: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
    num_parallel_calls: int | None = None,
    shuffle_buffer: int | None = None,
    check_files: bool = True,
) -> tf.data.Dataset:
    """Build a ``tf.data.Dataset`` of ``(images, labels)`` batches from samples.

    Every image is read, decoded, resized and turned upright inside the
    TensorFlow graph, in parallel (no Python per image): JPEG, PNG, GIF (first
    frame) and BMP; grayscale and palette images become RGB; transparent pixels
    are composited onto white; 16-bit PNGs are scaled to the 0..255 range; the
    EXIF orientation stored in each sample (read when the split scanned the
    files) is applied, so phone photos arrive upright. Large JPEGs are decoded
    at a reduced DCT scale when the target size allows (a 12-megapixel photo
    for a 224 target is decoded at 1/8 scale).

    Parameters
    ----------
    samples : SplitPart or sequence of Sample
        ``split.train`` (or ``.val``, ``.test``), or a list of samples whose
        paths are relative to ``root``.
    image_size : int or (height, width)
        Output size of every image.
    batch_size : int
        Images per batch.
    augment : Augmenter or None
        Augmentation for training data, applied per batch inside tf.data (not on
        the model): a :class:`tlkit.AugmentationPipeline`, e.g.
        ``AugmentationPipeline.preset("light", seed=0)``, or any object
        implementing :class:`tlkit.protocols.Augmenter`. A preset name or a
        list of layers is refused (:class:`~tlkit.errors.ArgumentTypeError`
        saying what to pass). When the augmenter mixes labels (MixUp, CutMix)
        the labels are one-hot ``float32`` of shape ``(B, num_classes)``.
    shuffle : bool
        Shuffle the samples, differently each epoch.
    cache : "memory", path or None
        Keep the decoded, resized images (before augmentation) in memory or in
        files under the folder ``cache``, so later epochs skip decoding. The
        file name holds a fingerprint of the samples and settings, so a cache
        is never reused for other images or sizes. ``None`` streams from disk
        and uses memory independent of the dataset size.
    seed : int, optional
        Seeds the shuffle and, unless the pipeline has its own seed, the
        augmentation. The same seed gives the same batches, epoch by epoch.
    resize : {"stretch", "crop", "pad"}
        ``"stretch"`` resizes to the target ignoring the aspect ratio;
        ``"crop"`` keeps the aspect ratio and cuts the centre; ``"pad"`` keeps
        the aspect ratio and fills the borders with black (letterbox).
    drop_remainder : bool
        Drop the last batch if it is smaller than ``batch_size``.
    deterministic : bool, optional
        Keep batches in a fixed order: the default, unless ``shuffle=True``
        without a ``seed``. ``False`` lets augmented batches come out as soon
        as they are ready. Images are always decoded in order, so unshuffled
        data keeps sample order and predictions line up with ``part.labels``.
    root : str or os.PathLike, optional
        Folder the sample paths are relative to (required for a plain list;
        taken from a ``SplitPart``).
    class_names : sequence of str, optional
        Class names (taken from a ``SplitPart``); used for the number of
        classes of one-hot labels.
    num_parallel_calls : int, optional
        Images decoded and batches augmented at once (default: autotuned
        decoding, and one batch per core, at most 8, for augmentation).
    shuffle_buffer : int, optional
        Shuffle buffer size. Default: all samples (the shuffle then orders
        file names, not images, so it costs little memory), or 1,024 images
        with a file cache.
    check_files : bool
        Check that every file exists before building the dataset, and raise
        :class:`~tlkit.errors.ImageDecodeError` naming the missing ones. Either
        way, every path is checked with ``os.stat`` (never opened) and a named
        pipe, socket, device, folder or file over ``MAX_FILE_BYTES`` raises
        ``ImageDecodeError`` with the reason; images over the pixel or crop
        aspect-ratio limits raise ``ImageDecodeError`` naming the file and the
        limit when they are reached (see "Security and limits" in the docs).

    Returns
    -------
    tf.data.Dataset
        Elements ``(images, labels)``: images ``float32`` in [0, 255] of shape
        ``(B, height, width, 3)``; labels ``int32`` class indices of shape
        ``(B,)``. A file that cannot be read or decoded while iterating
        (deleted or changed since the split) raises a TensorFlow error whose
        message starts with ``ImageDecodeError:``, names the file and says
        whether it is missing or undecodable (of several failing files in a
        row, the last is named).

    Raises
    ------
    ArgumentTypeError
        An argument of the wrong type (a ``TypeError``), naming the accepted types.
    InvalidArgumentError, DatasetError
        An argument out of range or samples that cannot be used (``ValueError``).
    ImageDecodeError
        ``check_files=True`` and some files are missing.

    Examples
    --------
    >>> import tempfile
    >>> from tlkit import DatasetSplitter
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 10, "b": 10}, image_size=32)
    >>> split = DatasetSplitter(val=0.2, test=0.2, seed=0).split(root)
    >>> from tlkit.augment import AugmentationPipeline
    >>> aug = AugmentationPipeline.preset("light", seed=0)
    >>> ds = split.train.to_dataset(image_size=24, batch_size=4, augment=aug, seed=0)
    >>> images, labels = next(iter(ds))
    >>> images.shape.as_list(), images.dtype.name, labels.dtype.name
    ([4, 24, 24, 3], 'float32', 'int32')
    """
    source = _as_source(samples, root, class_names)
    size = check_image_size("image_size", image_size)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    resize = check_choice("resize", resize, _RESIZE_POLICIES)
    seed = check_seed("seed", seed, allow_none=True)
    shuffle = check_bool("shuffle", shuffle)
    drop_remainder = check_bool("drop_remainder", drop_remainder)
    check_files = check_bool("check_files", check_files)
    shuffle_buffer = check_int("shuffle_buffer", shuffle_buffer, minimum=1, allow_none=True)
    if num_parallel_calls != -1:
        num_parallel_calls = check_int(
            "num_parallel_calls", num_parallel_calls, minimum=1, allow_none=True
        )
    cache_mode = check_cache(cache)
    augmenter = check_augmenter(augment)
    if deterministic is None:
        deterministic = not shuffle or seed is not None
    deterministic = check_bool("deterministic", deterministic)

    import tensorflow as tf

    from tlkit.data._decode_stage import decode_stage

    if augmenter is not None and source.name in ("val", "test"):
        warnings.warn(
            f"augmenting the {source.name!r} part: augmentation is meant for training data; "
            "evaluate on unaugmented images (augment=None)",
            UserWarning,
            stacklevel=3,
        )
    paths = sample_paths(source.root, source.samples)
    check_exists(paths, missing_ok=not check_files)
    n = len(paths)
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    labels = sample_labels(source.samples)
    orientations = np.asarray(
        [s.orientation if 1 <= s.orientation <= 8 else 1 for s in source.samples], dtype=np.int32
    )
    order = np.arange(n)
    if shuffle and cache_mode is not None:
        # The cache keeps one order; start from a random permutation so the
        # shuffle buffer after it mixes classes even when it holds few images.
        order = np.random.default_rng(seed).permutation(n)
    ds = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([paths[i] for i in order], dtype=tf.string, shape=(n,)),
            tf.constant(orientations[order], dtype=tf.int32, shape=(n,)),
            tf.constant(labels[order], dtype=tf.int32, shape=(n,)),
        )
    )
    if shuffle and cache_mode is None:
        ds = ds.shuffle(shuffle_buffer or max(n, 1), seed=seed, reshuffle_each_iteration=True)

    ds = decode_stage(ds, size, resize, parallel)
    # The decode stage never drops an image silently (a failure raises, naming the file), so
    # the count is known: say so, and Keras shows epoch progress instead of "ran out of data".
    ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    if cache_mode is not None:
        ds = ds.cache(
            cache_file(
                cache_mode, source.name, source.root, source.samples, size, resize, order, shuffle
            )
        )
        if shuffle:
            buffer = shuffle_buffer or (n if cache_mode == "" else FILE_CACHE_SHUFFLE_BUFFER)
            ds = ds.shuffle(max(1, min(buffer, n)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = augment_stage(
        ds,
        augmenter,
        seed=seed,
        num_classes=len(source.class_names) or (int(labels.max()) + 1 if n else 0),
        size=size,
        batch_size=batch_size,
        drop_remainder=drop_remainder,
        parallel=num_parallel_calls,
        deterministic=deterministic,
    )
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _as_source(
    samples: PartLike | Sequence[Sample],
    root: str | os.PathLike[str] | None,
    class_names: Sequence[str] | None,
) -> _Source:
    """The samples with their root and class names; ``root``/``class_names`` override a part's."""
    if isinstance(samples, (str, bytes, os.PathLike)) or not isinstance(samples, Sequence):
        raise ArgumentTypeError(
            "samples must be a SplitPart (e.g. split.train) or a list of tlkit.Sample, "
            f"got {type_name(samples)}"
        )
    items = tuple(samples)
    bad = [s for s in items if not isinstance(s, Sample)]
    if bad:
        raise ArgumentTypeError(
            f"samples must contain tlkit.Sample objects, got {type_name(bad[0])}; "
            "build them with Sample(path, label)"
        )
    part = samples if isinstance(samples, PartLike) else None
    if root is None and part is None:
        raise InvalidArgumentError(
            "a list of samples needs root= (the folder their paths are relative to); "
            "or use split.train / split.val / split.test, which know their root"
        )
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ArgumentTypeError(f"root must be a folder path, got {type_name(root)}")
    if class_names is not None:
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise ArgumentTypeError(
                f"class_names must be a list of strings, got {type_name(class_names)}"
            )
        names = tuple(class_names)
    else:
        names = tuple(part.class_names) if part is not None else ()
    folder = Path(root) if root is not None else Path(part.root)  # type: ignore[union-attr]
    if part is None:
        for s in items:
            if s.label < 0:
                raise DatasetError(f"sample {s.path!r} has label {s.label}; labels must be >= 0")
        if names and items and max(s.label for s in items) >= len(names):
            worst = max(items, key=lambda s: s.label)
            raise DatasetError(
                f"sample {worst.path!r} has label {worst.label} but only {len(names)} "
                f"class_names were given"
            )
    return _Source(part.name if part is not None else "samples", folder, names, items)
