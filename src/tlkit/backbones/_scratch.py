"""``scratch_cnn``: the small convolutional network trained from scratch, the study's baseline.

Not pretrained (no ImageNet weights exist for it). Architecture, for an input
of raw RGB pixels in [0, 255]: rescale to [0, 1]; then one block per entry of
``widths`` (default 32, 64, 128, 256), each a 3x3 convolution, batch
normalisation, ReLU and 2x2 max pooling; then global average pooling. The first
convolution moves ``stem_stride`` pixels at a time (default 2, as the stems of
ResNet, MobileNet and EfficientNet do). About 390,000 weights with the default
widths; 0.06 billion multiply-adds per 128 x 128 image with the default stride,
0.24 billion with ``stem_stride=1``.

Why a strided stem: on a CPU this network's cost is its arithmetic, not its
input pipeline. With ``stem_stride=1`` every block runs at 4x the resolution:
a training step of 32 images at 160 x 160 took 0.64 s on 2 quiet cores against
0.20 s with the stride-2 stem (3.2x; an epoch of the study's 1,835 ELPV images
about 37 s against 11 s; ``python benchmarks/scratch_cnn.py --speed --image-size
160``). Within the same time the strided network trains about three times as
many epochs, which matters more on a few hundred images than the finest
resolution (measured in the "Fine-tuning" guide).

Batch normalisation keeps its moving statistics with momentum 0.9 (PyTorch's
default), not Keras's 0.99: a few hundred photos give 6-10 steps an epoch, and
after 140 steps at 0.99 the statistics used at inference still hold a quarter
of their initial values, so a model that trains well can predict one class, or
miss the rare ones, when evaluated. Measured with 20 epochs at 128 px (stem stride 1), light
augmentation, seed 0: on a 300-image ELPV sample, 0.99 never predicted the two
middle classes (accuracy 0.667, balanced accuracy 0.298) and 0.9 reached
0.707 / 0.359; on the ants-and-bees photos 0.464 / 0.506 (the majority
baseline's level) against 0.686 / 0.697 (``benchmarks/scratch_cnn.py``; the "Fine-tuning" guide).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from tlkit._validation import check_int
from tlkit.backbones._backbone import Backbone, BackboneConfig, LayerGroup, load_weights_file
from tlkit.backbones._registry import register_backbone
from tlkit.errors import ArgumentTypeError, BackboneError, InvalidArgumentError

__all__: list[str] = []

#: Momentum of the moving statistics of every batch-normalisation layer (see above).
BN_MOMENTUM = 0.9

SCRATCH_CONFIG = BackboneConfig(
    name="scratch_cnn",
    family="SmallCNN",
    default_image_size=(128, 128),
    preprocessing="none",
    preprocessing_detail="x / 255 inside the model, to [0, 1]",
    weights_source="none: trained from scratch",
    weights_license="n/a",
    offline_weights=False,
    options=("widths", "stem_stride"),
)


@register_backbone("scratch_cnn", config=SCRATCH_CONFIG, weights_available=lambda: False)
def scratch_cnn(
    weights: str | None,
    image_size: tuple[int, int],
    include_top: bool,
    pooling: str | None = "avg",
    widths: Sequence[int] = (32, 64, 128, 256),
    stem_stride: int = 2,
    **_: Any,
) -> Backbone:
    """Build the scratch CNN; ``weights`` must be None or a local weights file."""
    if weights == "imagenet":
        raise BackboneError(  # no weights exist for it: not a bad value of weights as such
            "scratch_cnn has no pretrained weights: pass weights=None (FineTuner.scratch_cnn does)"
        )
    if include_top:
        raise InvalidArgumentError(
            "scratch_cnn has no ImageNet classifier: use include_top=False", argument="include_top"
        )
    if not isinstance(widths, (tuple, list)):
        raise ArgumentTypeError(
            f"widths must be a tuple or list of positive ints, got {widths!r}", argument="widths"
        )
    if not widths:
        raise InvalidArgumentError(
            "widths must hold at least one positive int, got an empty sequence", argument="widths"
        )
    widths = [check_int("widths[]", w, minimum=1) for w in widths]
    stem_stride = check_int("stem_stride", stem_stride, minimum=1, maximum=4)
    h, w = image_size
    if min(h, w) < stem_stride * 2 ** len(widths):
        raise InvalidArgumentError(
            f"image_size {image_size} is too small for a stride-{stem_stride} stem and "
            f"{len(widths)} pooling blocks: give at least {stem_stride * 2 ** len(widths)} px, "
            "fewer widths or a smaller stem_stride",
            argument="image_size",
        )
    inputs = keras.Input((h, w, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, width in enumerate(widths, start=1):
        stride = stem_stride if i == 1 else 1
        x = keras.layers.Conv2D(
            width, 3, strides=stride, padding="same", use_bias=False, name=f"block{i}_conv"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name="scratch_cnn")
    if weights is not None:
        load_weights_file(model, weights, "scratch_cnn")
    groups = []
    for i in range(1, len(widths) + 1):
        layers = tuple(model.get_layer(f"block{i}_{part}") for part in ("conv", "bn"))
        groups.append(LayerGroup(f"block{i}", layers))
    return Backbone(
        model=model,
        config=SCRATCH_CONFIG,
        image_size=(h, w),
        feature_dim=int(widths[-1]),
        layer_groups=groups,
        include_top=False,
        weights=weights,
    )
