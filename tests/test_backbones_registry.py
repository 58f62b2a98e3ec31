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
    ImagePreprocessing,
    LayerGroup,
    _registry,
    backbone_config,
    decode_predictions,
    get_backbone,
    imagenet_class_names,
    list_backbones,
    register_backbone,
)
from tlkit.errors import (
    ArgumentTypeError,
    BackboneError,
    InvalidArgumentError,
    TlkitError,
    WeightsFileError,
)

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
        *, weights: Any, image_size: tuple[int, int], include_top: bool, **options: Any
    ) -> Backbone:
        calls.append(
            dict(weights=weights, image_size=image_size, include_top=include_top, **options)
        )
        inputs = keras.Input((*image_size, 3))
        stem = keras.layers.Conv2D(4, 3, name="stem_conv")
        head = keras.layers.Dense(2, name="head_dense")
        x = stem(keras.layers.Rescaling(1 / 255)(inputs))
        x = head(keras.layers.GlobalAveragePooling2D()(x))
        model = keras.Model(inputs, x)
        groups = [LayerGroup("stem", (stem,)), LayerGroup("head", (head,))]
        config = _registry._REGISTRY["tiny_test"].config
        return Backbone(model, config, image_size, 2, groups)

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
    assert list_backbones("*lite1", pretrained=np.bool_(True)) == ["efficientnet_lite1"]
    # wrong types are TypeErrors (ArgumentTypeError) since issue 11
    with pytest.raises(ArgumentTypeError, match="pretrained must be True or False"):
        list_backbones(pretrained="yes")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="pattern must be a string"):
        list_backbones(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", REQUIRED)
def test_every_config_describes_inputs_weights_and_licence(name: str) -> None:
    config = backbone_config(name)
    assert config.name == name
    assert "[0, 255]" in config.input_range and "raw RGB pixels" in config.input_range
    assert config.preprocessing in (*PREPROCESSING_MODES, "none")
    assert config.preprocessing_detail
    if config.preprocessing != "none":
        assert config.preprocessing_detail == PREPROCESSING_MODES[config.preprocessing]
    assert config.weights_source and config.weights_license
    assert config.offline_weights == (name in list_backbones(pretrained=True))
    h, w = config.default_image_size
    assert h == w and 224 <= h <= 300
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- registering


def test_register_duplicate_and_override(scratch_registry: None) -> None:
    calls: list[dict[str, Any]] = []
    register_backbone("tiny_test")(tiny_builder(calls))
    assert "tiny_test" in list_backbones()
    assert backbone_config("tiny_test").family == "custom"
    with pytest.raises(BackboneError, match=r"already registered.*override=True"):
        register_backbone("tiny_test")(tiny_builder(calls))
    with pytest.raises(BackboneError, match="already registered"):
        register_backbone("mobilenet_v2")(tiny_builder(calls))
    config = BackboneConfig(
        name="tiny_test",
        family="Tiny",
        default_image_size=(40, 40),
        preprocessing="none",
        preprocessing_detail="x / 255 (Rescaling layer)",
        weights_source="none",
        weights_license="n/a",
        options=("depth",),
    )
    register_backbone("tiny_test", config=config, override=True)(tiny_builder(calls))
    assert backbone_config("tiny_test").family == "Tiny"

    bb = get_backbone("tiny_test", weights=None, depth=3)
    assert calls[-1] == dict(weights=None, image_size=(40, 40), include_top=False, depth=3)
    assert bb.name == "tiny_test" and bb.model.input_shape == (None, 40, 40, 3)
    get_backbone("tiny_test", weights=None, image_size=[48, 64])
    assert calls[-1]["image_size"] == (48, 64)


def test_register_rejects_bad_names_and_mismatched_config(scratch_registry: None) -> None:
    with pytest.raises(InvalidArgumentError, match="lowercase"):
        register_backbone("My Net")
    config = backbone_config("mobilenet")
    with pytest.raises(InvalidArgumentError, match=r"config\.name is 'mobilenet'"):
        register_backbone("other_net", config=config)


@pytest.mark.slow
def test_builders_register_themselves_and_the_registry_imports_none_of_them() -> None:
    """The registry module imports no builder (no circle); importing it still registers them."""
    import ast
    import subprocess
    import sys

    tree = ast.parse(Path(_registry.__file__).read_text(encoding="utf-8"))
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    builders = {"_keras_apps", "_efficientnet_lite", "_scratch"}
    assert not {m for m in imported if m and m.rsplit(".", 1)[-1] in builders}
    assert all("_ensure" not in name for name in vars(_registry))
    # however the user imports, the built-ins are there (a fresh interpreter each way)
    for statement in (
        "from tlkit.backbones._registry import list_backbones, backbone_config",
        "from tlkit.backbones import list_backbones, backbone_config",
        "import tlkit.backbones._registry as r; list_backbones, backbone_config = "
        "r.list_backbones, r.backbone_config",
    ):
        code = f"{statement}; print(len(list_backbones()), backbone_config('scratch_cnn').family)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out == [str(len(list_backbones())), "SmallCNN"], statement


def test_register_checks_its_arguments(scratch_registry: None) -> None:
    with pytest.raises(ArgumentTypeError, match="name must be a string"):
        register_backbone(3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="override must be True or False"):
        register_backbone("tiny_test", override="yes")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="config must be a BackboneConfig"):
        register_backbone("tiny_test", config={"name": "tiny_test"})  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="weights_available must be a function"):
        register_backbone("tiny_test", weights_available=True)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="builder must be callable"):
        register_backbone("tiny_test")("not a function")  # type: ignore[type-var]
    assert "tiny_test" not in list_backbones()


# --------------------------------------------------------------------------- renamed names


def test_input_size_the_old_name_of_image_size_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"does not take option.*input_size"):
        get_backbone("scratch_cnn", weights=None, input_size=48, widths=(4,))
    bb = get_backbone("scratch_cnn", weights=None, image_size=48, widths=(4,))
    assert bb.image_size == (48, 48) and not hasattr(bb, "input_size")
    with pytest.raises(TypeError, match="input_size"):
        Backbone(bb.model, bb.config, input_size=(48, 48), feature_dim=4)  # type: ignore[call-arg]
    keras.backend.clear_session()


def test_default_input_size_the_old_name_of_default_image_size_is_refused() -> None:
    fields = dict(
        name="n", family="F", preprocessing="none", preprocessing_detail="d",
        weights_source="none", weights_license="n/a",
    )  # fmt: skip
    new = BackboneConfig(default_image_size=(40, 48), **fields)
    assert new.default_image_size == (40, 48) and not hasattr(new, "default_input_size")
    with pytest.raises(TypeError, match="default_input_size"):
        BackboneConfig(default_input_size=(40, 48), **fields)  # type: ignore[call-arg]
    assert dataclasses.replace(new, family="G").default_image_size == (40, 48)
    with pytest.raises(TypeError, match=r"missing required argument.*: default_image_size"):
        BackboneConfig(**fields)
    with pytest.raises(TypeError, match=r"missing.*weights_source, weights_license"):
        BackboneConfig("n", "F", (40, 48), "none", "d")


def test_builders_are_called_with_image_size_only(scratch_registry: None) -> None:
    seen: dict[str, Any] = {}

    def old_style(weights: Any, input_size: tuple[int, int], include_top: bool) -> Any:
        seen["old"] = input_size
        return get_backbone("scratch_cnn", weights=None, image_size=input_size, widths=(4,))

    def new_style(weights: Any, image_size: tuple[int, int], include_top: bool) -> Any:
        seen["new"] = image_size
        return get_backbone("scratch_cnn", weights=None, image_size=image_size, widths=(4,))

    def any_style(**kwargs: Any) -> Any:
        seen["any"] = sorted(kwargs)
        return get_backbone(
            "scratch_cnn", weights=None, image_size=kwargs["image_size"], widths=(4,)
        )

    register_backbone("tiny_old")(old_style)
    register_backbone("tiny_new")(new_style)
    register_backbone("tiny_any")(any_style)
    # A builder whose parameter is still named input_size is not looked into: Python refuses.
    with pytest.raises(TypeError, match="image_size"):
        get_backbone("tiny_old", weights=None, image_size=40)
    assert "old" not in seen
    get_backbone("tiny_new", weights=None, image_size=40)
    get_backbone("tiny_any", weights=None, image_size=40)
    assert seen["new"] == (40, 40)
    assert seen["any"] == ["image_size", "include_top", "weights"]
    keras.backend.clear_session()


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("typo", ["mobilenetv2", "MobileNetV2", "mobilenet-v2", "mobilenet_2"])
def test_unknown_name_suggests_close_names(typo: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        get_backbone(typo, weights=None)
    message = str(info.value)
    assert "Did you mean 'mobilenet_v2'" in message
    assert "list_backbones()" in message and "convnext_tiny" in message
    assert isinstance(info.value, TlkitError) and isinstance(info.value, ValueError)
    assert info.value.argument == "name" and not isinstance(info.value, BackboneError)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"image_size": 16},
            InvalidArgumentError,
            r"image_size must be .*each >= 32, got \(16, 16\)",
        ),
        # wrong types are TypeErrors (ArgumentTypeError) since issue 11
        ({"image_size": (64,)}, ArgumentTypeError, "height, width"),
        ({"image_size": "big"}, ArgumentTypeError, "height, width"),
        ({"image_size": (64.0, 64.0)}, ArgumentTypeError, "pair of ints"),
        ({"weights": "imagenett"}, InvalidArgumentError, "'imagenet', None, or the path"),
        ({"weights": 3}, ArgumentTypeError, "'imagenet', None, or the path"),
        # a missing weights file is a WeightsFileError (a TlkitError) since issue 11
        ({"weights": "/nonexistent/w.weights.h5"}, WeightsFileError, "not found.*nonexistent"),
        ({"include_top": "yes"}, ArgumentTypeError, "include_top must be True or False"),
        (
            {"pooling": "mean"},
            InvalidArgumentError,
            "pooling must be one of 'avg', 'max', None, 'blocks'",
        ),
        (
            {"dropout": 0.1},
            InvalidArgumentError,
            r"does not take option\(s\) dropout.*allowed: alpha, pooling",
        ),
        (
            {"include_top": True, "pooling": "avg"},
            InvalidArgumentError,
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
    bb = get_backbone("mobilenet_v2", weights=None, image_size=32, alpha=0.35)
    assert repr(bb).startswith("Backbone('mobilenet_v2', image_size=(32, 32), feature_dim=1280")
    n_groups = len(bb.layer_groups)
    all_trainable = len(bb.model.trainable_weights)
    bb.unfreeze_last(2)
    assert [g.trainable for g in bb.layer_groups] == [False] * (n_groups - 2) + [True, True]
    assert 0 < len(bb.model.trainable_weights) < all_trainable
    bb.freeze()
    assert bb.model.trainable_weights == []
    bb.unfreeze_last(n_groups)
    assert len(bb.model.trainable_weights) == all_trainable
    with pytest.raises(InvalidArgumentError, match=r"n must be an int >= 0 and <= 9, got 10"):
        bb.unfreeze_last(10)
    with pytest.raises(ArgumentTypeError, match="n must be an int"):
        bb.unfreeze_last(True)
    with pytest.raises(InvalidArgumentError, match=r"no layer group 'neck'.*stem, stage1"):
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
    with pytest.raises(
        InvalidArgumentError, match=r"mode must be one of 'caffe', 'lite', 'tf', 'torch'; got"
    ):
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
    with pytest.raises(InvalidArgumentError, match=r"shape \(batch, 1000\), got \(2, 10\)"):
        decode_predictions(np.zeros((2, 10)))
    with pytest.raises(InvalidArgumentError, match=r"top must be an int >= 1 and <= 1000, got 0"):
        decode_predictions(probs, top=0)
    with pytest.raises(ArgumentTypeError, match="top must be an int"):
        decode_predictions(probs, top=2.0)


def test_imagenet_classes_file_is_package_data() -> None:
    import tlkit.backbones

    path = Path(tlkit.backbones.__file__).with_name("imagenet_classes.txt")
    assert path.is_file() and len(path.read_text("utf-8").splitlines()) == 1000
