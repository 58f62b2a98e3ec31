"""The ``scratch_cnn`` backbone: architecture, argument checks, and batch-norm statistics on small data."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tlkit.backbones import get_backbone  # noqa: E402
from tlkit.errors import ArgumentTypeError, BackboneError, InvalidArgumentError  # noqa: E402


def test_default_architecture_and_groups() -> None:
    bb = get_backbone("scratch_cnn", weights=None, image_size=128)
    assert bb.image_size == (128, 128) and bb.feature_dim == 256
    assert [g.name for g in bb.layer_groups] == ["block1", "block2", "block3", "block4"]
    assert 385_000 < bb.model.count_params() < 395_000  # "about 390,000 weights" (docstring)
    out = bb.model(np.zeros((2, 128, 128, 3), "float32"))
    assert tuple(out.shape) == (2, 256)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weights": "imagenet"}, BackboneError, "no pretrained weights"),
        ({"include_top": True}, InvalidArgumentError, "include_top=False"),
        ({"widths": ()}, InvalidArgumentError, "at least one"),
        ({"widths": 32}, ArgumentTypeError, "tuple or list"),
        ({"widths": (8,) * 6, "image_size": 32}, InvalidArgumentError, "6 pooling blocks"),
    ],
)
def test_bad_arguments_name_what_to_change(kwargs: dict, error: type, match: str) -> None:
    kwargs = {"weights": None, "image_size": 64, **kwargs}
    with pytest.raises(error, match=match):
        get_backbone("scratch_cnn", **kwargs)


def test_batchnorm_statistics_track_the_data_within_a_few_small_epochs() -> None:
    """20 training steps (what 3 epochs of 200 photos give) bring the statistics used at
    inference close to the data's. With Keras's default momentum (0.99) 82% of the
    initial values would remain, and the model would predict one class when evaluated."""
    bb = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(8, 16))
    rng = np.random.default_rng(0)
    x = rng.uniform(100, 255, (16, 32, 32, 3)).astype("float32")  # bright: far from mean 0
    conv = keras.Model(bb.model.input, bb.model.get_layer("block1_conv").output)
    target = np.asarray(conv(x)).mean(axis=(0, 1, 2))
    bn = bb.model.get_layer("block1_bn")
    start = np.asarray(bn.moving_mean).copy()
    for _ in range(20):
        bb.model(x, training=True)
    now = np.asarray(bn.moving_mean)
    remaining = np.abs(now - target).sum() / np.abs(start - target).sum()
    assert remaining < 0.25, f"{remaining:.0%} of the initial moving mean remains after 20 steps"


def test_the_stem_is_strided_by_default_and_can_be_plain() -> None:
    """Stride 2 in the first convolution quarters every block's pixels (the CPU cost)."""
    strided = get_backbone("scratch_cnn", weights=None, image_size=64, widths=(8, 16))
    plain = get_backbone("scratch_cnn", weights=None, image_size=64, widths=(8, 16), stem_stride=1)
    assert strided.options.get("stem_stride", 2) == 2 and plain.options["stem_stride"] == 1
    for bb, side in ((strided, 16), (plain, 32)):
        pooled = bb.model.get_layer("block1_pool").output
        assert tuple(pooled.shape[1:3]) == (side, side)
    assert strided.model.count_params() == plain.model.count_params()  # same weights, fewer pixels


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stem_stride": 0}, "stem_stride"),
        ({"stem_stride": 5}, "stem_stride"),
        ({"image_size": 32, "widths": (8,) * 5}, "at least 64 px"),
    ],
)
def test_bad_stem_arguments_name_what_to_change(kwargs: dict, match: str) -> None:
    kwargs = {"weights": None, "image_size": 64, **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        get_backbone("scratch_cnn", **kwargs)
