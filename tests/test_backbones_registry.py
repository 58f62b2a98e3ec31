"""The backbone registry, the Backbone object, preprocessing layer and ImageNet class names."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras.applications import imagenet_utils

from tlkit.backbones import (
    PREPROCESSING_MODES,
    Backbone,
    BackboneConfig,
    BackboneError,
    ImagePreprocessing,
    LayerGroup,
    _registry,
    decode_predictions,
    get_backbone,
    get_config,
    imagenet_class_names,
    list_backbones,
    register_backbone,
)
from tlkit.errors import TlkitError

REQUIRED = [
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_v2_b0",
    "resnet50",
    "resnet50_v2",
    "densenet121",
    "convnext_tiny",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
]


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Registrations made by a test are removed afterwards."""
    list_backbones()  # make sure the built-ins are in before the snapshot
    before = dict(_registry._REGISTRY)
    yield
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(before)


def tiny_builder(calls: list[dict[str, Any]]) -> Any:
    def build(
        *, weights: Any, input_size: tuple[int, int], include_top: bool, **options: Any
    ) -> Backbone:
        calls.append(
            dict(weights=weights, input_size=input_size, include_top=include_top, **options)
        )
        inputs = keras.Input((*input_size, 3))
        stem = keras.layers.Conv2D(4, 3, name="stem_conv")
        head = keras.layers.Dense(2, name="head_dense")
        x = stem(keras.layers.Rescaling(1 / 255)(inputs))
        x = head(keras.layers.GlobalAveragePooling2D()(x))
        model = keras.Model(inputs, x)
        groups = [LayerGroup("stem", (stem,)), LayerGroup("head", (head,))]
        config = _registry._REGISTRY["tiny_test"].config
        return Backbone(model, config, input_size, 2, groups)

    return build


# --------------------------------------------------------------------------- listing


def test_required_backbones_are_listed_sorted() -> None:
    names = list_backbones()
    assert names == sorted(names)
    assert set(REQUIRED) <= set(names)


def test_wildcards_and_pretrained_filter() -> None:
    assert list_backbones("efficientnet_b[0-3]") == [f"efficientnet_b{i}" for i in range(4)]
    assert list_backbones("mobilenet_v3*") == ["mobilenet_v3_large", "mobilenet_v3_small"]
    assert list_backbones("*50*") == ["resnet50", "resnet50_v2"]
    assert list_backbones("nothing*") == []
    offline = list_backbones(pretrained=True)
    assert offline == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert sorted(offline + list_backbones(pretrained=False)) == list_backbones()
    assert list_backbones("*lite1", pretrained=True) == ["efficientnet_lite1"]
    with pytest.raises(BackboneError, match="pretrained must be"):
        list_backbones(pretrained="yes")  # type: ignore[arg-type]
    with pytest.raises(BackboneError, match="pattern must be a string"):
        list_backbones(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", REQUIRED)
def test_every_config_describes_inputs_weights_and_licence(name: str) -> None:
    config = get_config(name)
    assert config.name == name
    assert "[0, 255]" in config.input_range and "raw RGB pixels" in config.input_range
    assert config.preprocessing in (*PREPROCESSING_MODES, "none")
    assert config.preprocessing_detail
    if config.preprocessing != "none":
        assert config.preprocessing_detail == PREPROCESSING_MODES[config.preprocessing]
    assert config.weights_source and config.weights_license
    assert config.offline_weights == (name in list_backbones(pretrained=True))
    h, w = config.default_input_size
    assert h == w and 224 <= h <= 300
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- registering


def test_register_duplicate_and_override(scratch_registry: None) -> None:
    calls: list[dict[str, Any]] = []
    register_backbone("tiny_test")(tiny_builder(calls))
    assert "tiny_test" in list_backbones()
    assert get_config("tiny_test").family == "custom"
    with pytest.raises(BackboneError, match=r"already registered.*override=True"):
        register_backbone("tiny_test")(tiny_builder(calls))
    with pytest.raises(BackboneError, match="already registered"):
        register_backbone("mobilenet_v2")(tiny_builder(calls))
    config = BackboneConfig(
        name="tiny_test",
        family="Tiny",
        default_input_size=(40, 40),
        preprocessing="none",
        preprocessing_detail="x / 255 (Rescaling layer)",
        weights_source="none",
        weights_license="n/a",
        options=("depth",),
    )
    register_backbone("tiny_test", config=config, override=True)(tiny_builder(calls))
    assert get_config("tiny_test").family == "Tiny"

    bb = get_backbone("tiny_test", weights=None, depth=3)
    assert calls[-1] == dict(weights=None, input_size=(40, 40), include_top=False, depth=3)
    assert bb.name == "tiny_test" and bb.model.input_shape == (None, 40, 40, 3)
    get_backbone("tiny_test", weights=None, input_size=[48, 64])
    assert calls[-1]["input_size"] == (48, 64)


def test_register_rejects_bad_names_and_mismatched_config(scratch_registry: None) -> None:
    with pytest.raises(BackboneError, match="lowercase"):
        register_backbone("My Net")
    config = get_config("mobilenet")
    with pytest.raises(BackboneError, match=r"config\.name is 'mobilenet'"):
        register_backbone("other_net", config=config)


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("typo", ["mobilenetv2", "MobileNetV2", "mobilenet-v2", "mobilenet_2"])
def test_unknown_name_suggests_close_names(typo: str) -> None:
    with pytest.raises(BackboneError) as info:
        get_backbone(typo, weights=None)
    message = str(info.value)
    assert "Did you mean 'mobilenet_v2'" in message
    assert "list_backbones()" in message and "convnext_tiny" in message
    assert isinstance(info.value, TlkitError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"input_size": 16}, BackboneError, "at least 32"),
        ({"input_size": (64,)}, BackboneError, "height, width"),
        ({"input_size": "big"}, BackboneError, "height, width"),
        ({"input_size": (64.0, 64.0)}, BackboneError, "must hold ints"),
        ({"weights": "imagenett"}, BackboneError, "'imagenet', None, or the path"),
        ({"weights": 3}, BackboneError, "'imagenet', None, or the path"),
        ({"weights": "/nonexistent/w.weights.h5"}, FileNotFoundError, "nonexistent"),
        ({"include_top": "yes"}, BackboneError, "include_top must be"),
        (
            {"dropout": 0.1},
            BackboneError,
            r"does not take option\(s\) dropout.*allowed: alpha, pooling",
        ),
        (
            {"include_top": True, "pooling": "avg"},
            BackboneError,
            "allowed: alpha, classifier_activation",
        ),
    ],
)
def test_bad_arguments_are_rejected_before_building(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    kwargs = {"weights": None, **kwargs}
    with pytest.raises(error, match=match):
        get_backbone("mobilenet_v2", **kwargs)


# --------------------------------------------------------------------------- Backbone


def test_freezing_groups_and_batchnorm_inference_mode() -> None:
    bb = get_backbone("mobilenet_v2", weights=None, input_size=32, alpha=0.35)
    assert repr(bb).startswith("Backbone('mobilenet_v2', input_size=(32, 32), feature_dim=1280")
    n_groups = len(bb.layer_groups)
    all_trainable = len(bb.model.trainable_weights)
    bb.unfreeze_last(2)
    assert [g.trainable for g in bb.layer_groups] == [False] * (n_groups - 2) + [True, True]
    assert 0 < len(bb.model.trainable_weights) < all_trainable
    bb.freeze()
    assert bb.model.trainable_weights == []
    bb.unfreeze_last(n_groups)
    assert len(bb.model.trainable_weights) == all_trainable
    with pytest.raises(BackboneError, match=r"n must be an int in \[0, 9\]"):
        bb.unfreeze_last(10)
    with pytest.raises(BackboneError, match=r"no layer group 'neck'.*stem, stage1"):
        bb.group("neck")

    # A frozen group's BatchNorm runs in inference mode even when called with training=True:
    # moving statistics stay put and the output equals the inference output.
    bb.freeze()
    bn = next(
        layer for layer in bb.group("stem") if isinstance(layer, keras.layers.BatchNormalization)
    )
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)
    mean_before = np.asarray(bn.moving_mean).copy()
    out_train = np.asarray(bb.model(x, training=True))
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), mean_before)
    np.testing.assert_allclose(
        out_train, np.asarray(bb.model(x, training=False)), rtol=1e-5, atol=1e-6
    )
    # ... and a trainable BatchNorm does update (so the check above can fail)
    bb.unfreeze_last(n_groups)
    bb.model(x, training=True)
    assert not np.array_equal(np.asarray(bn.moving_mean), mean_before)
    keras.backend.clear_session()


# --------------------------------------------------------------------------- preprocessing layer


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_preprocessing_layer_matches_keras_preprocess_input(mode: str) -> None:
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 5, 7, 3)).astype(np.float32)
    want = imagenet_utils.preprocess_input(x.copy(), mode=mode)
    got = np.asarray(ImagePreprocessing(mode)(x))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)


def test_preprocessing_layer_config_and_errors() -> None:
    layer = ImagePreprocessing("caffe", name="prep")
    clone = ImagePreprocessing.from_config(layer.get_config())
    assert clone.mode == "caffe" and clone.name == "prep"
    with pytest.raises(ValueError, match=r"mode must be one of \['caffe', 'lite', 'tf', 'torch'\]"):
        ImagePreprocessing("inception")
    # caffe really swaps to BGR: a pure red pixel becomes (0 - 103.939, 0 - 116.779, 255 - 123.68)
    red = np.array([[[[255.0, 0.0, 0.0]]]], dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(ImagePreprocessing("caffe")(red)).ravel(),
        [-103.939, -116.779, 131.32],
        rtol=1e-5,
    )


# --------------------------------------------------------------------------- ImageNet names


def test_imagenet_class_names_are_shipped() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and all(isinstance(n, str) and n for n in names)
    assert names[0] == "tench, Tinca tinca"
    assert names[281] == "tabby, tabby cat" and names[285] == "Egyptian cat"
    assert names[504] == "coffee mug" and names[967] == "espresso" and names[968] == "cup"
    assert names[652] == "military uniform" and names[999].startswith("toilet tissue")
    names[0] = "changed"
    assert imagenet_class_names()[0] == "tench, Tinca tinca"  # a copy each time


def test_decode_predictions() -> None:
    probs = np.full((2, 1000), 1e-4)
    probs[0, [281, 285, 5]] = [0.5, 0.3, 0.1]
    probs[1, 967] = 0.9
    top = decode_predictions(probs, top=3)
    assert [i for i, _, _ in top[0]] == [281, 285, 5]
    assert top[0][0] == (281, "tabby, tabby cat", 0.5)
    assert top[1][0][:2] == (967, "espresso") and len(top[1]) == 3
    assert decode_predictions(probs[1])[0][0][0] == 967  # a single row is a batch of one
    with pytest.raises(ValueError, match=r"shape \(batch, 1000\), got \(2, 10\)"):
        decode_predictions(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="top must be"):
        decode_predictions(probs, top=0)


def test_imagenet_classes_file_is_package_data() -> None:
    import tlkit.backbones

    path = Path(tlkit.backbones.__file__).with_name("imagenet_classes.txt")
    assert path.is_file() and len(path.read_text("utf-8").splitlines()) == 1000
