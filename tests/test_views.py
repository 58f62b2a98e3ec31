"""Finite augmentation views (tlkit.augment.Views) and test-time augmentation over them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlkit import FineTuner
from tlkit.augment import VIEW_SETS, AugmentationPipeline, Views
from tlkit.backbones import get_backbone
from tlkit.errors import ArgumentTypeError, InvalidArgumentError
from tlkit.protocols import Augmenter


def asymmetric(n: int = 2, size: int = 6) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_views_are_exact() -> None:
    x = asymmetric()
    flip = Views("flip")
    np.testing.assert_array_equal(flip.view(x, 0), x)
    np.testing.assert_array_equal(flip.view(x, 1), x[:, :, ::-1])
    dihedral = Views("dihedral")
    got = [np.asarray(v) for v in dihedral.all_views(x)]
    expected = {
        "identity": x, "rot90": np.rot90(x, 1, (1, 2)), "rot180": np.rot90(x, 2, (1, 2)),
        "rot270": np.rot90(x, 3, (1, 2)), "hflip": x[:, :, ::-1], "vflip": x[:, ::-1],
        "transpose": x.transpose(0, 2, 1, 3),
        "transverse": np.rot90(x, 2, (1, 2)).transpose(0, 2, 1, 3),
    }  # fmt: skip
    for name, image in zip(dihedral.names, got, strict=True):
        np.testing.assert_array_equal(image, expected[name])
    assert len({im.tobytes() for im in got}) == 8  # the 8 symmetries of the square, distinct
    crops = Views("crops", crop_fraction=0.5)
    corner = np.asarray(crops.view(np.arange(16, dtype="float32").reshape(1, 4, 4, 1), 1))
    assert corner.shape == (1, 4, 4, 1) and corner.max() <= 5.0  # the top-left 2x2, enlarged
    with pytest.raises(InvalidArgumentError, match="square"):
        dihedral.view(np.zeros((1, 4, 6, 3), "float32"), 1)


def test_views_config_protocol_and_errors() -> None:
    v = Views(["identity", "vflip"], seed=3)
    assert Views.from_config(v.get_config()) == v
    assert isinstance(v, Augmenter) and not v.mixes_labels
    assert Views("identity").layers == ()  # the identity alone augments nothing
    assert AugmentationPipeline.views("dihedral") == Views("dihedral")
    assert repr(Views("flip")) == "Views('flip')" and set(VIEW_SETS) >= {"flip", "dihedral"}
    x = asymmetric(4)
    a = np.asarray(v.apply(x, seed=7)[0])
    np.testing.assert_array_equal(a, np.asarray(v.apply(x, seed=7)[0]))  # stateless
    for i in range(4):  # each image is one of its views
        assert any(np.array_equal(a[i], np.asarray(w)[i]) for w in v.all_views(x))
    with pytest.raises(InvalidArgumentError):
        Views("spin")
    with pytest.raises(InvalidArgumentError):
        Views(["hflip", "hflip"])
    with pytest.raises(ArgumentTypeError):
        Views(3)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tuner() -> FineTuner:
    keras.utils.set_random_seed(0)
    bb = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(4,))
    return FineTuner(bb, class_names=["a", "b", "c"], seed=0, verbose=0)


def test_tta_averages_probabilities_over_the_views(tuner: FineTuner) -> None:
    x = asymmetric(3, 32)
    plain = tuner.predict(x).probabilities
    np.testing.assert_allclose(
        tuner.predict(x, tta=Views("identity")).probabilities, plain, atol=1e-6
    )
    mirrored = tuner.predict(x[:, :, ::-1]).probabilities
    np.testing.assert_allclose(tuner.predict(x, tta="flip").probabilities, (plain + mirrored) / 2,
                               atol=1e-6)  # fmt: skip
    assert not np.allclose(plain, mirrored, atol=1e-6)  # the check above is not vacuous
    symmetric = (x + x[:, :, ::-1]) / 2
    np.testing.assert_allclose(
        tuner.predict(symmetric, tta="flip").probabilities,
        tuner.predict(symmetric).probabilities,
        atol=1e-6,
    )
    labels = np.array([0, 1, 2])
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(2)
    assert tuner.evaluate(ds, tta="flip")["loss"] != tuner.evaluate(ds)["loss"]
    with pytest.raises(ArgumentTypeError, match="tta"):
        tuner.predict(x, tta=2)
