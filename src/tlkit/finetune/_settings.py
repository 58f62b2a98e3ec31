"""FineTuner's settings: their defaults and allowed values, checked with :mod:`tlkit._validation`.

The checks are the shared ``check_*`` functions; what is here is specific to
FineTuner (the backbone, the classes, ``class_weight``, the optimizer, the
default schedule). Like every tlkit argument, a wrong type is an
:class:`~tlkit.errors.ArgumentTypeError`, a bad value an
:class:`~tlkit.errors.InvalidArgumentError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tlkit._validation import (
    MIN_IMAGE_SIZE,
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_number,
    check_seed,
    type_name,
)
from tlkit.backbones import Backbone
from tlkit.data import CLASS_WEIGHT_MODES
from tlkit.errors import ArgumentTypeError, InvalidArgumentError
from tlkit.finetune import schedules as sched

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_LR",
    "MEMORY_BUDGET_MB",
    "MONITORS",
    "OPTIMIZER_NAMES",
    "POOLINGS",
    "backbone_name",
    "class_weight_arg",
    "classes",
    "default_schedule",
    "optimizer_arg",
    "pooling_arg",
    "settings",
]

#: FineTuner's backbone when none is named: chosen across real datasets on validation
#: (``benchmarks/default_recipe.py``; the "Choosing the default recipe" benchmarks page).
DEFAULT_BACKBONE = "efficientnet_lite2"
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")
MONITORS = ("val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1")
# Adam's 3e-3: what lr_find suggests for a linear head on pooled features (docs/make_finetune_figures.py).
DEFAULT_LR = {"adam": 3e-3, "adamw": 3e-3, "sgd": 1e-2, "rmsprop": 1e-3}
MEMORY_BUDGET_MB = 2048


def default_schedule() -> sched.FreezeThenUnfreeze:
    """The recipe FineTuner uses when no schedule is given (see the "Fine-tuning" guide)."""
    return sched.FreezeThenUnfreeze(
        head_epochs=30, finetune_epochs=8, unfreeze="all", lr_factor=0.05, lr_decay=0.8, warmup=1.0
    )


def backbone_name(value: Any) -> str:
    """The registry name of ``value`` (a name or a built :class:`~tlkit.backbones.Backbone`)."""
    if isinstance(value, Backbone):
        return value.name
    if not isinstance(value, str):
        raise ArgumentTypeError(
            "backbone must be a registry name (list_backbones()) or a Backbone, got "
            f"{value!r} ({type_name(value)})"
        )
    return value


#: What ``FineTuner(pooling=...)`` takes (None: the built backbone's own, else ``"avg"``).
POOLINGS = ("avg", "blocks", "auto")


def pooling_arg(value: Any, backbone: Backbone | None) -> str:
    """The features the head reads: ``"avg"``, ``"blocks"`` or ``"auto"`` (chosen at fit).

    A built backbone fixes its pooling: ``value`` may leave it out, name it again,
    or be ``"auto"`` for one built with ``pooling="avg"``.
    """
    if value is not None:
        check_choice("pooling", value, POOLINGS)
    if backbone is None:
        return "avg" if value is None else str(value)
    own = backbone.options.get("pooling", "avg")
    if value is None or value == own:
        return str(own)
    if value == "auto" and own == "avg":
        return "auto"
    wanted = "avg" if value == "auto" else value
    raise InvalidArgumentError(
        f"pooling={value!r} but the backbone was built with pooling={own!r}: leave pooling out, "
        f"or pass the backbone's name (or one built with get_backbone(..., pooling={wanted!r}))",
        argument="pooling",
    )


def classes(num_classes: Any, class_names: Any) -> list[str] | None:
    """The class names from ``num_classes`` and/or ``class_names`` (None: known at fit time)."""
    if class_names is not None:
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise ArgumentTypeError(
                f"class_names must be a list of names, got {class_names!r} "
                f"({type_name(class_names)})"
            )
        names = [str(n) for n in class_names]
        if len(names) < 2 or len(set(names)) != len(names):
            raise InvalidArgumentError(
                f"class_names must hold at least 2 distinct names, got {names}"
            )
        if num_classes is not None and num_classes != len(names):
            raise InvalidArgumentError(
                f"num_classes={num_classes!r} but {len(names)} class_names were given: {names}"
            )
        return names
    k = check_int("num_classes", num_classes, minimum=2, allow_none=True)
    return None if k is None else [f"class_{i}" for i in range(k)]


def class_weight_arg(value: Any) -> Any:
    """``None``, a ``{class index: weight}`` mapping, or one of the named modes."""
    if value is None or isinstance(value, Mapping):
        return value
    what = (
        f"None, a dict {{class index: weight}} or one of {', '.join(map(repr, CLASS_WEIGHT_MODES))}"
    )
    if not isinstance(value, str):
        raise ArgumentTypeError(f"class_weight must be {what}, got {value!r} ({type_name(value)})")
    return check_choice("class_weight", value, CLASS_WEIGHT_MODES)


def augment_arg(value: Any, seed: int | None) -> Any:
    """``None``, a preset name (kept as the name), an ``Augmenter``, or Keras layers (wrapped).

    A list or tuple of Keras layers becomes ``AugmentationPipeline(layers, seed=seed)``.
    """
    from tlkit.augment import PRESETS, AugmentationPipeline
    from tlkit.protocols import Augmenter

    if value is None or isinstance(value, Augmenter):
        return value
    if isinstance(value, str):
        return check_choice("augment", value, PRESETS)
    if isinstance(value, (list, tuple)):
        return AugmentationPipeline(list(value), seed=seed)
    raise ArgumentTypeError(
        f"augment must be None, a preset name ({', '.join(map(repr, PRESETS))}), an "
        f"AugmentationPipeline or a list of keras layers, got {type_name(value)}"
    )


def optimizer_arg(value: Any) -> Any:
    """A lower-case optimizer name, or a ``keras.optimizers.Optimizer`` (used as a template)."""
    if isinstance(value, str):
        return check_choice("optimizer", value.lower(), OPTIMIZER_NAMES)
    import keras

    if isinstance(value, keras.optimizers.Optimizer):
        return value
    raise ArgumentTypeError(
        f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)} or a keras optimizer, got "
        f"{value!r} ({type_name(value)})"
    )


def settings(
    *,
    default_size: tuple[int, int],
    image_size: Any,
    backbone_size: tuple[int, int] | None,
    head_units: Any,
    dropout: Any,
    class_weight: Any,
    label_smoothing: Any,
    optimizer: Any,
    learning_rate: Any,
    batch_size: Any,
    cache_features: Any,
    cache_images: Any,
    memory_budget_mb: Any,
    monitor: Any,
    monitor_window: Any,
    restore_best: Any,
    early_stopping: Any,
    mixed_precision: Any,
    seed: Any,
    verbose: Any,
) -> dict[str, Any]:
    """FineTuner's plain settings, checked and in their normal form (attribute name -> value).

    ``backbone_size`` is the size of a built backbone, which ``image_size``
    (when given) must match.
    """
    opt = optimizer_arg(optimizer)
    size = check_image_size(
        "image_size", image_size, minimum=MIN_IMAGE_SIZE, default=backbone_size or default_size
    )
    if backbone_size is not None and size != tuple(backbone_size):
        raise InvalidArgumentError(
            f"image_size={size} but the backbone was built for {tuple(backbone_size)}: leave "
            "image_size out, or build the backbone at that size"
        )
    return {
        "image_size": size,
        "head_units": check_int("head_units", head_units, minimum=1, allow_none=True),
        "dropout": check_number("dropout", dropout, low=0.0, high=0.95),
        "class_weight": class_weight_arg(class_weight),
        "label_smoothing": check_number("label_smoothing", label_smoothing, low=0.0, high=0.5),
        "optimizer": opt,
        "learning_rate": (
            DEFAULT_LR[opt if isinstance(opt, str) else "adam"]
            if learning_rate is None
            else check_number("learning_rate", learning_rate, low=1e-12, high=100.0)
        ),
        "batch_size": check_int("batch_size", batch_size, minimum=1),
        "cache_features": check_choice("cache_features", cache_features, ("auto", True, False)),
        "cache_images": check_choice("cache_images", cache_images, ("auto", "memory", None)),
        "memory_budget_mb": check_int("memory_budget_mb", memory_budget_mb, minimum=0),
        "monitor": check_choice("monitor", monitor, MONITORS),
        "monitor_window": check_int("monitor_window", monitor_window, minimum=1),
        "restore_best": check_bool("restore_best", restore_best),
        "early_stopping": check_int("early_stopping", early_stopping, minimum=1, allow_none=True),
        "mixed_precision": check_bool("mixed_precision", mixed_precision),
        "seed": check_seed("seed", seed, allow_none=True),
        "verbose": check_choice("verbose", verbose, (0, 1, 2)),
    }
