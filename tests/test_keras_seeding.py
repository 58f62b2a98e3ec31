"""Pins the Keras behaviour that ``tlkit.augment._keras_seeding`` relies on.

Per-batch stateless seeding has no public Keras API (a layer's ``seed=`` is a
Python int or a ``SeedGenerator`` fixed at construction), so the module swaps
each layer's private ``generator`` attribute during a call. If a Keras upgrade
changes any of the behaviour below, these tests fail and name what changed.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tlkit.augment import PRESETS  # noqa: E402
from tlkit.augment._keras_seeding import StatelessSeed, seed_tensor, seeded  # noqa: E402
from tlkit.augment._pipeline import preset_layers  # noqa: E402

# Every layer type the presets use, and the label-mixing layers the pipeline supports.
LAYER_TYPES = sorted(
    {type(layer) for name in PRESETS for layer in preset_layers(name, 0, "nearest")}
    | {keras.layers.MixUp, keras.layers.CutMix},
    key=lambda t: t.__name__,
)


def _make(layer_type: type, seed: int) -> keras.layers.Layer:
    if layer_type is keras.layers.RandomFlip:
        return layer_type("horizontal", seed=seed)
    if layer_type is keras.layers.RandomTranslation:
        return layer_type(0.2, 0.2, seed=seed)
    if layer_type in (keras.layers.RandomRotation, keras.layers.RandomZoom):
        return layer_type(0.3, seed=seed)
    if layer_type is keras.layers.RandomContrast:
        return layer_type(0.5, seed=seed)
    if layer_type is keras.layers.RandomBrightness:
        return layer_type(0.5, seed=seed)
    return layer_type(seed=seed)  # MixUp, CutMix


def _call(layer: keras.layers.Layer, images: tf.Tensor) -> np.ndarray:
    if isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix)):
        labels = tf.one_hot(tf.range(images.shape[0]) % 2, 2)
        return layer({"images": images, "labels": labels}, training=True)["images"].numpy()
    return np.asarray(layer(images, training=True))


@pytest.fixture(scope="module")
def images() -> tf.Tensor:
    rng = np.random.default_rng(0)
    return tf.constant(rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32"))


def test_the_presets_use_only_the_pinned_layer_types() -> None:
    names = {t.__name__ for t in LAYER_TYPES}
    assert {"RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast"} <= names


@pytest.mark.parametrize("layer_type", LAYER_TYPES, ids=lambda t: t.__name__)
def test_layer_keeps_a_seed_generator_in_generator(layer_type: type) -> None:
    layer = _make(layer_type, seed=1)
    assert isinstance(layer.__dict__.get("generator"), keras.random.SeedGenerator), (
        f"keras.layers.{layer_type.__name__} no longer stores its SeedGenerator in the "
        "instance attribute 'generator': update tlkit/augment/_keras_seeding.py"
    )
    flat = layer._flatten_layers(include_self=True, recursive=True)
    assert layer in list(flat)


@pytest.mark.parametrize("layer_type", LAYER_TYPES, ids=lambda t: t.__name__)
def test_the_swapped_generator_decides_the_draws(layer_type: type, images: tf.Tensor) -> None:
    # Two layers with different constructor seeds draw the same under the same swapped-in
    # seed (the layer reads 'generator' at call time), and differently under another seed.
    a, b = _make(layer_type, seed=1), _make(layer_type, seed=999)
    own = a.generator
    with seeded(a, seed_tensor(7), 0):
        assert isinstance(a.generator, StatelessSeed)
        first = _call(a, images)
    with seeded(b, seed_tensor(7), 0):
        same = _call(b, images)
    with seeded(a, seed_tensor(8), 0):
        other = _call(a, images)
    assert a.generator is own  # restored
    np.testing.assert_array_equal(first, same)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("layer_type", LAYER_TYPES, ids=lambda t: t.__name__)
def test_seeded_draws_are_deterministic_in_a_graph(layer_type: type, images: tf.Tensor) -> None:
    layer = _make(layer_type, seed=3)

    @tf.function
    def run(x: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
        with seeded(layer, seed_tensor(s), 0):
            if isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix)):
                labels = tf.one_hot(tf.range(8) % 2, 2)
                return layer({"images": x, "labels": labels}, training=True)["images"]
            return layer(x, training=True)

    s = tf.constant([4, 2], tf.int64)
    np.testing.assert_array_equal(run(images, s).numpy(), run(images, s).numpy())


def test_a_stateless_seed_generator_creates_no_variable() -> None:
    gen = StatelessSeed(seed_tensor(1))
    assert not [v for v in vars(gen).values() if isinstance(v, (tf.Variable, keras.Variable))]
    assert not np.array_equal(gen.next().numpy(), gen.next().numpy())


def test_unseeded_calls_leave_the_layer_alone(images: tf.Tensor) -> None:
    layer = _make(keras.layers.RandomFlip, seed=1)
    own = layer.generator
    with seeded(layer, None, 0):
        assert layer.generator is own


def test_keras_still_has_no_public_per_call_seed_tensor() -> None:
    """Why the private swap exists. If this fails, Keras accepts seed tensors publicly:
    seed the layers through that API and delete ``_keras_seeding``."""
    seed = tf.constant([1, 2])
    with pytest.raises(ValueError, match="seed"):
        keras.random.uniform((2,), seed=seed)
    with pytest.raises(ValueError, match="seed"):
        keras.layers.RandomFlip(seed=seed)
