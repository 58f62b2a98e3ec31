"""The model file format: saving and loading FineTuners, and checking what is read back.

A ``.keras`` file is a zip archive (Keras writes ``config.json``,
``metadata.json`` and ``model.weights.h5`` into it). tlkit adds one more
entry, ``tlkit.json``: class names, backbone name and options, input size,
schedule with its progress, history and training time, and the temperature of
``FineTuner.calibrate`` when there is one (an optional key). Keras ignores entries
it does not know, so ``keras.saving.load_model`` still opens the file
(``tests/test_finetune_io.py`` pins that). Loading always uses Keras safe mode
(no arbitrary code from the file), and the metadata is checked field by field
before anything uses it.

The module holds, in this order:

* :func:`save_tuner`, :func:`read_metadata` and :func:`load_tuner`;
* the checks of the archive made before Keras opens it. A few kilobytes can
  declare gigabytes (a compressed ``config.json`` of spaces, or a config asking
  for a Conv2D with 2 x 10^7 filters, which Keras allocates before it reads a
  single weight). :func:`check_archive` looks at every member's declared size,
  the compression ratio and the names, and reads the JSON members with bounded
  reads; :func:`check_declared_weights` has Keras rebuild the model from its
  config without allocating any variable (``keras.StatelessScope``) and
  compares the bytes the variables would take with the size of
  ``model.weights.h5``; :func:`check_weights_file` does the same for the arrays
  the HDF5 file declares;
* the field-by-field checks of what tlkit reads back from disk, model metadata
  and resume states (:func:`read_state_file`): every value is checked for its
  exact type (``True`` is not an int, ``"false"`` is not a bool) and its range
  before anything uses it.

Each failure names the file, the member or field, and the limit: model files raise
:class:`~tlkit.errors.ModelFileError`, resume states :class:`~tlkit.errors.ScheduleError`.
The limits are module-level constants, read at each call: a program that trusts
bigger files may raise one (``tlkit.finetune._saving.MAX_WEIGHTS_BYTES = 8 << 30``);
the documentation's security page lists them.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlkit._calibration import MAX_TEMPERATURE, MIN_TEMPERATURE
from tlkit.errors import ModelFileError, ScheduleError, TlkitError
from tlkit.finetune import schedules as sched
from tlkit.finetune._callbacks import TrainingHistory

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.finetune._tuner import FineTuner

__all__ = [
    "Checker",
    "check_archive",
    "check_declared_weights",
    "check_history",
    "check_temperature",
    "check_weights_file",
    "json_depth",
    "load_tuner",
    "parse_json",
    "read_metadata",
    "read_state_file",
    "save_tuner",
]

FORMAT = "tlkit.finetuner"
#: Version of the ``tlkit.json`` layout; 2 renamed ``input_size`` to ``image_size``, 3 ``head``
#: to ``head_units``.
VERSION = 3


# -- saving and loading ---------------------------------------------------------------------


def save_tuner(tuner: FineTuner, path: Path) -> Path:
    if path.suffix != ".keras":
        raise ModelFileError(f"{str(path)!r}: a model file name must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.keras")
    tuner.model.save(tmp)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "class_names": list(tuner._known_class_names()),
        "backbone": tuner.backbone_name,
        "backbone_options": dict(getattr(tuner, "_backbone_options", {})),
        "image_size": list(tuner.image_size),
        "schedule": tuner.schedule.get_config(),
        "progress": dict(tuner.progress),
        "head_units": tuner.head_units,
        "dropout": tuner.dropout,
        "seed": tuner.seed,
        "train_time_s": tuner.train_time_s,
        "history": tuner.history.to_dict() if tuner.history is not None else None,
    }
    temperature = getattr(tuner, "temperature", None)
    if temperature is not None:  # optional: absent when not calibrated
        meta["temperature"] = float(temperature)
    with zipfile.ZipFile(tmp, "a") as z:
        z.writestr(META, json.dumps(meta))
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``tlkit.json`` of a model file; :class:`ModelFileError` if absent or bad.

    The archive itself is checked first (:func:`~tlkit.finetune.check_archive`:
    member names, declared sizes, compression ratio), then every metadata field
    for its exact type and range.
    """
    return _read(Path(path))[0]


def _read(p: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(checked metadata, archive members) of the model file ``p``."""
    where = repr(str(p))
    if not p.is_file():
        raise ModelFileError(f"model file not found: {where}")
    if not zipfile.is_zipfile(p):
        raise ModelFileError(
            f"{where} is not a .keras model file (not a zip archive: truncated, corrupt, or "
            "another format); save models with FineTuner.save",
            code="not_keras",
        )
    members = check_archive(p, where)
    if META not in members:
        raise ModelFileError(
            f"{where} is a Keras model without tlkit metadata; load it with "
            "keras.saving.load_model, or save it with FineTuner.save",
            code="not_tlkit",
        )
    check = Checker(ModelFileError, f"{where} ({META})")
    meta = parse_json(members[META], check, META)
    return _check_meta(meta, check, where), members


def _check_meta(meta: Any, c: Checker, where: str) -> dict[str, Any]:
    from tlkit.backbones import backbone_config

    c.mapping("(top level)", meta)
    if meta.get("format") != FORMAT:
        raise c.fail("format", f"must be {FORMAT!r}, got {meta.get('format')!r}")
    version = meta.get("version")
    if type(version) is not int:
        raise c.fail("version", f"must be an int, got {version!r}")
    if version < VERSION:
        raise ModelFileError(
            f"{where} is a model file of format version {version}, written by an older tlkit; "
            f"this tlkit reads version {VERSION} only: train the model again with this tlkit "
            "and save it (save models with FineTuner.save), or load it with the tlkit that "
            "wrote it",
            code="old_format",
        )
    if version != VERSION:
        raise ModelFileError(
            f"{where} is a model file of format version {version}, written by a newer tlkit; "
            f"this tlkit reads version {VERSION} only: upgrade tlkit to load it"
        )
    names = c.items("class_names", meta.get("class_names"), 2, MAX_CLASSES)
    for i, n in enumerate(names):
        c.text(f"class_names[{i}]", n)
    if len(set(names)) != len(names):
        raise c.fail("class_names", "holds a name twice")
    size = c.items("image_size", meta.get("image_size"), 2, 2)
    for i, v in enumerate(size):
        c.integer(f"image_size[{i}]", v, 1, MAX_IMAGE_SIDE)
    backbone = c.text("backbone", meta.get("backbone"))
    try:
        options = backbone_config(backbone).options
    except TlkitError as exc:
        err = c.fail("backbone", f"names no known backbone ({exc})")
        if isinstance(err, ModelFileError):
            err.code = "unknown_backbone"
        raise err from None
    allowed = set(options) | {"pooling"}
    meta["backbone_options"] = check_options(meta.get("backbone_options", {}), allowed, c)
    check_schedule_numbers(meta.get("schedule"), c)
    try:
        meta["schedule"] = sched.from_config(meta.get("schedule"))
    except (TlkitError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise c.fail("schedule", f"is not a valid schedule ({exc})") from None
    progress = c.mapping("progress", meta.get("progress", {}), 2)
    for key, value in progress.items():
        if key not in ("phases_done", "epochs_done"):
            raise c.fail(f"progress.{key}", "is not a progress counter")
        c.integer(f"progress.{key}", value, 0, MAX_EPOCHS)
    meta["progress"] = {k: progress.get(k, 0) for k in ("phases_done", "epochs_done")}
    if meta.get("head_units") is not None:
        c.integer("head_units", meta["head_units"], 1, MAX_OPTION_INT)
    meta["dropout"] = c.number("dropout", meta.get("dropout", 0.2), 0.0, 0.99)
    if meta.get("seed") is not None:
        c.integer("seed", meta["seed"], 0, 2**32 - 1)
    if meta.get("train_time_s") is not None:
        c.number("train_time_s", meta["train_time_s"], 0.0, math.inf)
    if meta.get("history") is not None:
        meta["history"] = check_history(meta["history"], c)
    meta["temperature"] = check_temperature(meta.get("temperature"), c)
    return meta


def load_tuner(cls: type[FineTuner], path: Path) -> FineTuner:
    import keras

    where = repr(str(path))
    meta, members = _read(path)
    weights = members[WEIGHTS]
    config = parse_json(members[CONFIG], Checker(ModelFileError, where), CONFIG)
    check_weights_file(path, weights, where)
    check_declared_weights(config, weights.file_size, where)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged archive
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelFileError(
            f"{where}: Keras cannot load the model ({type(exc).__name__}: {first})"
        ) from None
    try:
        shape, out = model.input_shape, model.output_shape
    except (AttributeError, ValueError) as exc:
        raise ModelFileError(f"{where}: the model has no single input and output ({exc})") from None
    if not isinstance(shape, tuple) or len(shape) != 4 or list(shape[1:3]) != meta["image_size"]:
        raise ModelFileError(
            f"{where}: the model takes input {shape} but its metadata says {meta['image_size']}"
        )
    if not isinstance(out, tuple) or out[-1] != len(meta["class_names"]):
        raise ModelFileError(
            f"{where}: the model has outputs {out} for {len(meta['class_names'])} class names"
        )
    tuner = cls.__new__(cls)
    try:
        tuner.__init__(  # type: ignore[misc]
            backbone=meta["backbone"],
            class_names=meta["class_names"],
            weights=None,
            image_size=tuple(meta["image_size"]),
            schedule=meta["schedule"],
            head_units=meta.get("head_units"),
            dropout=meta["dropout"],
            seed=meta.get("seed"),
        )
    except TlkitError as exc:
        raise ModelFileError(
            f"{where}: {META} does not describe a valid FineTuner ({exc})"
        ) from None
    tuner._backbone_options = meta["backbone_options"]
    tuner.pooling = str(meta["backbone_options"].get("pooling", "avg"))
    tuner._net = model
    tuner._loaded = True
    tuner.history = meta.get("history")
    tuner.train_time_s = meta.get("train_time_s")
    tuner.progress = dict(meta["progress"])
    tuner.temperature = meta["temperature"]
    return tuner


# -- the archive, checked before Keras opens it ----------------------------------------------

#: Largest uncompressed size of ``config.json``, ``metadata.json`` and ``tlkit.json`` (8 MiB).
MAX_JSON_MEMBER_BYTES = 8 << 20
#: Largest uncompressed size of ``model.weights.h5`` (2 GiB).
MAX_WEIGHTS_BYTES = 2 << 30
#: Largest uncompressed/compressed ratio of a member over ``RATIO_FLOOR_BYTES``.
MAX_COMPRESSION_RATIO = 100
#: Members smaller than this (1 MiB) are not held to ``MAX_COMPRESSION_RATIO``.
RATIO_FLOOR_BYTES = 1 << 20
#: The weights a config declares may take at most this many times ``model.weights.h5``'s size...
WEIGHTS_FACTOR = 2
#: ... plus this many bytes (1 MiB).
WEIGHTS_SLACK_BYTES = 1 << 20
#: Most layers (objects with a ``class_name``) in ``config.json``.
MAX_CONFIG_LAYERS = 20_000
#: Most groups and datasets in ``model.weights.h5``.
MAX_H5_OBJECTS = 200_000

CONFIG, METADATA, WEIGHTS, META = "config.json", "metadata.json", "model.weights.h5", "tlkit.json"
#: The only members a tlkit ``.keras`` file holds (Keras's three and tlkit's metadata).
MEMBERS = (CONFIG, METADATA, WEIGHTS, META)
JSON_MEMBERS = (CONFIG, METADATA, META)


def _err(where: str, why: str) -> ModelFileError:
    return ModelFileError(f"{where}: {why}; only open model files from sources you trust")


def check_archive(path: Any, where: str) -> dict[str, Any]:
    """Check the archive's members and read its JSON members (bounded).

    Returns a dict of member name to ``bytes`` for the JSON members present and
    to the ``zipfile.ZipInfo`` for ``model.weights.h5``.
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            _check_members(infos, where)
            out: dict[str, Any] = {}
            for info in infos:
                if info.filename in JSON_MEMBERS:
                    with z.open(info) as f:
                        data = f.read(MAX_JSON_MEMBER_BYTES + 1)
                    if len(data) > MAX_JSON_MEMBER_BYTES:
                        raise _err(
                            where,
                            f"{info.filename} is too large (more than {MAX_JSON_MEMBER_BYTES} bytes)",
                        )
                    out[info.filename] = data
                else:
                    out[info.filename] = info
            return out
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError, KeyError, OverflowError) as exc:  # fmt: skip
        raise ModelFileError(
            f"{where}: the zip archive is damaged ({type(exc).__name__}: {exc})"
        ) from None


def _check_members(infos: list[zipfile.ZipInfo], where: str) -> None:
    names = [i.filename for i in infos]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise _err(where, f"member {dup[0]!r} appears more than once in the archive")
    odd = [n for n in names if n not in MEMBERS]
    if odd:
        raise _err(
            where,
            f"unexpected archive member {odd[0]!r} (a tlkit model holds only {', '.join(MEMBERS)})",
        )
    for n in (CONFIG, WEIGHTS):
        if n not in names:
            raise ModelFileError(f"{where}: the archive has no {n}; it is not a Keras model file")
    total = 0
    for info in infos:
        name, size = info.filename, info.file_size
        if info.flag_bits & 0x1:
            raise _err(where, f"{name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _err(where, f"{name} uses an unsupported compression method")
        cap = MAX_WEIGHTS_BYTES if name == WEIGHTS else MAX_JSON_MEMBER_BYTES
        if size > cap:
            raise _err(
                where,
                f"{name} is too large: it declares {size} bytes, more than the limit of {cap}",
            )
        if size > RATIO_FLOOR_BYTES and size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise _err(
                where,
                f"{name} declares {size} bytes stored in {info.compress_size} (more than "
                f"{MAX_COMPRESSION_RATIO}:1 compression: a decompression bomb)",
            )
        total += size
    if total > MAX_WEIGHTS_BYTES + len(JSON_MEMBERS) * MAX_JSON_MEMBER_BYTES:
        raise _err(where, f"the archive declares {total} bytes in all, more than the limits allow")


def _itemsize(dtype: Any) -> int:
    bits = re.sub(r"\D", "", str(dtype))
    return max(int(bits) // 8, 1) if bits else 1


def _count_layers(config: Any) -> int:
    count, stack = 0, [config]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            count += "class_name" in v
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


def check_declared_weights(config: Any, weights_size: int, where: str) -> Any:
    """Bytes of the variables ``config`` declares; refuse more than ``model.weights.h5`` holds.

    Keras rebuilds the model inside ``keras.StatelessScope(initialize_variables=False)``:
    variables get their shapes but no memory. Returns the bytes declared.
    """
    import keras
    from keras.src.backend.common import global_state  # pinned in tests/test_modelfile_hostile.py

    if _count_layers(config) > MAX_CONFIG_LAYERS:
        raise _err(where, f"{CONFIG} declares more than {MAX_CONFIG_LAYERS} layers")
    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        declared = 0
        for v in model.weights:
            n = 1
            for d in v.shape:
                n *= int(d)
            declared += n * _itemsize(v.dtype)
    except Exception as exc:  # Keras raises many types for a bad config
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelFileError(
            f"{where}: Keras cannot load the model ({type(exc).__name__}: {first})"
        ) from None
    finally:
        del pending[before:]  # never initialised later by another StatelessScope
    limit = WEIGHTS_FACTOR * weights_size + WEIGHTS_SLACK_BYTES
    if declared > limit or declared > WEIGHTS_FACTOR * MAX_WEIGHTS_BYTES:
        raise _err(
            where,
            f"{CONFIG} declares {declared} bytes of weights but {WEIGHTS} holds {weights_size} "
            f"(at most {WEIGHTS_FACTOR}x + {WEIGHTS_SLACK_BYTES} bytes are accepted)",
        )
    return declared


def check_weights_file(path: Any, info: zipfile.ZipInfo, where: str) -> None:
    """Refuse a ``model.weights.h5`` whose arrays declare more bytes than the file holds."""
    import h5py

    limit = info.file_size + WEIGHTS_SLACK_BYTES
    seen = {"objects": 0, "bytes": 0}

    def visit(name: str, obj: Any) -> str | None:
        seen["objects"] += 1
        if isinstance(obj, h5py.Dataset):
            seen["bytes"] += int(obj.size or 0) * int(obj.dtype.itemsize)
        if seen["objects"] > MAX_H5_OBJECTS or seen["bytes"] > limit:
            return name
        return None

    try:
        with zipfile.ZipFile(path) as z, z.open(info) as f, h5py.File(f, "r") as h5:
            stopped = h5.visititems(visit)
    except Exception as exc:  # h5py and zipfile raise many types for a damaged file
        raise ModelFileError(
            f"{where}: {WEIGHTS} is not a readable HDF5 file ({type(exc).__name__})"
        ) from None
    if stopped is not None:
        raise _err(
            where,
            f"{WEIGHTS} declares more than {limit} bytes of arrays (or more than "
            f"{MAX_H5_OBJECTS} objects) in a {info.file_size}-byte file",
        )


# -- every field read back, checked: model metadata and resume states -------------------------

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
