"""The input pipeline: samples to a batched, augmented ``tf.data.Dataset``.

TensorFlow is imported when :func:`to_dataset` is first called, not when this
module is imported, so ``import tlkit`` stays cheap.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit.data._sample import Sample, SplitPart
from tlkit.errors import ImageDecodeError

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import tensorflow as tf

    from tlkit.augment import AugmentationPipeline

__all__ = ["decode_errors", "to_dataset"]

_RESIZE_POLICIES = ("stretch", "crop", "pad")
_CACHE_VERSION = 1
_FILE_CACHE_SHUFFLE_BUFFER = 1024
# TensorFlow prints the message C-escaped (quote as backslash-quote, non-ASCII bytes as octal).
_ERROR_RE = re.compile(
    r"ImageDecodeError: (cannot (?:read|decode) image file \\?'(.*?)\\?': "
    r"(?:it is|the file)[^\]\n]*)"
)


def to_dataset(
    samples: SplitPart | Sequence[Sample],
    image_size: int | tuple[int, int] = 224,
    batch_size: int = 32,
    augment: AugmentationPipeline | str | Sequence[keras.layers.Layer] | None = None,
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
    augment : AugmentationPipeline, str, sequence of keras layers, or None
        Augmentation for training data, applied per batch inside tf.data (not on
        the model). A string names a preset (``"light"``, ``"standard"``,
        ``"heavy"``; see :meth:`tlkit.AugmentationPipeline.preset`). With
        :class:`keras.layers.MixUp` or :class:`keras.layers.CutMix` in it the
        labels are one-hot ``float32`` of shape ``(B, num_classes)``.
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
        :class:`~tlkit.errors.ImageDecodeError` naming the missing ones.

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
    ValueError
        An argument out of range, naming the allowed values.
    ImageDecodeError
        ``check_files=True`` and some files are missing.

    Examples
    --------
    >>> import tempfile
    >>> from tlkit import DatasetSplitter
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 10, "b": 10}, image_size=32)
    >>> split = DatasetSplitter(val=0.2, test=0.2, seed=0).split(root)
    >>> ds = split.train.to_dataset(image_size=24, batch_size=4, augment="light", seed=0)
    >>> images, labels = next(iter(ds))
    >>> images.shape.as_list(), images.dtype.name, labels.dtype.name
    ([4, 24, 24, 3], 'float32', 'int32')
    """
    part = _as_part(samples, root, class_names)
    size = _check_size(image_size)
    _check_int("batch_size", batch_size, 1)
    if resize not in _RESIZE_POLICIES:
        raise ValueError(
            f"resize must be one of {', '.join(map(repr, _RESIZE_POLICIES))}, got {resize!r}"
        )
    if seed is not None:
        _check_int("seed", seed, 0)
    if shuffle_buffer is not None:
        _check_int("shuffle_buffer", shuffle_buffer, 1)
    if num_parallel_calls is not None and num_parallel_calls != -1:
        _check_int("num_parallel_calls", num_parallel_calls, 1)
    cache_mode = _check_cache(cache)
    if deterministic is None:
        deterministic = not shuffle or seed is not None

    import tensorflow as tf

    pipeline = _as_pipeline(augment, seed)
    if pipeline is not None and part.name in ("val", "test"):
        warnings.warn(
            f"augmenting the {part.name!r} part: augmentation is meant for training data; "
            "evaluate on unaugmented images (augment=None)",
            UserWarning,
            stacklevel=3,
        )
    paths = part.paths
    if check_files:
        _check_exists(paths)
    n = len(paths)
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    labels = part.labels
    orientations = np.asarray(
        [s.orientation if 1 <= s.orientation <= 8 else 1 for s in part], dtype=np.int32
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

    ds = _decode_stage(ds, size, resize, parallel)
    # The decode stage never drops an image silently (a failure raises, naming the file), so
    # the count is known: say so, and Keras shows epoch progress instead of "ran out of data".
    ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    if cache_mode is not None:
        ds = ds.cache(_cache_file(cache_mode, part, size, resize, order, shuffle))
        if shuffle:
            buffer = shuffle_buffer or (n if cache_mode == "" else _FILE_CACHE_SHUFFLE_BUFFER)
            ds = ds.shuffle(max(1, min(buffer, n)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    if pipeline is None or not pipeline.layers:
        ds = ds.map(
            lambda x, y: (tf.cast(x, tf.float32), y),
            num_parallel_calls=parallel,
            deterministic=deterministic,
        )
    else:
        num_classes = part.num_classes or (int(labels.max()) + 1 if n else 0)
        if pipeline.mixes_labels and num_classes < 1:
            raise ValueError("MixUp/CutMix need one-hot labels: pass class_names= (or a SplitPart)")
        augment_fn = _augment_fn(pipeline.clone(), num_classes, size, batch_size, drop_remainder)
        # One stateless seed per batch, drawn from a seeded stream that changes
        # each epoch: augmentation can run in parallel and stay reproducible.
        aug_seed = pipeline.seed if pipeline.seed is not None else seed
        seeds = tf.data.Dataset.random(seed=aug_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            augment_fn,
            num_parallel_calls=_augment_parallelism() if num_parallel_calls is None else parallel,
            deterministic=deterministic,
        )
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _decode_stage(
    ds: tf.data.Dataset, size: tuple[int, int], policy: str, parallel: int
) -> tf.data.Dataset:
    """``(path, orientation, label)`` to ``(uint8 image, label)``, in order, in parallel.

    A decode error inside a ``map`` is a bare TensorFlow error without the file
    name, and a ``tf.data`` pipeline has no ``try``. So the decoding map ignores
    errors, and a scan after it checks that no element went missing: each
    element carries its position and the path of the element before it, and
    an end marker closes the stream. When a position is skipped, the file
    before the first element that did arrive failed: the scan raises an error
    naming it, saying whether it is missing or undecodable. The successful
    path costs one counter per image.
    """
    import tensorflow as tf

    from tlkit.data._decode import decode_error_message, load_image

    end = tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(1), tf.constant(-1)))

    def number(state: tuple[tf.Tensor, tf.Tensor], element: tuple[tf.Tensor, ...]):
        position, previous = state
        path, orientation, label = element
        return (position + 1, path), (position, previous, path, orientation, label)

    def decode(position, previous, path, orientation, label):
        image = tf.cond(
            label >= 0,
            lambda: load_image(path, orientation, size, policy),
            lambda: tf.zeros((size[0], size[1], 3), tf.uint8),
        )
        return position, previous, image, label

    def check(expected: tf.Tensor, element: tuple[tf.Tensor, ...]):
        position, previous, image, label = element

        def fail() -> tf.Tensor:
            readable = (
                tf.data.Dataset.from_tensors(previous)
                .map(lambda p: tf.strings.length(tf.io.read_file(p)))
                .ignore_errors()
                .reduce(tf.constant(0), lambda count, _: count + 1)
            )
            message = tf.where(
                readable > 0,
                decode_error_message("corrupt", previous),
                decode_error_message("missing", previous),
            )
            with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
                return tf.identity(image)

        image = tf.cond(tf.equal(position, expected), lambda: image, fail)
        return position + 1, (image, label)

    ds = ds.concatenate(end).scan((tf.constant(0, tf.int64), tf.constant("")), number)
    ds = ds.map(decode, num_parallel_calls=parallel, deterministic=True).ignore_errors()
    ds = ds.scan(tf.constant(0, tf.int64), check)
    return ds.filter(lambda image, label: label >= 0)


def _augment_parallelism() -> int:
    """Batches augmented at once: one per core (at most 8, each holds a float32 batch).

    Fixed rather than AUTOTUNE: with a cache, augmentation is the only work
    left and the autotuner was seen to keep it at one batch at a time.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _augment_fn(
    pipeline: AugmentationPipeline,
    num_classes: int,
    size: tuple[int, int],
    batch_size: int,
    drop_remainder: bool,
):
    import tensorflow as tf

    out_h, out_w = pipeline.output_size(size)
    batch = batch_size if drop_remainder else None

    def fn(batch_xy: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor):
        images, labels = batch_xy
        images = tf.cast(images, tf.float32)
        if pipeline.mixes_labels:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        images, labels = pipeline.apply(images, labels, seed=seed)
        images = tf.ensure_shape(tf.cast(images, tf.float32), (batch, out_h, out_w, 3))
        return images, labels

    return fn


# -- argument handling ---------------------------------------------------------------------


def _as_part(
    samples: SplitPart | Sequence[Sample],
    root: str | os.PathLike[str] | None,
    class_names: Sequence[str] | None,
) -> SplitPart:
    if isinstance(samples, SplitPart):
        if root is not None or class_names is not None:
            part_root = Path(root) if root is not None else samples.root
            names = tuple(class_names) if class_names is not None else samples.class_names
            return SplitPart(samples.name, part_root, names, samples.samples)
        return samples
    if isinstance(samples, (str, bytes, os.PathLike)) or not isinstance(samples, Sequence):
        raise TypeError(
            "samples must be a SplitPart (e.g. split.train) or a list of tlkit.Sample, "
            f"got {type(samples).__name__}"
        )
    items = tuple(samples)
    bad = [s for s in items if not isinstance(s, Sample)]
    if bad:
        raise TypeError(
            f"samples must contain tlkit.Sample objects, got {type(bad[0]).__name__}; "
            "build them with Sample(path, label)"
        )
    if root is None:
        raise ValueError(
            "a list of samples needs root= (the folder their paths are relative to); "
            "or use split.train / split.val / split.test, which know their root"
        )
    for s in items:
        if s.label < 0:
            raise ValueError(f"sample {s.path!r} has label {s.label}; labels must be >= 0")
    names = tuple(class_names) if class_names is not None else ()
    if names and items and max(s.label for s in items) >= len(names):
        worst = max(items, key=lambda s: s.label)
        raise ValueError(
            f"sample {worst.path!r} has label {worst.label} but only {len(names)} "
            f"class_names were given"
        )
    return SplitPart("samples", Path(root), names, items)


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size: tuple[Any, ...] = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        size = tuple(image_size)
    else:
        size = ()
    if len(size) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in size
    ):
        raise ValueError(
            f"image_size must be a positive int or a (height, width) pair, got {image_size!r}"
        )
    return int(size[0]), int(size[1])


def _check_cache(cache: str | os.PathLike[str] | None) -> str | None:
    """``None`` (no cache), ``""`` (memory) or a folder path."""
    if cache is None:
        return None
    if cache == "memory":
        return ""
    if isinstance(cache, (str, os.PathLike)) and os.fspath(cache):
        return os.fspath(cache)
    raise ValueError(f"cache must be None, 'memory' or a folder path, got {cache!r}")


def _cache_file(
    folder: str,
    part: SplitPart,
    size: tuple[int, int],
    resize: str,
    order: np.ndarray,
    shuffled: bool,
) -> str:
    """``""`` for memory, else a file prefix in ``folder`` named by a fingerprint."""
    if folder == "":
        return ""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "version": _CACHE_VERSION,
                "root": os.path.abspath(part.root),
                "size": size,
                "resize": resize,
                "shuffled": shuffled,
            }
        ).encode()
    )
    for i in order:
        s = part.samples[int(i)]
        h.update(f"\0{s.path}\0{s.sha256}\0{s.label}\0{s.orientation}".encode())
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"tlkit-{part.name}-{size[0]}x{size[1]}-{h.hexdigest()[:16]}")


def _check_exists(paths: list[str]) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        err = ImageDecodeError(
            f"{len(missing)} image file(s) of the split are missing: {shown}{more}. "
            "Restore them, or make a new split."
        )
        err.path = missing[0]  # type: ignore[attr-defined]
        raise err


def _as_pipeline(
    augment: AugmentationPipeline | str | Sequence[keras.layers.Layer] | None, seed: int | None
) -> AugmentationPipeline | None:
    from tlkit.augment import AugmentationPipeline

    if augment is None:
        return None
    if isinstance(augment, AugmentationPipeline):
        return augment
    if isinstance(augment, str):
        return AugmentationPipeline.preset(augment, seed=seed)
    if isinstance(augment, Sequence):
        return AugmentationPipeline(list(augment))
    raise TypeError(
        "augment must be an AugmentationPipeline, a preset name ('none', 'light', "
        f"'standard', 'heavy'), a list of keras layers or None, got {type(augment).__name__}"
    )


# -- errors --------------------------------------------------------------------------------


@contextlib.contextmanager
def decode_errors() -> Iterator[None]:
    """Turn the pipeline's decode failures into :class:`~tlkit.errors.ImageDecodeError`.

    Inside a TensorFlow graph an error can only be a TensorFlow error; the
    pipeline's carries the file path in its message. Within this context, such
    an error is re-raised as ``ImageDecodeError`` with the path in ``.path``.

    Examples
    --------
    >>> with decode_errors():
    ...     pass
    """
    try:
        yield
    except Exception as exc:
        converted = as_decode_error(exc)
        if converted is None:
            raise
        raise converted from exc


def as_decode_error(exc: BaseException) -> ImageDecodeError | None:
    """The :class:`~tlkit.errors.ImageDecodeError` a TensorFlow error stands for, if any."""
    match = _ERROR_RE.search(str(exc))
    if match is None:
        return None
    path = _unescape(match.group(2))
    err = ImageDecodeError(_unescape(match.group(1).strip()))
    err.path = path  # type: ignore[attr-defined]
    return err


def _unescape(text: str) -> str:
    """Undo TensorFlow's C escaping of a message fragment."""
    try:
        raw = codecs.escape_decode(text.encode("utf-8"))[0]
    except ValueError:
        return text
    return raw.decode("utf-8", errors="replace")
