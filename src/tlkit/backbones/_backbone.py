"""What the registry hands out: :class:`BackboneConfig`, :class:`Backbone`, :class:`LayerGroup`.

Plain data classes with no Keras import at module level, so the registry can
describe every backbone without building one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlkit._validation import check_image_size, check_int
from tlkit.errors import ArgumentTypeError, InvalidArgumentError, WeightsFileError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "RAW_PIXELS",
    "Backbone",
    "BackboneConfig",
    "LayerGroup",
    "WeightsFile",
    "block_taps",
    "group_layers",
    "load_weights_file",
    "pool_blocks",
]

RAW_PIXELS = "raw RGB pixels, floats in [0, 255], channels last"
_REQUIRED: Any = object()  # a BackboneConfig argument with no default


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained weights file: its name in the cache, where it downloads from, its hash.

    Attributes
    ----------
    fname
        File name inside the Keras cache folder (``$KERAS_HOME/models``).
    origin
        URL Keras downloads it from.
    file_hash
        MD5 (32 hex digits) or SHA-256 (64) of the file, checked after a
        download and before a cached copy is used; None where Keras pins none.
    include_top
        Whether the file holds the ImageNet classifier too.
    alpha
        Width multiplier the file is for (MobileNets), None for any.
    image_size
        Side in pixels the file is for (MobileNet v1/v2 ship one per size), None for any.

    Examples
    --------
    >>> from tlkit.backbones import backbone_config
    >>> f = backbone_config("resnet50").weights_file(include_top=False)
    >>> f.fname, f.file_hash
    ('resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5', '4d473c1dd8becc155b73f8504c6f6626')
    """

    fname: str
    origin: str
    file_hash: str | None = None
    include_top: bool = False
    alpha: float | None = None
    image_size: int | None = None


@dataclass(frozen=True, init=False)
class BackboneConfig:
    """What a registered backbone is, without building it.

    Attributes
    ----------
    name
        Registry name, e.g. ``"mobilenet_v2"``.
    family
        Architecture family, e.g. ``"MobileNetV2"``.
    default_image_size
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
    weights_files
        The :class:`WeightsFile` entries (name, URL, hash) of the ImageNet
        weights downloaded through ``keras.utils.get_file``; empty for
        backbones whose weights come from elsewhere.
    block_taps
        A regular expression: the layers whose outputs ``pooling="blocks"``
        average-pools (each block's expansion activation in the inverted-residual
        families, each block's output in ResNets). None: the output of every
        layer group but the head.

    Examples
    --------
    >>> from tlkit.backbones import BackboneConfig
    >>> cfg = BackboneConfig("tiny_cnn", "TinyCNN", (64, 64), "none", "x / 255", "none", "n/a")
    >>> cfg.default_image_size, cfg.offline_weights
    ((64, 64), False)
    """

    name: str
    family: str
    default_image_size: tuple[int, int]
    preprocessing: str
    preprocessing_detail: str
    weights_source: str
    weights_license: str
    offline_weights: bool = False
    options: tuple[str, ...] = ()
    input_range: str = RAW_PIXELS
    weights_files: tuple[WeightsFile, ...] = ()
    block_taps: str | None = None

    def __init__(
        self,
        name: str,
        family: str,
        default_image_size: tuple[int, int] | None = None,
        preprocessing: str = _REQUIRED,
        preprocessing_detail: str = _REQUIRED,
        weights_source: str = _REQUIRED,
        weights_license: str = _REQUIRED,
        offline_weights: bool = False,
        options: tuple[str, ...] = (),
        input_range: str = RAW_PIXELS,
        weights_files: tuple[WeightsFile, ...] = (),
        block_taps: str | None = None,
    ) -> None:
        size = default_image_size
        given = dict(
            preprocessing=preprocessing,
            preprocessing_detail=preprocessing_detail,
            weights_source=weights_source,
            weights_license=weights_license,
        )
        missing = [k for k, v in given.items() if v is _REQUIRED] + (
            ["default_image_size"] if size is None else []
        )
        if missing:  # what Python says for a missing argument, as a tlkit error
            raise ArgumentTypeError(
                f"BackboneConfig({name!r}) is missing required argument(s): {', '.join(missing)}"
            )
        size = check_image_size("default_image_size", size)
        values = dict(
            name=name,
            family=family,
            default_image_size=size,
            preprocessing=preprocessing,
            preprocessing_detail=preprocessing_detail,
            weights_source=weights_source,
            weights_license=weights_license,
            offline_weights=offline_weights,
            options=tuple(options),
            input_range=input_range,
            weights_files=tuple(weights_files),
            block_taps=block_taps,
        )
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def weights_file(
        self, *, include_top: bool, alpha: float | None = None, image_size: int | None = None
    ) -> WeightsFile | None:
        """The :class:`WeightsFile` for these build options, or None when there is none.

        ``image_size`` picks among per-size files (MobileNet v1/v2); a size
        with no file of its own gets the file for the default size, as Keras does.
        """
        fits = [
            f
            for f in self.weights_files
            if f.include_top == include_top and (f.alpha is None or f.alpha == alpha)
        ]
        for wanted in (image_size, self.default_image_size[0]):
            for f in fits:
                if f.image_size is None or f.image_size == wanted:
                    return f
        return None


@dataclass(frozen=True)
class LayerGroup:
    """A named, ordered block of layers: the unit that fine-tuning schedules freeze/unfreeze.

    Iterating yields the Keras layers. Keras 3 runs a ``BatchNormalization``
    layer in inference mode (moving statistics, no updates) whenever its
    ``trainable`` is False, so freezing a group also freezes its BN statistics.
    Recompile the model after changing ``trainable``.

    Examples
    --------
    >>> import keras
    >>> group = LayerGroup("stem", (keras.layers.Dense(2),))
    >>> group.set_trainable(False); group.trainable, len(group)
    (False, 1)
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


@dataclass(eq=False, repr=False, init=False)
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
    image_size
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

    Examples
    --------
    >>> from tlkit.backbones import get_backbone
    >>> bb = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(4,))
    >>> bb.image_size, bb.feature_dim, [g.name for g in bb.layer_groups]
    ((32, 32), 4, ['block1'])
    """

    model: keras.Model
    config: BackboneConfig
    image_size: tuple[int, int]
    feature_dim: int
    layer_groups: list[LayerGroup] = field(default_factory=list)
    include_top: bool = False
    weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        model: keras.Model,
        config: BackboneConfig,
        image_size: tuple[int, int] | None = None,
        feature_dim: int | None = None,
        layer_groups: list[LayerGroup] | None = None,
        include_top: bool = False,
        weights: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        size = image_size
        if size is None or feature_dim is None:
            raise InvalidArgumentError(
                "Backbone needs image_size and feature_dim",
                argument="image_size" if size is None else "feature_dim",
            )
        self.model = model
        self.config = config
        self.image_size = (int(size[0]), int(size[1]))
        self.feature_dim = feature_dim
        self.layer_groups = list(layer_groups or [])
        self.include_top = include_top
        self.weights = weights
        self.options = dict(options or {})

    @property
    def name(self) -> str:
        """Registry name of the backbone."""
        return self.config.name

    def group(self, name: str) -> LayerGroup:
        """The layer group called ``name``."""
        for group in self.layer_groups:
            if group.name == name:
                return group
        raise InvalidArgumentError(
            f"{self.name} has no layer group {name!r}; groups: "
            + ", ".join(g.name for g in self.layer_groups),
            argument="name",
        )

    def freeze(self) -> None:
        """Make every layer non-trainable (BatchNorm then runs in inference mode)."""
        for group in self.layer_groups:
            group.set_trainable(False)

    def unfreeze_last(self, n: int) -> None:
        """Freeze everything, then make the last ``n`` layer groups trainable.

        ``n=0`` freezes the whole backbone; ``n=len(layer_groups)`` unfreezes all.
        """
        n = check_int("n", n, minimum=0, maximum=len(self.layer_groups))
        for i, group in enumerate(self.layer_groups):
            group.set_trainable(i >= len(self.layer_groups) - n)

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"Backbone({self.name!r}, image_size=({h}, {w}), feature_dim={self.feature_dim}, "
            f"groups={len(self.layer_groups)}, include_top={self.include_top}, "
            f"weights={self.weights!r})"
        )


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


def load_weights_file(model: keras.Model, path: str, name: str) -> None:
    """``model.load_weights(path)``, a file that does not fit raising :class:`WeightsFileError`."""
    try:
        model.load_weights(path)
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError on a mismatch
        raise WeightsFileError(
            f"weights file {path} does not fit backbone {name!r} "
            f"({model.count_params():,} parameters, input {model.input_shape}, "
            f"output {model.output_shape}): {exc}"
        ) from exc


def block_taps(backbone: Backbone) -> list[str]:
    """Names of the layers whose outputs ``pooling="blocks"`` pools, from stem to head.

    Parameters
    ----------
    backbone
        A built backbone (any pooling).

    Returns
    -------
    list of str
        The layers matching ``backbone.config.block_taps`` or, without a
        pattern, the last layer of every layer group but ``head``; only layers
        whose output is a feature map ``(batch, height, width, channels)``.

    Examples
    --------
    >>> from tlkit.backbones import block_taps, get_backbone
    >>> bb = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(4, 8))
    >>> block_taps(bb)
    ['block1_bn', 'block2_bn']
    """
    import re

    pattern = backbone.config.block_taps
    if pattern is not None:
        layers = [layer for layer in backbone.model.layers if re.search(pattern, layer.name)]
    else:
        layers = [g[-1] for g in backbone.layer_groups if g.name != "head"]
    return [layer.name for layer in layers if len(layer.output.shape) == 4]


def pool_blocks(backbone: Backbone) -> Backbone:
    """``backbone`` made to output every block's pooled features (``pooling="blocks"``).

    The new model shares every layer (and weight) of ``backbone.model`` and
    concatenates the global average of each layer in :func:`block_taps`, from
    stem to head, then the last layer's pooled features: features from below the
    last layer, which can transfer better to images far from ImageNet's photos
    (the idea of Head2Toe, Evci et al. 2022). The taps are scaled very
    differently, so a classifier on them wants its inputs standardised
    (FineTuner puts a BatchNormalization without scale in front of its head).
    :func:`get_backbone` calls it for ``pooling="blocks"``.

    Parameters
    ----------
    backbone
        A backbone built with ``pooling="avg"``.

    Returns
    -------
    Backbone
        The same layer groups, options and input (raw RGB pixels, floats in
        [0, 255]); ``feature_dim`` is the sum of the taps' channels and the last
        layer's.

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        ``backbone`` outputs a feature map or has no layer to pool.

    Examples
    --------
    >>> from tlkit.backbones import get_backbone, pool_blocks
    >>> bb = pool_blocks(get_backbone("scratch_cnn", weights=None, image_size=32, widths=(4, 8)))
    >>> bb.feature_dim, bb.model.output_shape
    (20, (None, 20))
    """
    import keras

    model = backbone.model
    taps = block_taps(backbone)
    if len(model.output_shape) != 2 or not taps:
        raise InvalidArgumentError(
            f"{backbone.name}: pooling='blocks' needs pooled features and layers to pool "
            f"(found {len(taps)})",
            argument="pooling",
        )
    pooled = [
        keras.layers.GlobalAveragePooling2D(name=f"blocks_pool_{name}")(
            model.get_layer(name).output
        )
        for name in taps
    ]
    features = keras.layers.Concatenate(name="blocks_features")([*pooled, model.output])
    return Backbone(
        keras.Model(model.inputs, features, name=f"{model.name}_blocks"),
        backbone.config,
        image_size=backbone.image_size,
        feature_dim=int(features.shape[-1]),
        layer_groups=backbone.layer_groups,
        include_top=False,
        weights=backbone.weights,
        options=backbone.options,
    )
