"""Argument checks for FineTuner: early, with messages that name the allowed values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tlkit.backbones import Backbone
from tlkit.data._weights import CLASS_WEIGHT_MODES
from tlkit.errors import ScheduleError

__all__: list[str] = []


def backbone_name(value: Any) -> str:
    if isinstance(value, Backbone):
        return value.name
    if not isinstance(value, str):
        raise ScheduleError(
            f"backbone must be a registry name (list_backbones()) or a Backbone, got {value!r}"
        )
    return value


def classes(num_classes: Any, class_names: Any) -> list[str] | None:
    if class_names is not None:
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise ScheduleError(f"class_names must be a list of names, got {class_names!r}")
        names = [str(n) for n in class_names]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ScheduleError(f"class_names must hold at least 2 distinct names, got {names}")
        if num_classes is not None and num_classes != len(names):
            raise ScheduleError(
                f"num_classes={num_classes!r} but {len(names)} class_names were given: {names}"
            )
        return names
    if num_classes is None:
        return None
    optional_int("num_classes", num_classes, 2)
    return [f"class_{i}" for i in range(num_classes)]


def optional_int(name: str, value: Any, minimum: int) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScheduleError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScheduleError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ScheduleError(f"{name} must be in [{low}, {high}], got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScheduleError(f"{name} must be True or False, got {value!r}")
    return value


def choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    for a in allowed:
        if value is a or (type(value) is type(a) and value == a):
            return value
    raise ScheduleError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def size(value: Any, default: tuple[int, int]) -> tuple[int, int]:
    if value is None:
        return tuple(default)  # type: ignore[return-value]
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 32 for v in value)
    ):
        raise ScheduleError(
            f"input_size must be an int or (height, width), each at least 32, got {value!r}"
        )
    return (int(value[0]), int(value[1]))


def class_weight_arg(value: Any) -> Any:
    if value is None or isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value in CLASS_WEIGHT_MODES:
        return value
    raise ScheduleError(
        f"class_weight must be None, a dict {{class index: weight}} or one of "
        f"{', '.join(map(repr, CLASS_WEIGHT_MODES))}, got {value!r}"
    )


def optimizer(value: Any, names: Sequence[str]) -> Any:
    if isinstance(value, str):
        if value.lower() not in names:
            raise ScheduleError(f"optimizer must be one of {', '.join(names)}, got {value!r}")
        return value.lower()
    import keras

    if isinstance(value, keras.optimizers.Optimizer):
        return value
    raise ScheduleError(
        f"optimizer must be one of {', '.join(names)} or a keras optimizer, got {value!r}"
    )
