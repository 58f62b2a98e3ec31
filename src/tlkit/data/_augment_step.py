"""The input pipeline's augmentation step: an :class:`~tlkit.protocols.Augmenter` per batch.

The data layer does not know :mod:`tlkit.augment` (a higher layer): it calls any
object that implements :class:`tlkit.protocols.Augmenter`, such as
:class:`tlkit.augment.AugmentationPipeline`, with one stateless seed per batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tlkit._validation import type_name
from tlkit.errors import ArgumentTypeError, InvalidArgumentError
from tlkit.protocols import Augmenter

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["augment_stage", "check_augmenter"]

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
