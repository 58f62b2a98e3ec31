"""Saving and loading FineTuners as ``.keras`` files that carry their metadata.

A ``.keras`` file is a zip archive (Keras writes ``config.json``,
``metadata.json`` and ``model.weights.h5`` into it). tlkit adds one more
entry, ``tlkit.json``: class names, backbone name and options, input size,
schedule with its progress, history and training time, and the temperature of
``FineTuner.calibrate`` when there is one (an optional key). Keras ignores entries
it does not know, so ``keras.saving.load_model`` still opens the file
(``tests/test_finetune_io.py`` pins that). Loading always uses Keras safe mode
(no arbitrary code from the file), and the metadata is checked field by field
before anything uses it.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlkit.errors import ModelFileError, TlkitError
from tlkit.finetune import _modelzip, _schema
from tlkit.finetune import schedules as sched

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.finetune._tuner import FineTuner

__all__ = ["load_tuner", "read_metadata", "save_tuner"]

META = "tlkit.json"
FORMAT = "tlkit.finetuner"
#: Version of the ``tlkit.json`` layout; 2 renamed ``input_size`` to ``image_size``.
VERSION = 2


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
        "head": tuner.head,
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

    The archive itself is checked first (:func:`~tlkit.finetune._modelzip.check_archive`:
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
            "another format); save models with FineTuner.save"
        )
    members = _modelzip.check_archive(p, where)
    if META not in members:
        raise ModelFileError(
            f"{where} is a Keras model without tlkit metadata; load it with "
            "keras.saving.load_model, or save it with FineTuner.save"
        )
    check = _schema.Checker(ModelFileError, f"{where} ({META})")
    meta = _schema.parse_json(members[META], check, META)
    return _check_meta(meta, check, where), members


def _check_meta(meta: Any, c: _schema.Checker, where: str) -> dict[str, Any]:
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
            "wrote it"
        )
    if version != VERSION:
        raise ModelFileError(
            f"{where} is a model file of format version {version}, written by a newer tlkit; "
            f"this tlkit reads version {VERSION} only: upgrade tlkit to load it"
        )
    names = c.items("class_names", meta.get("class_names"), 2, _schema.MAX_CLASSES)
    for i, n in enumerate(names):
        c.text(f"class_names[{i}]", n)
    if len(set(names)) != len(names):
        raise c.fail("class_names", "holds a name twice")
    size = c.items("image_size", meta.get("image_size"), 2, 2)
    for i, v in enumerate(size):
        c.integer(f"image_size[{i}]", v, 1, _schema.MAX_IMAGE_SIDE)
    backbone = c.text("backbone", meta.get("backbone"))
    try:
        options = backbone_config(backbone).options
    except TlkitError as exc:
        raise c.fail("backbone", f"names no known backbone ({exc})") from None
    allowed = set(options) | {"pooling"}
    meta["backbone_options"] = _schema.check_options(meta.get("backbone_options", {}), allowed, c)
    _schema.check_schedule_numbers(meta.get("schedule"), c)
    try:
        meta["schedule"] = sched.from_config(meta.get("schedule"))
    except (TlkitError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise c.fail("schedule", f"is not a valid schedule ({exc})") from None
    progress = c.mapping("progress", meta.get("progress", {}), 2)
    for key, value in progress.items():
        if key not in ("phases_done", "epochs_done"):
            raise c.fail(f"progress.{key}", "is not a progress counter")
        c.integer(f"progress.{key}", value, 0, _schema.MAX_EPOCHS)
    meta["progress"] = {k: progress.get(k, 0) for k in ("phases_done", "epochs_done")}
    if meta.get("head") is not None:
        c.integer("head", meta["head"], 1, _schema.MAX_OPTION_INT)
    meta["dropout"] = c.number("dropout", meta.get("dropout", 0.2), 0.0, 0.99)
    if meta.get("seed") is not None:
        c.integer("seed", meta["seed"], 0, 2**32 - 1)
    if meta.get("train_time_s") is not None:
        c.number("train_time_s", meta["train_time_s"], 0.0, math.inf)
    if meta.get("history") is not None:
        meta["history"] = _schema.check_history(meta["history"], c)
    meta["temperature"] = _schema.check_temperature(meta.get("temperature"), c)
    return meta


def load_tuner(cls: type[FineTuner], path: Path) -> FineTuner:
    import keras

    where = repr(str(path))
    meta, members = _read(path)
    weights = members[_modelzip.WEIGHTS]
    config = _schema.parse_json(
        members[_modelzip.CONFIG], _schema.Checker(ModelFileError, where), _modelzip.CONFIG
    )
    _modelzip.check_weights_file(path, weights, where)
    _modelzip.check_declared_weights(config, weights.file_size, where)
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
            head=meta.get("head"),
            dropout=meta["dropout"],
            seed=meta.get("seed"),
        )
    except TlkitError as exc:
        raise ModelFileError(
            f"{where}: {META} does not describe a valid FineTuner ({exc})"
        ) from None
    tuner._backbone_options = meta["backbone_options"]
    tuner._net = model
    tuner._loaded = True
    tuner.history = meta.get("history")
    tuner.train_time_s = meta.get("train_time_s")
    tuner.progress = dict(meta["progress"])
    tuner.temperature = meta["temperature"]
    return tuner
