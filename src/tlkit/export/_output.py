"""Where an export goes: refuse what tlkit did not write, then write model, labels and marker atomically.

An export is a set of paths: the model (a ``.tflite``/``.onnx`` file or a
SavedModel folder), its labels file, and a small JSON marker that says tlkit
wrote them (inside a SavedModel folder: ``tlkit-export.json``; beside a file:
``model.tflite.tlkit-export.json``). The marker holds the SHA-256 of the model
file (of ``saved_model.pb`` for a folder, with the folder's entries) and of the
labels file, so a file replaced or edited since is not taken for tlkit's.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tlkit._atomic import atomic_file, atomic_folder
from tlkit._version import __version__
from tlkit.errors import ExportError
from tlkit.export._runtime import labels_path

__all__ = ["MARKER_NAME", "marker_path", "write_export"]

#: Name of the marker file tlkit writes inside a SavedModel folder it exported.
MARKER_NAME = "tlkit-export.json"
#: Suffix of the marker file tlkit writes beside a ``.tflite`` or ``.onnx`` file it exported.
MARKER_SUFFIX = ".tlkit-export.json"
_MARKER_MAX_BYTES = 64 * 1024


def marker_path(path: Path, format: str) -> Path:
    """The marker of an export at ``path``: inside a SavedModel folder, beside a file."""
    if format == "saved_model":
        return path / MARKER_NAME
    return path.with_name(path.name + MARKER_SUFFIX)


def write_export(
    path: Path,
    format: str,
    labels_text: str,
    write_model: Callable[[Path], None],
    *,
    overwrite: bool,
    temperature: float | None = None,
) -> None:
    """Write an export atomically: ``write_model(tmp)`` fills a temporary sibling of ``path``.

    Refuses, before anything is written, an existing export set unless
    ``overwrite`` and it is a previous tlkit export. The model, labels and
    marker are all staged first; only when every one is written are they
    renamed into place (model, labels, then marker), so a failure leaves the
    previous files as they were. ``temperature`` (a calibrated FineTuner's, not
    applied inside the model) goes in the marker when given.
    """
    labels = labels_path(path)
    replace = _check_targets(path, format, labels, labels_text, overwrite)
    labels_sha = _sha256(labels_text.encode("utf-8"))
    if format == "saved_model":
        with (
            atomic_file(labels, error=ExportError) as labels_tmp,
            atomic_folder(path, replace=replace, error=ExportError) as model_tmp,
        ):
            labels_tmp.write_text(labels_text, encoding="utf-8")
            write_model(model_tmp)
            pb = model_tmp / "saved_model.pb"
            if not pb.is_file():
                raise ExportError(
                    f"the SavedModel export wrote no saved_model.pb for {str(path)!r}"
                )
            entries = sorted([*os.listdir(model_tmp), MARKER_NAME])
            marker = _marker(
                format, _sha256_file(pb), labels_sha, labels.name, entries, temperature
            )
            (model_tmp / MARKER_NAME).write_text(marker, encoding="utf-8")
        return
    marker_file = marker_path(path, format)
    with (
        atomic_file(marker_file, error=ExportError) as marker_tmp,
        atomic_file(labels, error=ExportError) as labels_tmp,
        atomic_file(path, error=ExportError) as model_tmp,
    ):
        labels_tmp.write_text(labels_text, encoding="utf-8")
        write_model(model_tmp)
        if not model_tmp.is_file():
            raise ExportError(f"the {format} export wrote no file for {str(path)!r}")
        marker = _marker(
            format, _sha256_file(model_tmp), labels_sha, labels.name, None, temperature
        )
        marker_tmp.write_text(marker, encoding="utf-8")


# -- the refusal rules --------------------------------------------------------------------------


def _check_targets(
    path: Path, format: str, labels: Path, labels_text: str, overwrite: bool
) -> bool:
    """Raise unless writing the export set is safe; return whether a non-empty folder is replaced."""
    if format == "saved_model":
        _refuse_cwd(path)
    found: list[str] = []  # what is there and would be replaced
    model_found = False  # a model file, or a non-empty SavedModel folder
    model_st = _lstat(path)
    if model_st is not None:
        if stat.S_ISLNK(model_st.st_mode):
            raise ExportError(_never(path, "a symbolic link"))
        if format == "saved_model":
            if not stat.S_ISDIR(model_st.st_mode):
                raise ExportError(_never(path, "a file (a SavedModel is a folder)"))
            if any(os.scandir(path)):
                model_found = True
                found.append(f"{str(path)!r} (a folder that is not empty)")
        elif not stat.S_ISREG(model_st.st_mode):
            raise ExportError(_never(path, "a folder or special file"))
        else:
            model_found = True
            found.append(repr(str(path)))
    labels_st = _lstat(labels)
    labels_differ = False
    if labels_st is not None:
        if not stat.S_ISREG(labels_st.st_mode):
            raise ExportError(_never(labels, "not a regular file"))
        labels_differ = _read_capped(labels, len(labels_text.encode("utf-8")) + 1) != (
            labels_text.encode("utf-8")
        )
        if labels_differ:
            found.append(f"{str(labels)!r} (other class names)")
    marker = marker_path(path, format)
    if format != "saved_model":
        marker_st = _lstat(marker)
        if marker_st is not None:
            if not stat.S_ISREG(marker_st.st_mode):
                raise ExportError(_never(marker, "not a regular file"))
            found.append(repr(str(marker)))
    if not found:
        return False
    if not overwrite:
        raise ExportError(
            f"export to {str(path)!r} would replace {', '.join(found)}: pass overwrite=True "
            "(tlkit export --overwrite) to replace a previous tlkit export there, or choose "
            "another path. tlkit never replaces files it did not write"
        )
    why = _not_ours(path, format, labels, labels_differ, model_found)
    if why:
        raise ExportError(
            f"{str(path)!r} is not a previous tlkit export ({why}); even with overwrite=True "
            "tlkit replaces only its own exports: move it away or choose another path"
        )
    return model_found


def _not_ours(
    path: Path, format: str, labels: Path, labels_differ: bool, model_exists: bool
) -> str:
    """Why the existing export set is not tlkit's, or ``""`` when it is."""
    marker = marker_path(path, format)
    if not model_exists:
        return f"{str(labels)!r} exists without its model" if labels_differ else ""
    marker_st = _lstat(marker)
    if marker_st is None:
        return f"no marker {str(marker)!r}"
    if not stat.S_ISREG(marker_st.st_mode):
        return f"the marker {str(marker)!r} is not a regular file"
    try:
        raw = _read_capped(marker, _MARKER_MAX_BYTES)
        data: Any = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return f"no marker {str(marker)!r}"
    except (OSError, UnicodeDecodeError, ValueError):
        return f"the marker {str(marker)!r} is unreadable"
    if not isinstance(data, dict) or data.get("tlkit_export") != 1 or data.get("format") != format:
        return f"the marker {str(marker)!r} is not a tlkit {format} marker"
    if format == "saved_model":
        listed = data.get("entries")
        extra = sorted(set(os.listdir(path)) - set(listed if isinstance(listed, list) else []))
        if extra:
            return f"it holds files tlkit did not write: {extra[:5]}"
        pb = path / "saved_model.pb"
        if _sha256_file_or_none(pb) != data.get("sha256"):
            return "its saved_model.pb changed since tlkit wrote it"
    elif _sha256_file_or_none(path) != data.get("sha256"):
        return "the file changed since tlkit wrote it"
    if labels_differ and _sha256_file_or_none(labels) != data.get("labels_sha256"):
        return f"{str(labels)!r} changed since tlkit wrote it"
    return ""


def _refuse_cwd(path: Path) -> None:
    target = Path(os.path.abspath(path))
    cwd = Path(os.path.abspath(os.getcwd()))
    if target == cwd or target in cwd.parents:
        raise ExportError(
            f"a SavedModel is written as a folder of its own; {str(path)!r} is the working "
            "folder (or holds it): pass a new folder name, e.g. -o model_saved_model"
        )


def _never(path: Path, what: str) -> str:
    return (
        f"{str(path)!r} is {what}; tlkit never replaces it (not even with overwrite=True): "
        "move it away or choose another path"
    )


# -- files --------------------------------------------------------------------------------------


def _marker(
    format: str,
    sha: str,
    labels_sha: str,
    labels_name: str,
    entries: list[str] | None,
    temperature: float | None = None,
) -> str:
    data: dict[str, Any] = {
        "tlkit_export": 1,
        "tlkit_version": __version__,
        "format": format,
        "sha256": sha,
        "labels": labels_name,
        "labels_sha256": labels_sha,
    }
    if entries is not None:
        data["entries"] = entries
    if temperature is not None:
        data["temperature"] = temperature
        data["temperature_note"] = (
            "not applied inside the model: calibrated probabilities = softmax(log(p) / temperature)"
        )
    return json.dumps(data, indent=1) + "\n"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _read_capped(path: Path, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_file_or_none(path: Path) -> str | None:
    st = _lstat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    return _sha256_file(path)
