"""Backbones from ``keras.applications``, with their preprocessing baked into the model.

Every model built here takes raw RGB pixels (floats in [0, 255]). Families whose
Keras application expects ``preprocess_input`` first (MobileNet v1/v2,
ResNet50/ResNet50V2, DenseNet121) get an :class:`ImagePreprocessing` layer
right after the input; the others (MobileNetV3, EfficientNet, EfficientNetV2,
ConvNeXt) already preprocess inside the Keras model, and their
``preprocess_input`` is a pass-through.

ImageNet weights: each backbone's :class:`BackboneConfig` pins the files Keras
would download (name, URL, hash); :mod:`tlkit.backbones._keras_weights` finds
the file in the Keras cache or downloads it with ``keras.utils.get_file``, and
the application, built with ``weights=None``, loads it with ``load_weights``.
Offline, a missing file raises :class:`~tlkit.errors.WeightsUnavailableError`
naming the exact file, the folder to put it in, its URL, and the backbones
whose weights work offline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tlkit._validation import check_number
from tlkit.backbones._backbone import Backbone, BackboneConfig, group_layers, load_weights_file
from tlkit.backbones._errors import BackboneError
from tlkit.backbones._keras_weights import KERAS_WEIGHTS, fetch_weights, load_imagenet_weights
from tlkit.backbones._layers import PREPROCESSING_MODES, ImagePreprocessing
from tlkit.backbones._registry import register_backbone

__all__ = ["KERAS_APP_CONSTRUCTORS"]

_KERAS_SOURCE = "keras.applications, downloaded into the Keras cache on first use"
_IN_MODEL = "inside the Keras model: "

# ---------------------------------------------------------------------------
# Layer groups per family


def _stage_map(blocks_per_stage: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    block = 0
    for stage, count in enumerate(blocks_per_stage, start=1):
        for _ in range(count):
            out[block] = stage
            block += 1
    return out


def _rules(
    stem: str, blocks: list[tuple[str, Callable[[re.Match[str]], str]]], head: str
) -> Callable[[str], str | None]:
    stem_re, head_re = re.compile(stem), re.compile(head)
    block_res = [(re.compile(p), f) for p, f in blocks]

    def classify(name: str) -> str | None:
        for pattern, label in block_res:
            m = pattern.match(name)
            if m:
                return label(m)
        if head_re.match(name):
            return "head"
        if stem_re.match(name):
            return "stem"
        return None

    return classify


_HEAD_TOP = r"global_(average|max)_pooling|avg_pool$|max_pool$|predictions$|dropout|flatten"

_MOBILENET_V1_STAGES = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 4, 9: 4, 10: 4, 11: 4}
_MOBILENET_V1_STAGES.update({12: 5, 13: 5})
_MOBILENET_V2_STAGES = _stage_map([1, 2, 3, 4, 3, 3, 1])
_MOBILENET_V3_SMALL_STAGES = _stage_map([1, 2, 3, 2, 3])
_MOBILENET_V3_LARGE_STAGES = _stage_map([1, 2, 3, 4, 2, 3])

_CLASSIFIERS: dict[str, Callable[[str], str | None]] = {
    "mobilenet": _rules(
        r"conv1",
        [(r"conv_(?:dw|pw|pad)_(\d+)", lambda m: f"stage{_MOBILENET_V1_STAGES[int(m[1])]}")],
        _HEAD_TOP + r"|reshape|conv_preds",
    ),
    "mobilenet_v2": _rules(
        r"Conv1|bn_Conv1",
        [
            (r"expanded_conv_", lambda m: "stage1"),
            (r"block_(\d+)_", lambda m: f"stage{_MOBILENET_V2_STAGES[int(m[1])]}"),
        ],
        _HEAD_TOP + r"|Conv_1|out_relu",
    ),
    "mobilenet_v3_small": _rules(
        r"rescaling|conv$|conv_bn$",
        [
            (r"expanded_conv_(\d+)_", lambda m: f"stage{_MOBILENET_V3_SMALL_STAGES[int(m[1])]}"),
            (r"expanded_conv_", lambda m: "stage1"),
        ],
        _HEAD_TOP + r"|conv_1|conv_2|logits|Logits",
    ),
    "mobilenet_v3_large": _rules(
        r"rescaling|conv$|conv_bn$",
        [
            (r"expanded_conv_(\d+)_", lambda m: f"stage{_MOBILENET_V3_LARGE_STAGES[int(m[1])]}"),
            (r"expanded_conv_", lambda m: "stage1"),
        ],
        _HEAD_TOP + r"|conv_1|conv_2|logits|Logits",
    ),
    "efficientnet": _rules(
        r"rescaling|normalization|stem_",
        [(r"block(\d+)[a-z]_", lambda m: f"stage{m[1]}")],
        _HEAD_TOP + r"|top_",
    ),
    "resnet": _rules(
        r"conv1_|pool1_",
        [(r"conv(\d)_block", lambda m: f"stage{int(m[1]) - 1}")],
        _HEAD_TOP + r"|post_",
    ),
    "densenet": _rules(
        r"conv1/|conv1_|pool1",
        [
            (r"conv(\d)_block", lambda m: f"stage{int(m[1]) - 1}"),
            (r"pool(\d)_", lambda m: f"stage{int(m[1]) - 1}"),
        ],
        _HEAD_TOP + r"|bn$|relu$",
    ),
    "convnext": _rules(
        r".*(prestem|_stem)",
        [
            (r".*_stage_(\d+)_", lambda m: f"stage{int(m[1]) + 1}"),
            (r".*_downsampling_block_(\d+)", lambda m: f"stage{int(m[1]) + 1}"),
        ],
        _HEAD_TOP + r"|layer_normalization|.*_head_",
    ),
}

# ---------------------------------------------------------------------------
# Specs

_ALPHAS = {
    "mobilenet": (0.25, 0.5, 0.75, 1.0),
    "mobilenet_v2": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    "mobilenet_v3_small": (0.75, 1.0),
    "mobilenet_v3_large": (0.75, 1.0),
}


@dataclass(frozen=True)
class _AppSpec:
    name: str
    constructor: str
    family: str
    size: int
    mode: str  # "tf", "torch", "caffe", or "none" (the Keras model preprocesses itself)
    in_model: str  # for mode "none": what the Keras model does inside
    groups: str
    license: str
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        return ("alpha",) if self.name in _ALPHAS else ()

    def config(self) -> BackboneConfig:
        detail = (
            PREPROCESSING_MODES[self.mode] if self.mode != "none" else _IN_MODEL + self.in_model
        )
        return BackboneConfig(
            name=self.name,
            family=self.family,
            default_image_size=(self.size, self.size),
            preprocessing=self.mode,
            preprocessing_detail=detail,
            weights_source=_KERAS_SOURCE,
            weights_license=self.license,
            offline_weights=False,
            options=self.options,
            weights_files=KERAS_WEIGHTS[self.name],
        )


_APACHE = "Apache-2.0 (Google)"
_SPECS = [
    _AppSpec("mobilenet", "MobileNet", "MobileNet", 224, "tf", "", "mobilenet", _APACHE),
    _AppSpec("mobilenet_v2", "MobileNetV2", "MobileNetV2", 224, "tf", "", "mobilenet_v2", _APACHE),
    _AppSpec(
        "mobilenet_v3_small", "MobileNetV3Small", "MobileNetV3", 224, "none",
        "x / 127.5 - 1 (Rescaling layer)", "mobilenet_v3_small", _APACHE,
        (("include_preprocessing", True),),
    ),
    _AppSpec(
        "mobilenet_v3_large", "MobileNetV3Large", "MobileNetV3", 224, "none",
        "x / 127.5 - 1 (Rescaling layer)", "mobilenet_v3_large", _APACHE,
        (("include_preprocessing", True),),
    ),
    *(
        _AppSpec(
            f"efficientnet_b{i}", f"EfficientNetB{i}", "EfficientNet", size, "none",
            "x / 255, then ImageNet mean/std normalisation (Rescaling + Normalization layers)",
            "efficientnet", _APACHE,
        )
        for i, size in enumerate((224, 240, 260, 300))
    ),
    _AppSpec(
        "efficientnet_v2_b0", "EfficientNetV2B0", "EfficientNetV2", 224, "none",
        "x / 127.5 - 1 (Rescaling layer)", "efficientnet", _APACHE,
        (("include_preprocessing", True),),
    ),
    _AppSpec(
        "resnet50", "ResNet50", "ResNet", 224, "caffe", "", "resnet",
        "MIT (Kaiming He's original Caffe ResNet-50, ported by Keras)",
    ),
    _AppSpec("resnet50_v2", "ResNet50V2", "ResNetV2", 224, "tf", "", "resnet", _APACHE),
    _AppSpec(
        "densenet121", "DenseNet121", "DenseNet", 224, "torch", "", "densenet",
        "BSD-3-Clause (original DenseNet release, ported by Keras)",
    ),
    _AppSpec(
        "convnext_tiny", "ConvNeXtTiny", "ConvNeXt", 224, "none",
        "x / 255, then ImageNet mean/std normalisation (Normalization layer)", "convnext",
        "MIT (Meta AI ConvNeXt release, ported by Keras)",
        (("include_preprocessing", True),),
    ),
]  # fmt: skip


def _check_alpha(spec: _AppSpec, alpha: Any, weights: str | None) -> float:
    alpha = check_number(f"{spec.name}: alpha", alpha, low=0, low_open=True, error=BackboneError)
    if weights == "imagenet" and alpha not in _ALPHAS[spec.name]:
        raise BackboneError(
            f"{spec.name}: ImageNet weights exist for alpha in {list(_ALPHAS[spec.name])}, "
            f"got {alpha}; pass one of those or weights=None"
        )
    return alpha


def _imagenet_file(
    spec: _AppSpec, config: BackboneConfig, size: tuple[int, int], include_top: bool, alpha: Any
) -> str:
    """Path of the ImageNet weights file for these options (downloaded if need be)."""
    h, w = size
    wf = config.weights_file(
        include_top=include_top,
        alpha=alpha if spec.name in _ALPHAS else None,
        image_size=h if h == w else None,
    )
    if wf is None:  # pragma: no cover - alpha and size are checked before
        raise BackboneError(f"{spec.name}: no ImageNet weights file for alpha={alpha}, size {size}")
    return fetch_weights(spec.name, wf)


def _build_app(
    spec: _AppSpec,
    config: BackboneConfig,
    *,
    weights: str | None,
    image_size: tuple[int, int],
    include_top: bool,
    pooling: str | None = "avg",
    classifier_activation: str | None = "softmax",
    alpha: float = 1.0,
) -> Backbone:
    h, w = image_size
    if include_top and weights == "imagenet" and image_size != (spec.size, spec.size):
        raise BackboneError(
            f"{spec.name}: include_top=True with ImageNet weights needs image_size="
            f"{spec.size} (got {image_size}); use include_top=False for other sizes"
        )
    kwargs: dict[str, Any] = dict(spec.extra)
    if spec.name in _ALPHAS:
        kwargs["alpha"] = alpha = _check_alpha(spec, alpha, weights)
    if include_top:
        kwargs["classifier_activation"] = classifier_activation
    else:
        kwargs["pooling"] = pooling
    # Offline without the file: fail before building anything.
    imagenet = (
        _imagenet_file(spec, config, image_size, include_top, alpha)
        if weights == "imagenet"
        else None
    )

    inputs = keras.Input((h, w, 3), name="pixels")
    x = (
        inputs
        if spec.mode == "none"
        else ImagePreprocessing(spec.mode, name="preprocessing")(inputs)
    )
    constructor = getattr(keras.applications, spec.constructor)
    app = constructor(
        include_top=include_top, weights=None, input_tensor=x, input_shape=(h, w, 3), **kwargs
    )
    if imagenet is not None:
        load_imagenet_weights(app, spec.name, spec.family, imagenet)
    model = keras.Model(app.inputs[0], app.outputs[0], name=spec.name)
    if weights not in (None, "imagenet"):
        load_weights_file(model, weights, spec.name)

    classify = _CLASSIFIERS[spec.groups]
    groups = group_layers(
        model,
        classify,
        skip=lambda layer: isinstance(layer, (keras.layers.InputLayer, ImagePreprocessing)),
    )
    if include_top:
        feature_dim = int(model.get_layer(index=-1).input.shape[-1])
        # the layer feeding the classifier can be a reshape/dropout; find the pooled width
        for layer in reversed(model.layers):
            if isinstance(
                layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
            ):
                feature_dim = int(layer.output.shape[-1])
                break
    else:
        feature_dim = int(model.output.shape[-1])
    return Backbone(
        model=model,
        config=config,
        image_size=(h, w),
        feature_dim=feature_dim,
        layer_groups=groups,
        include_top=include_top,
        weights=weights,
    )


def _register(spec: _AppSpec) -> None:
    config = spec.config()

    def builder(**kwargs: Any) -> Backbone:
        return _build_app(spec, config, **kwargs)

    builder.__name__ = spec.name
    builder.__doc__ = f"Build {spec.family} ({spec.constructor} from keras.applications)."
    register_backbone(spec.name, config=config)(builder)


for _spec in _SPECS:
    _register(_spec)

KERAS_APP_CONSTRUCTORS: dict[str, str] = {s.name: s.constructor for s in _SPECS}
