"""The input pipeline: samples to a batched, augmented ``tf.data.Dataset``.

:func:`to_dataset` checks its arguments and chains the stages. The module holds
the pipeline whole but for decoding (:mod:`tlkit.data._decode`, which imports
TensorFlow): the check that every file exists and may be read, and the
translation of decode failures back into
:class:`~tlkit.errors.ImageDecodeError` (:func:`decode_errors`); the cache of
decoded images; and the augmentation step, which calls any
:class:`~tlkit.protocols.Augmenter` once per batch. TensorFlow is imported when
:func:`to_dataset` is first called, not when this module is imported, so
``import tlkit`` stays cheap.
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
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tlkit._files import file_problem
from tlkit._validation import (
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_seed,
    type_name,
)
from tlkit.data._sample import PartLike, Sample, sample_labels, sample_paths
from tlkit.errors import ArgumentTypeError, DatasetError, ImageDecodeError, InvalidArgumentError
from tlkit.protocols import Augmenter

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "FILE_CACHE_SHUFFLE_BUFFER",
    "as_decode_error",
    "augment_stage",
    "cache_file",
    "check_augmenter",
    "check_cache",
    "check_exists",
    "decode_errors",
    "to_dataset",
    "without_autotune_thread",
]

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
        Images decoded and batches augmented at once (default: one image per
        core, at most 16, for decoding, and one batch per core, at most 8, for
        augmentation). The dataset runs without tf.data's autotuning thread
        (``tlkit.data.without_autotune_thread`` says why); set ``autotune.enabled`` in
        its options to turn it back on.
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

    from tlkit.data._decode import decode_stage

    if augmenter is not None and source.name in ("val", "test"):
        _warn_augmenting(source.name)
    paths = sample_paths(source.root, source.samples)
    check_exists(paths, missing_ok=not check_files)
    n = len(paths)
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    labels = sample_labels(source.samples)
    order = np.arange(n)
    if shuffle and cache_mode is not None:
        # The cache keeps one order; start from a random permutation so the
        # shuffle buffer after it mixes classes even when it holds few images.
        order = np.random.default_rng(seed).permutation(n)
    ds = _file_list(source, paths, labels, order)
    if shuffle and cache_mode is None:
        ds = ds.shuffle(shuffle_buffer or max(n, 1), seed=seed, reshuffle_each_iteration=True)

    ds = decode_stage(ds, size, resize, parallel)
    # The decode stage never drops an image silently (a failure raises, naming the file), so
    # the count is known: say so, and Keras shows epoch progress instead of "ran out of data".
    ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    if cache_mode is not None:
        ds = _cache_stage(
            ds, cache_mode, source, size, resize, order, shuffle, shuffle_buffer, seed
        )
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
    options.autotune.enabled = False  # see without_autotune_thread
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def without_autotune_thread(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with tf.data's autotuning thread off, unless its options already say.

    With autotuning on (TensorFlow's default), every iterator runs a thread
    that wakes on a timer whose period doubles from 10 ms to 60 s. Deleting the
    iterator wakes it to stop, but TensorFlow marks the iterator cancelled only
    after that wake-up (``CancellationManager`` runs its callbacks first), so
    the thread can find it still running, sleep out its period, and the delete
    waits for it: up to 60 s idle when Keras's ``fit`` returns after a long
    phase, a second or two at each short-lived iterator
    (``python benchmarks/iterator_teardown.py``). Off, ``AUTOTUNE``
    parallelism stays at the number of cores (at most 16) and prefetch buffers
    still grow as needed. A dataset whose options set ``autotune.enabled`` is
    returned as it is.

    Examples
    --------
    >>> import tensorflow as tf
    >>> ds = without_autotune_thread(tf.data.Dataset.range(3))
    >>> ds.options().autotune.enabled
    False
    """
    import tensorflow as tf

    if ds.options().autotune.enabled is not None:
        return ds
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _warn_augmenting(part: str) -> None:
    """Warn that the ``val`` or ``test`` part is being augmented (at the caller of ``to_dataset``)."""
    warnings.warn(
        f"augmenting the {part!r} part: augmentation is meant for training data; "
        "evaluate on unaugmented images (augment=None)",
        UserWarning,
        stacklevel=4,
    )


def _file_list(
    source: _Source, paths: list[str], labels: np.ndarray, order: np.ndarray
) -> tf.data.Dataset:
    """The pipeline's first elements: ``(path, EXIF orientation, label)`` per file, in ``order``."""
    import tensorflow as tf

    n = len(paths)
    orientations = np.asarray(
        [s.orientation if 1 <= s.orientation <= 8 else 1 for s in source.samples], dtype=np.int32
    )
    return tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([paths[i] for i in order], dtype=tf.string, shape=(n,)),
            tf.constant(orientations[order], dtype=tf.int32, shape=(n,)),
            tf.constant(labels[order], dtype=tf.int32, shape=(n,)),
        )
    )


def _cache_stage(
    ds: tf.data.Dataset,
    cache_mode: str,
    source: _Source,
    size: tuple[int, int],
    resize: str,
    order: np.ndarray,
    shuffle: bool,
    shuffle_buffer: int | None,
    seed: int | None,
) -> tf.data.Dataset:
    """Cache the decoded images (in memory, or in a file under ``cache_mode``), then shuffle them."""
    n = len(order)
    ds = ds.cache(
        cache_file(
            cache_mode, source.name, source.root, source.samples, size, resize, order, shuffle
        )
    )
    if shuffle:
        buffer = shuffle_buffer or (n if cache_mode == "" else FILE_CACHE_SHUFFLE_BUFFER)
        ds = ds.shuffle(max(1, min(buffer, n)), seed=seed, reshuffle_each_iteration=True)
    return ds


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


# -- files: checked before, decode failures translated after -----------------------------
# A failure inside a tf.data graph can only surface as a TensorFlow error; the decode stage
# puts the file path in its message (tlkit.data._decode.decode_error_message), and
# decode_errors turns such an error back into ImageDecodeError.

# TensorFlow prints the message C-escaped (quote as backslash-quote, non-ASCII bytes as octal).
_ERROR_RE = re.compile(
    r"ImageDecodeError: (cannot (?:read|decode) image file \\?'(.*?)\\?': "
    r"(?:it is|the file)[^\]\n]*)"
)


def check_exists(paths: list[str], missing_ok: bool = False) -> None:
    """Raise :class:`~tlkit.errors.ImageDecodeError` naming the files of ``paths`` that
    are missing, or that the pipeline must not read.

    Each path is checked with ``os.stat`` only (:func:`tlkit._files.file_problem`),
    never opened: a named pipe, socket or device (or a symlink to one), a folder,
    or a file over :data:`tlkit._files.MAX_FILE_BYTES` is refused with its reason,
    whatever ``missing_ok`` says (reading one would hang or exhaust memory).
    Missing files are refused unless ``missing_ok``.

    Examples
    --------
    >>> check_exists([])
    >>> check_exists(["/no/such/file.png"])
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: 1 image file(s) of the split are missing: '/no/such/file.png'. Restore them, or make a new split.
    >>> check_exists(["/dev/zero"], missing_ok=True)
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: refused to read image file '/dev/zero': not a regular file: a character device. Remove it from the split, or replace it with the image file.
    """
    missing = []
    for p in paths:
        reason = file_problem(p)
        if reason is None:
            continue
        if not reason.startswith("missing"):
            err = ImageDecodeError(
                f"refused to read image file {p!r}: {reason}. Remove it from the split, or "
                "replace it with the image file."
            )
            err.path = p  # type: ignore[attr-defined]
            raise err
        missing.append(p)
    if missing and not missing_ok:
        shown = ", ".join(repr(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        err = ImageDecodeError(
            f"{len(missing)} image file(s) of the split are missing: {shown}{more}. "
            "Restore them, or make a new split."
        )
        err.path = missing[0]  # type: ignore[attr-defined]
        raise err


@contextlib.contextmanager
def decode_errors() -> Iterator[None]:
    """Turn the pipeline's decode failures into :class:`~tlkit.errors.ImageDecodeError`.

    Inside a TensorFlow graph an error can only be a TensorFlow error; the
    pipeline's carries the file path in its message. Within this context, such
    an error is re-raised as ``ImageDecodeError`` with the path in ``.path``.

    Examples
    --------
    >>> with decode_errors():
    ...     raise RuntimeError("ImageDecodeError: cannot read image file 'a.png': it is missing")
    Traceback (most recent call last):
    ...
    tlkit.errors.ImageDecodeError: cannot read image file 'a.png': it is missing
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


# -- the cache of decoded images ---------------------------------------------------------


_CACHE_VERSION = 1
#: Default shuffle buffer after a file cache (a memory cache shuffles everything).
FILE_CACHE_SHUFFLE_BUFFER = 1024


def check_cache(cache: str | os.PathLike[str] | None) -> str | None:
    """``None`` (no cache), ``""`` (memory) or a folder path.

    Examples
    --------
    >>> check_cache("memory"), check_cache(None)
    ('', None)
    >>> check_cache(3)
    Traceback (most recent call last):
    ...
    tlkit.errors.ArgumentTypeError: cache must be None, 'memory' or a folder path, got 3 (int)
    """
    if cache is None:
        return None
    if cache == "memory":
        return ""
    if not isinstance(cache, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"cache must be None, 'memory' or a folder path, got {cache!r} ({type_name(cache)})"
        )
    if not os.fspath(cache):
        raise InvalidArgumentError("cache must be None, 'memory' or a folder path, got ''")
    return os.fspath(cache)


def cache_file(
    folder: str,
    name: str,
    root: str | os.PathLike[str],
    samples: Sequence[Sample],
    size: tuple[int, int],
    resize: str,
    order: np.ndarray,
    shuffled: bool,
) -> str:
    """``""`` for memory, else a file prefix in ``folder`` named by a fingerprint.

    The fingerprint covers the samples (path, content hash, label, orientation)
    in the order they are cached, the root, the size and resize policy, so a
    cache file is never reused for other images or settings.
    """
    if folder == "":
        return ""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "version": _CACHE_VERSION,
                "root": os.path.abspath(root),
                "size": size,
                "resize": resize,
                "shuffled": shuffled,
            }
        ).encode()
    )
    for i in order:
        s = samples[int(i)]
        h.update(f"\0{s.path}\0{s.sha256}\0{s.label}\0{s.orientation}".encode())
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"tlkit-{name}-{size[0]}x{size[1]}-{h.hexdigest()[:16]}")


# -- the augmentation step ---------------------------------------------------------------
# The data layer does not know tlkit.augment (a higher layer): it calls any object that
# implements tlkit.protocols.Augmenter, such as AugmentationPipeline, with one stateless seed
# per batch.

# What isinstance(x, Augmenter) looks for, to name what an object lacks.
_AUGMENTER_MEMBERS = ("seed", "layers", "mixes_labels", "clone", "output_size", "apply")


def check_augmenter(augment: Any) -> Augmenter | None:
    """``augment`` if it is an :class:`~tlkit.protocols.Augmenter` or ``None``.

    A preset name or a list of layers is refused with the call to make instead:
    resolving them needs :mod:`tlkit.augment`, which this layer does not import.

    Examples
    --------
    >>> check_augmenter(None) is None
    True
    >>> check_augmenter("light")
    Traceback (most recent call last):
    ...
    tlkit.errors.ArgumentTypeError: augment='light': pass tlkit.augment.AugmentationPipeline.preset('light', seed=...) (to_dataset takes an Augmenter or None, not a preset name)
    """
    if augment is None or isinstance(augment, Augmenter):
        return augment
    if isinstance(augment, str):
        raise ArgumentTypeError(
            f"augment={augment!r}: pass tlkit.augment.AugmentationPipeline.preset({augment!r}, "
            "seed=...) (to_dataset takes an Augmenter or None, not a preset name)"
        )
    if isinstance(augment, Sequence):
        raise ArgumentTypeError(
            f"augment is a {type_name(augment)} of {len(augment)} item(s): pass "
            "tlkit.augment.AugmentationPipeline([...layers], seed=...) (to_dataset takes an "
            "Augmenter or None, not a list of layers)"
        )
    missing = [m for m in _AUGMENTER_MEMBERS if not hasattr(augment, m)]
    raise ArgumentTypeError(
        "augment must be an Augmenter (e.g. tlkit.augment.AugmentationPipeline, or any object "
        f"implementing tlkit.protocols.Augmenter) or None, got {type_name(augment)}, "
        f"which lacks {', '.join(missing)}"
    )


def augment_stage(
    ds: tf.data.Dataset,
    augmenter: Augmenter | None,
    *,
    seed: int | None,
    num_classes: int,
    size: tuple[int, int],
    batch_size: int,
    drop_remainder: bool,
    parallel: int | None,
    deterministic: bool,
) -> tf.data.Dataset:
    """Batches of ``(uint8 images, labels)`` to ``(float32 images, labels)``, augmented.

    Each batch gets its own stateless seed, drawn from a seeded stream that
    changes every epoch: augmentation can run on several batches at once and
    stay reproducible. ``parallel=None`` means one batch per core (at most 8).
    """
    import tensorflow as tf

    if augmenter is None or not augmenter.layers:
        return ds.map(
            lambda x, y: (tf.cast(x, tf.float32), y),
            num_parallel_calls=tf.data.AUTOTUNE if parallel is None else parallel,
            deterministic=deterministic,
        )
    if augmenter.mixes_labels and num_classes < 1:
        raise InvalidArgumentError(
            "MixUp/CutMix need one-hot labels: pass class_names= (or a SplitPart)"
        )
    fn = _augment_fn(augmenter.clone(), num_classes, size, batch_size, drop_remainder)
    aug_seed = augmenter.seed if augmenter.seed is not None else seed
    seeds = tf.data.Dataset.random(seed=aug_seed, rerandomize_each_iteration=True)
    seeds = seeds.batch(2, drop_remainder=True)  # static shape (2,), as Augmenter promises
    return tf.data.Dataset.zip((ds, seeds)).map(
        fn,
        num_parallel_calls=_augment_parallelism() if parallel is None else parallel,
        deterministic=deterministic,
    )


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
    augmenter: Augmenter,
    num_classes: int,
    size: tuple[int, int],
    batch_size: int,
    drop_remainder: bool,
):
    import tensorflow as tf

    out_h, out_w = augmenter.output_size(size)
    batch = batch_size if drop_remainder else None

    def fn(batch_xy: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor):
        images, labels = batch_xy
        images = tf.cast(images, tf.float32)
        if augmenter.mixes_labels:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        images, labels = augmenter.apply(images, labels, seed=seed)
        images = tf.ensure_shape(tf.cast(images, tf.float32), (batch, out_h, out_w, 3))
        return images, labels

    return fn
