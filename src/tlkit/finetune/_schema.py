"""Field-by-field checks of what tlkit reads back from disk: model metadata and resume states.

Every value read from a file is checked for its exact type (``True`` is not an
int, ``"false"`` is not a bool) and its range before anything uses it; a
failure names the file and the field. Model files raise
:class:`~tlkit.errors.ModelFileError`, resume states
:class:`~tlkit.errors.ScheduleError`.

The limits below are module-level constants (read at call time, so a program
may raise one by assigning ``tlkit.finetune._schema.MAX_EPOCHS = ...``);
the documentation's security page lists them.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from tlkit._calibration import MAX_TEMPERATURE, MIN_TEMPERATURE
from tlkit.errors import ScheduleError, TlkitError
from tlkit.finetune._callbacks import TrainingHistory

__all__ = [
    "Checker",
    "check_history",
    "check_temperature",
    "json_depth",
    "parse_json",
    "read_state_file",
]

#: Deepest nesting of lists and dicts accepted in a JSON file tlkit reads.
MAX_JSON_DEPTH = 100
#: Most epochs of a phase, of a history, or of a progress counter.
MAX_EPOCHS = 100_000
#: Most classes of a model.
MAX_CLASSES = 100_000
#: Longest class, backbone, phase or metric name (characters).
MAX_NAME_CHARS = 1_000
#: Most metric series in a training history.
MAX_HISTORY_KEYS = 1_000
#: Largest side of a model's input image (pixels).
MAX_IMAGE_SIDE = 8_192
#: Largest integer of a backbone option (e.g. a ``widths`` entry) or a hidden head width.
MAX_OPTION_INT = 1 << 16
#: Most entries of a backbone option list, and most backbone options.
MAX_OPTION_ITEMS = 64


class Checker:
    """Raise ``error`` naming ``where`` (a file) and the field for a value that does not fit."""

    def __init__(self, error: type[TlkitError], where: str) -> None:
        self.error, self.where = error, where

    def fail(self, field: str, why: str) -> TlkitError:
        return self.error(f"{self.where}: field {field!r} {why}")

    def integer(self, field: str, v: Any, low: int, high: int) -> int:
        if type(v) is not int:
            raise self.fail(field, f"must be an int, got {_show(v)}")
        if not low <= v <= high:
            raise self.fail(field, f"must be in [{low}, {high}], got {_show(v)}")
        return v

    def number(self, field: str, v: Any, low: float, high: float, *, nan: bool = False) -> float:
        if type(v) not in (int, float):
            raise self.fail(field, f"must be a number, got {_show(v)}")
        if v != v and nan:
            return math.nan
        if not (math.isfinite(v) and low <= v <= high):
            raise self.fail(field, f"must be a finite number in [{low}, {high}], got {_show(v)}")
        return float(v)

    def boolean(self, field: str, v: Any) -> bool:
        if type(v) is not bool:
            raise self.fail(field, f"must be true or false, got {_show(v)}")
        return v

    def text(self, field: str, v: Any, *, empty: bool = False) -> str:
        if type(v) is not str:
            raise self.fail(field, f"must be a string, got {_show(v)}")
        if not (empty or v) or len(v) > MAX_NAME_CHARS:
            raise self.fail(field, f"must be a string of 1 to {MAX_NAME_CHARS} characters")
        return v

    def items(self, field: str, v: Any, low: int, high: int) -> list[Any]:
        if type(v) is not list:
            raise self.fail(field, f"must be a list, got {_show(v)}")
        if not low <= len(v) <= high:
            raise self.fail(field, f"must hold {low} to {high} items, got {len(v)}")
        return v

    def mapping(self, field: str, v: Any, high: int = 1_000) -> dict[str, Any]:
        if type(v) is not dict:
            raise self.fail(field, f"must be an object, got {_show(v)}")
        if len(v) > high:
            raise self.fail(field, f"must hold at most {high} entries, got {len(v)}")
        return v


def _show(v: Any) -> str:
    text = repr(v)
    return f"{text[:60] + '...' if len(text) > 60 else text} ({type(v).__name__})"


def json_depth(value: Any) -> int:
    """The nesting depth of parsed JSON (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((x, depth) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_json(data: bytes, check: Checker, what: str) -> Any:
    """Parse ``data`` (UTF-8 JSON) with bounded nesting; ``check.error`` on any failure."""
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise check.error(
            f"{check.where}: {what} is nested more than {MAX_JSON_DEPTH} levels deep"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, int too long
        raise check.error(f"{check.where}: {what} is not valid JSON ({exc})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise check.error(f"{check.where}: {what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def check_history(value: Any, check: Checker, field: str = "history") -> TrainingHistory:
    """A :class:`TrainingHistory` from its ``to_dict()`` form, every field checked."""
    d = check.mapping(field, value)
    if set(d) != {"history", "phases", "epoch_seconds"}:
        raise check.fail(field, "must have exactly the keys history, phases, epoch_seconds")
    phases = check.items(f"{field}.phases", d["phases"], 0, MAX_EPOCHS)
    n = len(phases)
    for i, p in enumerate(phases):
        check.text(f"{field}.phases[{i}]", p)
    seconds = check.items(f"{field}.epoch_seconds", d["epoch_seconds"], n, n)
    for i, s in enumerate(seconds):
        check.number(f"{field}.epoch_seconds[{i}]", s, 0.0, math.inf)
    series = check.mapping(f"{field}.history", d["history"], MAX_HISTORY_KEYS)
    for key, values in series.items():
        check.text(f"{field}.history key", key)
        check.items(f"{field}.history[{key!r}]", values, n, n)
        for i, x in enumerate(values):
            if type(x) not in (int, float):  # NaN and inf are values a metric can take
                raise check.fail(
                    f"{field}.history[{key!r}][{i}]", f"must be a number, got {_show(x)}"
                )
    return TrainingHistory.from_dict(d)


def check_temperature(value: Any, check: Checker, field: str = "temperature") -> float | None:
    """The optional temperature of ``FineTuner.calibrate``: absent (or null), else a finite
    number in ``[MIN_TEMPERATURE, MAX_TEMPERATURE]`` (0.01 to 100, :mod:`tlkit._calibration`)."""
    if value is None:
        return None
    return check.number(field, value, MIN_TEMPERATURE, MAX_TEMPERATURE)


def check_schedule_numbers(value: Any, check: Checker, field: str = "schedule") -> None:
    """Every number in a schedule config is finite, every int at most ``MAX_EPOCHS``."""
    stack = [(field, value)]
    while stack:
        name, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((f"{name}.{k}", x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((f"{name}[{i}]", x) for i, x in enumerate(v))
        elif type(v) is int:
            check.integer(name, v, -MAX_EPOCHS, MAX_EPOCHS)
        elif type(v) is float:
            check.number(name, v, -math.inf, math.inf)


def check_options(value: Any, allowed: set[str], check: Checker) -> dict[str, Any]:
    """Backbone options: known names, JSON scalars or short lists, small ints, finite floats."""
    options = check.mapping("backbone_options", value, MAX_OPTION_ITEMS)
    for key, v in options.items():
        field = f"backbone_options.{key}"
        if key not in allowed:
            raise check.fail(
                field, f"is not an option of this backbone (allowed: {sorted(allowed)})"
            )
        items = check.items(field, v, 0, MAX_OPTION_ITEMS) if isinstance(v, list) else [v]
        for x in items:
            if type(x) is int:
                check.integer(field, x, -MAX_OPTION_INT, MAX_OPTION_INT)
            elif type(x) is float:
                check.number(field, x, -MAX_OPTION_INT, MAX_OPTION_INT)
            elif type(x) is str:
                check.text(field, x, empty=True)
            elif x is not None and type(x) is not bool:
                raise check.fail(field, f"must hold numbers, strings or booleans, got {_show(x)}")
    return options


#: ``weights-0003.weights.h5`` and ``optimizers-0003d.npz``: the names FineTuner writes.
STATE_FILE_NAMES = {
    "weights": re.compile(r"weights-[0-9]{4,6}d?\.weights\.h5"),
    "optimizers": re.compile(r"optimizers-[0-9]{4,6}d?\.npz"),
}

#: Largest resume state file (8 MiB).
MAX_STATE_BYTES = 8 << 20
#: Version of the resume state layout; 2 renamed ``fingerprint.input_size`` to ``image_size``.
STATE_VERSION = 2


def read_state_file(folder: Path, name: str) -> dict[str, Any] | None:
    """The checked resume state in ``folder/name``; None when there is none (a fresh start).

    Only a regular file is read (opened non-blocking, so a FIFO cannot hang the
    run); anything else at that path is a :class:`~tlkit.errors.ScheduleError`.
    """
    path = folder / name
    where = f"resume_dir {str(folder)!r}: {name}"
    if not os.path.lexists(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ScheduleError(f"{where} cannot be read ({exc.strerror}); {_AFRESH}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ScheduleError(f"{where} is not a regular file; {_AFRESH}")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_STATE_BYTES + 1)
    if len(data) > MAX_STATE_BYTES:
        raise ScheduleError(f"{where} is larger than {MAX_STATE_BYTES} bytes; {_AFRESH}")
    c = Checker(ScheduleError, f"{where} (not a tlkit checkpoint; {_AFRESH})")
    state = c.mapping("(top level)", parse_json(data, c, name))
    version = state.get("version")
    if type(version) is not int:
        raise c.fail("version", f"must be an int, got {_show(version)}")
    if version != STATE_VERSION:
        then = "an older" if version < STATE_VERSION else "a newer"
        raise ScheduleError(
            f"{where} is a checkpoint of format version {version}, written by {then} tlkit; "
            f"this tlkit reads version {STATE_VERSION} only: {_AFRESH} with this tlkit, or "
            "resume with the tlkit that wrote it"
        )
    c.mapping("fingerprint", state.get("fingerprint"))
    c.integer("phase_index", state.get("phase_index"), 0, MAX_EPOCHS)
    c.integer("epochs_in_phase", state.get("epochs_in_phase"), 0, MAX_EPOCHS)
    c.boolean("phase_done", state.get("phase_done"))
    for key, pattern in STATE_FILE_NAMES.items():
        file = c.text(key, state.get(key))
        if not pattern.fullmatch(file):
            raise c.fail(key, f"is not a checkpoint file name, got {_show(file)}")
        try:
            regular = stat.S_ISREG(os.stat(folder / file).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise ScheduleError(f"{where}: {key} file {file!r} is missing; {_AFRESH}")
    state["history"] = check_history(state.get("history"), c)
    return state


_AFRESH = "delete the folder to start afresh"
