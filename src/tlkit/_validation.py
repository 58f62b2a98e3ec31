"""Argument checks shared by every tlkit module: one place, one error family.

Each ``check_*`` function returns the value in its normal form (``int`` for an
int-like, a ``(height, width)`` tuple for an image size, ...) or raises:

- :class:`~tlkit.errors.ArgumentTypeError` (a ``TypeError``) when the type is
  not accepted, naming the accepted types and the type given;
- :class:`~tlkit.errors.InvalidArgumentError` (a ``ValueError``) when the
  value is out of range, naming the allowed values.

Both carry the argument's name (the first parameter of every ``check_*``) as
``.argument``, so a front end can name it its own way (``--batch-size``).

The rule, everywhere in tlkit: a bad argument *value* is an
``InvalidArgumentError``, a wrong *type* an ``ArgumentTypeError``. The
subsystem errors (``ScheduleError``, ``AuditError``, ``ComparisonError``,
``ExportError``, ...) are for failures at run time: data that cannot be used, a
model that cannot be built or converted. ``error=`` remains for the few checks
of run-time state (e.g. a loaded model's temperature); argument checks leave it
at its default. Booleans are never accepted as numbers (``n_boot=True`` is a
type error everywhere).

Examples
--------
>>> from tlkit._validation import check_int, check_choice
>>> check_int("epochs", 3, minimum=1)
3
>>> check_choice("resize", "crop", ("stretch", "crop", "pad"))
'crop'
>>> check_int("epochs", 0, minimum=1)
Traceback (most recent call last):
...
tlkit.errors.InvalidArgumentError: epochs must be an int >= 1, got 0
>>> try:
...     check_int("batch_size", 0, minimum=1)
... except InvalidArgumentError as exc:
...     print(exc.argument)
batch_size
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from tlkit.errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "MIN_IMAGE_SIZE",
    "check_bool",
    "check_choice",
    "check_duration",
    "check_fraction",
    "check_holdout_share",
    "check_image_size",
    "check_int",
    "check_number",
    "check_path",
    "check_seed",
    "check_split_share",
    "check_str",
    "check_str_list",
    "type_name",
]

T = TypeVar("T")

#: Smallest image side a model is built for: the backbone registry's and FineTuner's minimum.
MIN_IMAGE_SIZE = 32


def type_name(value: Any) -> str:
    """The type of ``value`` as messages show it (``'str'``, ``'NoneType'``, ``'numpy.float32'``)."""
    t = type(value)
    module = t.__module__
    return (
        t.__qualname__
        if module in ("builtins", None)
        else f"{module.split('.')[0]}.{t.__qualname__}"
    )


def _got(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type_name(value)})"


def _value_error(error: type[ValueError], name: str, message: str) -> ValueError:
    """``error(message)``, naming the argument (``.argument``) when ``error`` is an argument error."""
    if issubclass(error, InvalidArgumentError):
        return error(message, argument=name)
    return error(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bounds(
    minimum: float | None, maximum: float | None, *, low_open=False, high_open=False
) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if low_open else '>='} {minimum}")
    if maximum is not None:
        parts.append(f"{'<' if high_open else '<='} {maximum}")
    return " and ".join(parts)


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
    error: type[ValueError] = InvalidArgumentError,
) -> Any:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (or ``None`` when allowed).

    Examples
    --------
    >>> import numpy as np
    >>> check_int("batch_size", np.int64(8), minimum=1)
    8
    """
    if value is None and allow_none:
        return None
    what = "an int" + (
        f" {_bounds(minimum, maximum)}" if minimum is not None or maximum is not None else ""
    )
    what += " or None" if allow_none else ""
    if not _is_int(value):
        raise ArgumentTypeError(f"{name} must be {what}, got {_got(value)}", argument=name)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _value_error(error, name, f"{name} must be {what}, got {value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    error: type[ValueError] = InvalidArgumentError,
) -> Any:
    """``value`` as a finite ``float`` within the bounds (open bounds exclude the end).

    Examples
    --------
    >>> check_number("confidence", 0.95, low=0, high=1, low_open=True, high_open=True)
    0.95
    """
    if value is None and allow_none:
        return None
    bounds = _bounds(low, high, low_open=low_open, high_open=high_open)
    what = "a number" + (f" {bounds}" if bounds else "") + (" or None" if allow_none else "")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be {what}, got {_got(value)}", argument=name)
    v = float(value)
    if (
        not math.isfinite(v)
        or (low is not None and (v <= low if low_open else v < low))
        or (high is not None and (v >= high if high_open else v > high))
    ):
        raise _value_error(error, name, f"{name} must be {what}, got {value!r}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (``numpy.bool_`` too); ``1``/``"yes"`` are refused."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool" and type(value).__module__ == "numpy":
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, got {_got(value)}", argument=name)


def check_seed(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """A random seed: an ``int >= 0`` (``None`` for "not seeded" when allowed)."""
    return check_int(name, value, minimum=0, allow_none=allow_none)


def check_fraction(name: str, value: Any) -> float:
    """A level strictly between 0 and 1 (a confidence, a significance level).

    Examples
    --------
    >>> check_fraction("confidence", 0.95)
    0.95
    >>> check_fraction("alpha", 1)
    Traceback (most recent call last):
    ...
    tlkit.errors.InvalidArgumentError: alpha must be a number > 0 and < 1, got 1
    """
    return check_number(name, value, low=0, high=1, low_open=True, high_open=True)


def check_holdout_share(name: str, value: Any) -> float:
    """A share held out of a set, in ``[0, 1)``; ``None`` means ``0`` (nothing held out).

    Examples
    --------
    >>> check_holdout_share("val", None), check_holdout_share("val", 0.15)
    (0.0, 0.15)
    """
    if value is None:
        return 0.0
    return check_number(name, value, low=0.0, high=1.0, high_open=True)


def check_split_share(name: str, value: Any) -> float | int:
    """A split share: a fraction in ``[0, 1)`` (a ``float``) or an image count (an ``int >= 0``).

    Examples
    --------
    >>> check_split_share("val", 0.15), check_split_share("test", 20)
    (0.15, 20)
    >>> check_split_share("val", 1.5)
    Traceback (most recent call last):
    ...
    tlkit.errors.InvalidArgumentError: val=1.5 is not a valid fraction; use a value in [0, 1) \
or an image count
    """
    if _is_int(value):
        if value < 0:
            raise InvalidArgumentError(
                f"{name}={value!r} must not be negative; pass a count >= 0", argument=name
            )
        return int(value)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"{name} must be a fraction (float) or a count (int), got {_got(value)}",
            argument=name,
        )
    v = float(value)
    if not 0.0 <= v < 1.0:  # NaN fails too
        raise InvalidArgumentError(
            f"{name}={v!r} is not a valid fraction; use a value in [0, 1) or an image count",
            argument=name,
        )
    return v


def check_str(name: str, value: Any, *, allow_none: bool = False, nonempty: bool = True) -> Any:
    """``value`` if it is a (non-empty) ``str``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a string, got {_got(value)}", argument=name)
    if nonempty and not value.strip():
        raise InvalidArgumentError(f"{name} must not be empty", argument=name)
    return value


def check_choice(
    name: str,
    value: Any,
    allowed: Sequence[Any],
    *,
    error: type[ValueError] = InvalidArgumentError,
) -> Any:
    """``value`` if it is one of ``allowed`` (same type and equal; ``None`` may be allowed).

    ``True`` never matches ``1`` and ``"1"`` never matches ``1``.
    """
    for a in allowed:
        if value is a or (type(value) is type(a) and value == a):
            return value
    raise _value_error(
        error, name, f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
    )


def check_image_size(
    name: str,
    value: Any,
    *,
    minimum: int = 1,
    allow_none: bool = False,
    default: tuple[int, int] | None = None,
    error: type[ValueError] = InvalidArgumentError,
) -> Any:
    """An image size as a ``(height, width)`` tuple of ints; an int ``n`` means ``(n, n)``.

    ``None`` gives ``default`` when one is set, else ``None`` when allowed.

    Examples
    --------
    >>> check_image_size("image_size", 160)
    (160, 160)
    >>> check_image_size("image_size", [96, 128])
    (96, 128)
    """
    if value is None and default is not None:
        return (int(default[0]), int(default[1]))
    if value is None and allow_none:
        return None
    what = f"an int or a (height, width) pair of ints, each >= {minimum}"
    if _is_int(value):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(_is_int(v) for v in value)
    ):
        raise ArgumentTypeError(f"{name} must be {what}, got {_got(value)}", argument=name)
    if min(value) < minimum:
        raise _value_error(error, name, f"{name} must be {what}, got {tuple(value)!r}")
    return (int(value[0]), int(value[1]))


@overload
def check_path(
    name: str,
    value: Any,
    *,
    exists: str | None = ...,
    allow_none: Literal[False] = ...,
    error: type[ValueError] = ...,
) -> Path: ...
@overload
def check_path(
    name: str,
    value: Any,
    *,
    exists: str | None = ...,
    allow_none: bool,
    error: type[ValueError] = ...,
) -> Path | None: ...
def check_path(
    name: str,
    value: Any,
    *,
    exists: str | None = None,
    allow_none: bool = False,
    error: type[ValueError] = InvalidArgumentError,
) -> Path | None:
    """``value`` as a :class:`~pathlib.Path`; ``exists`` is ``"file"``, ``"dir"`` or ``None`` (no check)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"{name} must be a path (str or os.PathLike), got {_got(value)}", argument=name
        )
    path = Path(value)
    if exists == "file" and not path.is_file():
        raise _value_error(error, name, f"{name}: {str(path)!r} is not a file; check the path")
    if exists == "dir" and not path.is_dir():
        raise _value_error(error, name, f"{name}: {str(path)!r} is not a folder; check the path")
    return path


def check_str_list(name: str, value: Any, *, min_len: int = 0, unique: bool = False) -> list[str]:
    """A list of strings from a list or tuple (a lone ``str`` is refused: it is not a list of names)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ArgumentTypeError(
            f"{name} must be a list of strings, got {_got(value)}", argument=name
        )
    items = list(value)
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise ArgumentTypeError(f"{name} must hold strings only, got {_got(bad[0])}", argument=name)
    if len(items) < min_len:
        raise InvalidArgumentError(
            f"{name} must hold at least {min_len} names, got {items}", argument=name
        )
    if unique and len(set(items)) != len(items):
        dup = sorted({v for v in items if items.count(v) > 1})
        raise InvalidArgumentError(f"{name} must not repeat names; repeated: {dup}", argument=name)
    return items


#: Seconds per unit of a duration string (``check_duration``).
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
# each part ends in letters, so a string splits into parts one way only (no backtracking blow-up)
_DURATION_PART = re.compile(rf"{_NUMBER}\s*([a-z]+)\s*")
_DURATION_TEXT = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_SECONDS_TEXT = re.compile(_NUMBER)


def check_duration(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """A duration in seconds (a ``float > 0``) from seconds or a string like ``"10min"``.

    Strings are one or more ``NUMBER UNIT`` parts, the unit ``s``/``sec``,
    ``min``/``m`` or ``h``/``hr`` (or spelled out), case and spaces ignored:
    ``"90s"``, ``"10min"``, ``"1.5h"``, ``"1h30min"``; a bare number alone is seconds.

    Examples
    --------
    >>> check_duration("time_budget", "10min"), check_duration("time_budget", "1h30m")
    (600.0, 5400.0)
    >>> check_duration("time_budget", 90)
    90.0
    >>> check_duration("time_budget", "ten minutes")
    Traceback (most recent call last):
    ...
    tlkit.errors.InvalidArgumentError: time_budget must be seconds > 0 (a number) or a string \
like '90s', '10min', '1.5h' or '1h30min' (units s, min, h), got 'ten minutes'
    """
    if value is None and allow_none:
        return None
    what = (
        "seconds > 0 (a number) or a string like '90s', '10min', '1.5h' or '1h30min' "
        "(units s, min, h)" + (" or None" if allow_none else "")
    )
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) <= 100 and _SECONDS_TEXT.fullmatch(text):
            seconds = float(text)
        elif len(text) <= 100 and _DURATION_TEXT.fullmatch(text):
            parts = _DURATION_PART.findall(text)
            if not all(u in _DURATION_UNITS for _, u in parts):
                seconds = math.nan
            else:
                seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
        else:
            seconds = math.nan
        if not 0 < seconds < math.inf:
            raise InvalidArgumentError(
                f"{name} must be {what}, got {_got(value)[:-6]}", argument=name
            )
        return seconds
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be {what}, got {_got(value)}", argument=name)
    v = float(value)
    if not 0 < v < math.inf:
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}", argument=name)
    return v
