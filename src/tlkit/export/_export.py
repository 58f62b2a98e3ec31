"""export(): Keras's own exporters, the files written atomically, then checked against Keras.

:func:`export` checks its arguments, has Keras write the model
(``model.export``), then :func:`write_export` puts it in place, and
:func:`~tlkit.export.check_export` runs the file beside the Keras model.

Where an export goes: an export is a set of paths: the model (a
``.tflite``/``.onnx`` file or a SavedModel folder), its labels file, and a
small JSON marker that says tlkit wrote them (inside a SavedModel folder:
``tlkit-export.json``; beside a file: ``model.tflite.tlkit-export.json``). The
marker holds the SHA-256 of the model file (of ``saved_model.pb`` for a
folder, with the folder's entries) and of the labels file, so a file replaced
or edited since is not taken for tlkit's. :func:`write_export` refuses what
tlkit did not write, then writes model, labels and marker atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._atomic import atomic_file, atomic_folder
from tlkit._keras_model import input_image_size, unwrap
from tlkit._validation import check_bool, check_choice, check_int, check_number, check_path
from tlkit._version import __version__
from tlkit.errors import ExportError, InvalidArgumentError
from tlkit.export._check import FORMATS, QUANTIZATIONS, batches, check, temperature_of
from tlkit.export._report import ExportReport, temperature_sentence
from tlkit.export._runtime import labels_path, labels_text, require

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from tlkit.protocols import TrainedClassifier

__all__ = ["MARKER_NAME", "export", "marker_path", "write_export"]

log = logging.getLogger("tlkit.export")

_SUFFIX = {"litert": ".tflite", "onnx": ".onnx", "saved_model": ""}


def export(
    model: keras.Model | TrainedClassifier,
    path: str | os.PathLike[str],
    format: str = "litert",
    quantize: str | None = None,
    *,
    representative: Any = None,
    check_data: Any = None,
    class_names: Sequence[str] | None = None,
    min_agreement: float | None = None,
    max_representative: int = 200,
    batch_size: int = 32,
    latency_runs: int = 20,
    overwrite: bool = False,
) -> ExportReport:
    """Export a Keras model (or FineTuner) with Keras's own exporter, then check the file.

    The model is written with ``model.export(path, format=...)``: LiteRT files
    through the TensorFlow Lite converter (quantization set on it), ONNX
    through ``tf2onnx``, SavedModels through TensorFlow. The export takes raw
    RGB pixels, floats in ``[0, 255]``, exactly like the Keras model, and a
    labels file (one class name per line) is written beside it
    (``model.tflite`` -> ``model.labels.txt``).

    The plain model is exported: test-time augmentation
    (``FineTuner.predict(..., tta=...)``) is not part of the file; an app that
    wants it averages the file's outputs over the views itself. Nor is the
    temperature of a calibrated FineTuner (:meth:`~tlkit.finetune.FineTuner.calibrate`):
    the file outputs the network's probabilities ``p``, and the calibrated
    ones are ``softmax(log(p) / T)``. The report's ``temperature`` and
    :meth:`~ExportReport.summary`, the export's marker file and a warning on
    the ``tlkit.export`` logger say so.

    Everything is written atomically: the model, labels file and marker go to
    temporary siblings first and are renamed into place only once all of them
    are written, so a failed export (a converter error, a class name that
    cannot go in the labels file) leaves a previous export exactly as it was.

    Then the exported file is loaded in its own runtime (the ``ai-edge-litert``
    interpreter, ONNX Runtime, TensorFlow) and run on ``check_data`` beside the
    Keras model: :func:`check_export`.

    Parameters
    ----------
    model : keras.Model or FineTuner
        A Keras model taking raw pixels, or a
        :class:`~tlkit.protocols.TrainedClassifier` such as a FineTuner, whose
        ``.model`` is one (its ``class_names`` are then used for the labels file).
    path : str or os.PathLike
        Output file: ``.tflite`` for LiteRT, ``.onnx`` for ONNX (the suffix is
        added when missing); a folder for a SavedModel.
    format : {"litert", "onnx", "saved_model"}
        Export format.
    quantize : {None, "dynamic", "float16", "int8"}
        LiteRT only. ``"dynamic"``: int8 weights, float activations;
        ``"float16"``: float16 weights; ``"int8"``: weights and activations
        int8 (full-integer kernels; input and output stay float so the file
        takes raw pixels), calibrated on ``representative``.
    representative : SplitPart, tf.data.Dataset, array or None
        Calibration images for ``quantize="int8"`` (required then): e.g.
        ``split.train``. At most ``max_representative`` images are used.
    check_data : SplitPart, tf.data.Dataset, (images, labels) or array, optional
        Held-out images (e.g. ``split.test``) to check the export on. Without
        it nothing is checked and the report says so.
    class_names : sequence of str, optional
        Class names for the labels file. Default: the model's ``class_names``,
        else the check data's, else ``class_0``, ``class_1``, ...
    min_agreement : float, optional
        Top-1 agreement required. Default: :data:`FLOAT_MIN_AGREEMENT` (0.98)
        for float formats (no quantization, or float16), none for
        ``"dynamic"`` and ``"int8"``, whose report states the accuracy change.
    max_representative : int
        Most calibration images read from ``representative`` (default 200).
    batch_size : int
        Batch size when reading data and checking.
    latency_runs : int
        Timed batch-1 runs for the latency figures (median reported).
    overwrite : bool
        Replace a previous tlkit export at ``path`` (default ``False``: an
        existing file, a non-empty folder or a labels file with other class
        names there is refused). Even then only a previous tlkit export is
        replaced, recognised by the marker tlkit writes with it
        (``tlkit-export.json`` inside a SavedModel folder,
        ``model.tflite.tlkit-export.json`` beside a file) and the SHA-256 of
        the files it lists; a folder holding other files, a file changed
        since, or anything without a marker is refused. A folder, link or
        special file where a file goes (or the working folder as a
        SavedModel) is never replaced.

    Returns
    -------
    ExportReport

    Raises
    ------
    tlkit.errors.ExportCheckError
        The export agrees with the Keras model on fewer images than required;
        the message gives the figures and the file is left for inspection.
    tlkit.errors.InvalidArgumentError
        An argument value tlkit cannot use (``format="x"``, ``quantize`` with a
        format other than ``"litert"``, a path whose suffix is not the
        format's, ``batch_size=0``, ...); the message names the argument.
    tlkit.errors.ExportError
        The converter failed, the class names do not fit the model, or
        something tlkit will not replace is at ``path`` (the message names it).
    tlkit.errors.MissingDependencyError
        ``tf2onnx``, ``onnx`` or ``onnxruntime`` is missing for ONNX: install
        ``tlkit[export]``.

    Examples
    --------
    A tiny model here; pass a FineTuner, ``quantize="int8"``,
    ``representative=split.train`` and ``check_data=split.test`` for yours.

    >>> import tempfile, keras, numpy as np
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> from tlkit.export import export
    >>> report = export(model, tempfile.mkdtemp() + "/model.tflite", check_data=images,
    ...                 class_names=["ok", "crack"], latency_runs=1)
    >>> report.path.name, report.labels_path.name
    ('model.tflite', 'model.labels.txt')
    >>> report.passed, report.n_checked, report.agreement
    (True, 8, 1.0)
    """
    keras_model, holder = unwrap(model)
    names = getattr(holder, "class_names", None)
    temperature = temperature_of(model)
    _check_arguments(
        format,
        quantize,
        representative,
        min_agreement,
        max_representative=max_representative,
        batch_size=batch_size,
        latency_runs=latency_runs,
    )
    overwrite = check_bool("overwrite", overwrite)
    size = input_image_size(keras_model, ExportError, rgb=True)
    path = _output_path(check_path("path", path), format)
    if names is None:
        names = class_names
    if names is None:
        names = getattr(check_data, "class_names", None)
    if format == "onnx":
        require("tf2onnx", "onnx", "onnxruntime", why="ONNX export")

    notes: list[str] = []
    names = _class_names(names, int(keras_model.output_shape[-1]), notes)
    text = labels_text(names)  # a name that cannot go in the file is refused before writing

    kwargs: dict[str, Any] = {}
    if format == "litert":
        kwargs = _converter_options(quantize, representative, size, max_representative, batch_size)
    keras_format = "tf_saved_model" if format == "saved_model" else format
    # A model loaded from a .keras file has never been called; the ONNX exporter refuses
    # such a model, so call it once on a dummy batch of the input shape.
    keras_model(np.zeros((1, *size, 3), np.float32), training=False)

    write_model = _model_writer(keras_model, format, keras_format, quantize, kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder of {str(path)!r}: {exc}") from None
    write_export(path, format, text, write_model, overwrite=overwrite, temperature=temperature)
    if temperature is not None:
        log.warning("tlkit export %s: %s", path, temperature_sentence(temperature))
    return check(
        keras_model,
        path,
        check_data,
        quantize=quantize,
        min_agreement=min_agreement,
        batch_size=batch_size,
        latency_runs=latency_runs,
        notes=notes,
        trust=True,  # the file tlkit has just written
        temperature=temperature,
    )


# -- helpers ------------------------------------------------------------------------------------


def _check_arguments(
    format: str,
    quantize: str | None,
    representative: Any,
    min_agreement: float | None,
    *,
    max_representative: int,
    batch_size: int,
    latency_runs: int,
) -> None:
    """Refuse an argument value :func:`export` cannot use, naming the argument."""
    check_choice("format", format, FORMATS)
    check_choice("quantize", quantize, QUANTIZATIONS)
    if quantize is not None and format != "litert":
        raise InvalidArgumentError(
            f"quantize={quantize!r} works with format 'litert' only; {format} exports are float32"
        )
    if quantize == "int8" and representative is None:
        raise InvalidArgumentError(
            "quantize='int8' needs representative images to calibrate the int8 ranges: pass "
            "representative=split.train (a SplitPart, dataset or image array)"
        )
    for name, value in [
        ("max_representative", max_representative),
        ("batch_size", batch_size),
        ("latency_runs", latency_runs),
    ]:
        check_int(name, value, minimum=1)
    check_number("min_agreement", min_agreement, low=0.0, high=1.0, allow_none=True)


def _class_names(names: Sequence[Any] | None, num_classes: int, notes: list[str]) -> list[str]:
    """The labels file's class names: ``names``, else ``class_0``, ... (said in ``notes``)."""
    if names is None:
        names = [f"class_{i}" for i in range(num_classes)]
        notes.append("no class names were given: the labels file says class_0, class_1, ...")
    names = [str(c) for c in names]
    if len(names) != num_classes:
        raise ExportError(
            f"{len(names)} class names {names} but the model has {num_classes} outputs"
        )
    return names


def _model_writer(
    keras_model: keras.Model,
    format: str,
    keras_format: str,
    quantize: str | None,
    kwargs: dict[str, Any],
) -> Callable[[Path], None]:
    """``write_model(tmp)`` for :func:`write_export`: Keras's exporter, failures as ExportError."""

    def write_model(tmp: Path) -> None:
        try:
            with _quiet_converters():
                keras_model.export(str(tmp), format=keras_format, verbose=False, **kwargs)
        except (ImportError, ModuleNotFoundError) as exc:
            raise ExportError(f"{format} export needs a missing package: {exc}") from exc
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = (
                "; some layers have no int8 kernel: try quantize='dynamic'"
                if quantize == "int8"
                else ""
            )
            raise ExportError(f"{format} export of the model failed: {first}{hint}") from exc

    return write_model


def _output_path(path: str | os.PathLike[str], format: str) -> Path:
    p = Path(path)
    want = _SUFFIX[format]
    if p.name in ("", ".", ".."):
        if format != "saved_model":
            raise ExportError(f"path {str(p)!r} names a folder; give a file name, e.g. model{want}")
        p = Path(os.path.abspath(p))  # refused below when it is the working folder
    if format == "saved_model":
        if p.suffix.lower() in (".tflite", ".onnx", ".keras"):
            raise InvalidArgumentError(
                f"a SavedModel is a folder; {str(p)!r} looks like a file name"
            )
        return p
    if p.suffix.lower() != want:
        if p.suffix.lower() in (".tflite", ".onnx", ".keras"):
            raise InvalidArgumentError(
                f"format {format!r} writes a {want} file; path {str(p)!r} has suffix {p.suffix}"
            )
        p = p.with_name(p.name + want)
    return p


def _converter_options(
    quantize: str | None, representative: Any, size: tuple[int, int], limit: int, batch_size: int
) -> dict[str, Any]:
    """Keyword options ``model.export(format="litert")`` sets on the TFLite converter."""
    if quantize is None:
        return {}
    import tensorflow as tf

    opts: dict[str, Any] = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        opts["target_spec"] = {"supported_types": [tf.float16]}
    elif quantize == "int8":
        images: list[Any] = []
        for x, _ in batches(representative, size, batch_size):
            images.extend(x[: limit - len(images)])
            if len(images) >= limit:
                break
        if not images:
            raise ExportError("representative holds no images to calibrate int8 on")

        def gen() -> Iterator[list[np.ndarray]]:
            for img in images:
                yield [img[None].astype(np.float32)]

        opts["representative_dataset"] = gen
        opts["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
    return opts


class _quiet_converters:
    """Keep tf2onnx's and absl's INFO chatter off stderr while converting."""

    def __enter__(self) -> None:
        self._levels = {}
        for name in ("tf2onnx", "absl"):
            log = logging.getLogger(name)
            self._levels[name] = log.level
            log.setLevel(logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)


# -- where an export goes: the export set, refused or written atomically ----------------------------


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
