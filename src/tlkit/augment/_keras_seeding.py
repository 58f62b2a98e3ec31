"""Stateless per-batch seeds for Keras augmentation layers: the one place tlkit uses Keras internals.

Why internals: a Keras 3 augmentation layer takes its randomness from a
``keras.random.SeedGenerator`` made from the public ``seed=`` constructor
argument. That generator keeps a counter in a variable, so two batches
augmented at the same time in a parallel ``tf.data`` map race for it, and the
output depends on thread timing: not reproducible. Keras has no public way to
hand a layer call a per-batch seed *tensor* (``seed=`` accepts a Python int or
a ``SeedGenerator``, fixed when the layer is built). So, for the duration of a
call, :func:`seeded` swaps each layer's ``generator`` attribute (private) for a
:class:`StatelessSeed` that derives every draw from the batch's seed tensor,
and puts the layer's own generator back afterwards.

What this relies on, pinned by ``tests/test_keras_seeding.py`` so that a Keras
upgrade that changes it fails loudly:

- every augmentation layer that draws random numbers keeps its
  ``SeedGenerator`` in the instance attribute ``generator`` and reads it at
  call time (not a copy taken at build time);
- ``Layer._flatten_layers(include_self=True, recursive=True)`` lists a layer
  and the layers nested in it;
- a ``SeedGenerator`` subclass that overrides ``next`` and does not create a
  state variable is accepted wherever the layer draws a seed.

Nothing else in tlkit touches these; the public seeding API stays
:meth:`tlkit.augment.AugmentationPipeline.apply` (``seed=``).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["StatelessSeed", "seed_tensor", "seeded"]


class StatelessSeed(keras.random.SeedGenerator):
    """Hands a Keras layer seeds derived from one seed tensor, without state.

    Keras's own :class:`keras.random.SeedGenerator` keeps a counter in a variable,
    so two batches augmented at the same time in a parallel ``tf.data`` map would
    race for it. This one derives every draw from a per-batch seed instead.
    """

    def __init__(self, seed: tf.Tensor) -> None:  # no variable: do not call super()
        self.name = "tlkit_stateless_seed"
        self._seed = seed
        self._count = 0

    def next(self, ordered: bool = True) -> tf.Tensor:
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._count)


def seed_tensor(seed: int | Any) -> tf.Tensor:
    """A shape-``(2,)`` ``int64`` stateless seed from an int or a seed tensor.

    Examples
    --------
    >>> seed_tensor(3).numpy().tolist()
    [3, 0]
    """
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    return tf.cast(tf.reshape(seed, (2,)), tf.int64)


def _generator_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    flatten = getattr(layer, "_flatten_layers", None)
    return list(flatten(include_self=True, recursive=True)) if flatten else [layer]


class seeded:
    """Context: give a layer (and layers nested in it) stateless seeds from ``base``.

    Layer ``index`` of a pipeline, sub-layer ``j`` draws from
    ``fold_in(fold_in(base, index), j)``; ``base=None`` leaves the layer alone
    (its own stateful generator draws).

    Examples
    --------
    >>> layer = keras.layers.RandomFlip("horizontal", seed=1)
    >>> own = layer.generator
    >>> with seeded(layer, seed_tensor(5), 0):
    ...     type(layer.generator).__name__
    'StatelessSeed'
    >>> layer.generator is own
    True
    """

    def __init__(self, layer: keras.layers.Layer, base: tf.Tensor | None, index: int) -> None:
        self.layer = layer
        self.base = base
        self.index = index
        self.saved: list[tuple[keras.layers.Layer, Any]] = []

    def __enter__(self) -> None:
        if self.base is None:
            return
        for j, sub in enumerate(_generator_layers(self.layer)):
            gen = sub.__dict__.get("generator")
            if isinstance(gen, keras.random.SeedGenerator):
                seed = tf.random.experimental.stateless_fold_in(
                    tf.random.experimental.stateless_fold_in(self.base, self.index), j
                )
                self.saved.append((sub, gen))
                object.__setattr__(sub, "generator", StatelessSeed(seed))

    def __exit__(self, *exc: object) -> None:
        for sub, gen in reversed(self.saved):
            object.__setattr__(sub, "generator", gen)
        self.saved.clear()
