"""Saving and loading FineTuners as ``.keras`` files that carry their metadata.

A ``.keras`` file is a zip archive (Keras writes ``config.json``,
``metadata.json`` and ``model.weights.h5`` into it). tlkit adds one more
entry, ``tlkit.json``: class names, backbone name and options, input size,
schedule with its progress, history and training time. Keras ignores entries
it does not know, so ``keras.saving.load_model`` still opens the file
(``tests/test_finetune_io.py`` pins that). Loading always uses Keras safe mode
(no arbitrary code from the file), and the metadata is checked field by field
before anything uses it.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlkit.errors import ModelFileError, TlkitError
from tlkit.finetune import schedules as sched
from tlkit.finetune._callbacks import TrainingHistory

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.finetune._tuner import FineTuner

__all__ = ["load_tuner", "read_metadata", "save_tuner"]

META = "tlkit.json"
FORMAT = "tlkit.finetuner"
VERSION = 1
MAX_META_BYTES = 8 << 20


def save_tuner(tuner: FineTuner, path: Path) -> Path:
    if path.suffix != ".keras":
        raise ModelFileError(f"{str(path)!r}: a model file name must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.keras")
    tuner.model.save(tmp)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "class_names": list(tuner.class_names),
        "backbone": tuner.backbone_name,
        "backbone_options": dict(getattr(tuner, "_backbone_options", {})),
        "input_size": list(tuner.image_size),  # the file format keeps its key
        "schedule": tuner.schedule.get_config(),
        "progress": dict(tuner.progress),
        "head": tuner.head,
        "dropout": tuner.dropout,
        "seed": tuner.seed,
        "train_time_s": tuner.train_time_s,
        "history": tuner.history.to_dict() if tuner.history is not None else None,
    }
    with zipfile.ZipFile(tmp, "a") as z:
        z.writestr(META, json.dumps(meta))
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``tlkit.json`` of a model file; :class:`ModelFileError` if absent or bad."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file not found: {str(p)!r}")
    if not zipfile.is_zipfile(p):
        raise ModelFileError(
            f"{str(p)!r} is not a .keras model file (not a zip archive: truncated, corrupt, or "
            "another format); save models with FineTuner.save"
        )
    try:
        with zipfile.ZipFile(p) as z:
            try:
                info = z.getinfo(META)
            except KeyError:
                raise ModelFileError(
                    f"{str(p)!r} is a Keras model without tlkit metadata; load it with "
                    "keras.saving.load_model, or save it with FineTuner.save"
                ) from None
            if info.file_size > MAX_META_BYTES:
                raise ModelFileError(f"{str(p)!r}: {META} is too large ({info.file_size} bytes)")
            meta = json.loads(z.read(info).decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
        raise ModelFileError(f"{str(p)!r}: cannot read {META} ({exc})") from None
    return _check_meta(meta, p)


def _check_meta(meta: Any, p: Path) -> dict[str, Any]:
    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{str(p)!r}: {META} has a bad {what}")

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise bad("format")
    if meta.get("version") != VERSION:
        raise ModelFileError(
            f"{str(p)!r} was written by another tlkit version (format {meta.get('version')!r}, "
            f"this tlkit reads {VERSION})"
        )
    names = meta.get("class_names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise bad("class_names")
    size = meta.get("input_size")
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10_000 for v in size)
    ):
        raise bad("input_size")
    if not isinstance(meta.get("backbone"), str) or not isinstance(
        meta.get("backbone_options", {}), dict
    ):
        raise bad("backbone")
    try:
        meta["schedule"] = sched.from_config(meta.get("schedule"))
        if meta.get("history") is not None:
            meta["history"] = TrainingHistory.from_dict(meta["history"])
    except (TlkitError, ValueError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{str(p)!r}: {META} has a bad schedule or history ({exc})") from None
    if meta.get("train_time_s") is not None and not isinstance(meta["train_time_s"], (int, float)):
        raise bad("train_time_s")
    return meta


def load_tuner(cls: type[FineTuner], path: Path) -> FineTuner:
    import keras

    meta = read_metadata(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged archive
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelFileError(
            f"{str(path)!r}: Keras cannot load the model ({type(exc).__name__}: {first})"
        ) from None
    shape = model.input_shape
    if isinstance(shape, list) or list(shape[1:3]) != meta["input_size"]:
        raise ModelFileError(
            f"{str(path)!r}: the model takes input {shape} but its metadata says "
            f"{meta['input_size']}"
        )
    if model.output_shape[-1] != len(meta["class_names"]):
        raise ModelFileError(
            f"{str(path)!r}: the model has {model.output_shape[-1]} outputs for "
            f"{len(meta['class_names'])} class names"
        )
    tuner = cls.__new__(cls)
    tuner.__init__(  # type: ignore[misc]
        backbone=meta["backbone"],
        class_names=meta["class_names"],
        weights=None,
        image_size=tuple(meta["input_size"]),
        schedule=meta["schedule"],
        head=meta.get("head"),
        dropout=float(meta.get("dropout", 0.2)),
        seed=meta.get("seed"),
    )
    tuner._backbone_options = meta["backbone_options"]
    tuner._net = model
    tuner._loaded = True
    tuner.history = meta.get("history")
    tuner.train_time_s = meta.get("train_time_s")
    progress = meta.get("progress") or {}
    tuner.progress = {k: int(progress.get(k, 0)) for k in ("phases_done", "epochs_done")}
    return tuner
