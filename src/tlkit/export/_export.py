"""export() and check_export(): Keras's own exporters, then the exported file checked against Keras."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlkit.errors import ExportCheckError, ExportError
from tlkit.export._report import ExportReport
from tlkit.export._runtime import (
    ExportedModel,
    format_of,
    labels_path,
    require,
    size_of,
    write_labels,
)

__all__ = ["FLOAT_MIN_AGREEMENT", "FORMATS", "QUANTIZATIONS", "check_export", "export"]

FORMATS = ("litert", "onnx", "saved_model")
QUANTIZATIONS = (None, "dynamic", "float16", "int8")
#: Top-1 agreement a float export (no quantization, or float16) must reach on the check data.
FLOAT_MIN_AGREEMENT = 0.98
_SUFFIX = {"litert": ".tflite", "onnx": ".onnx", "saved_model": ""}
_FLOAT = (None, "float16")


def export(
    model: Any,
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
) -> ExportReport:
    """Export a Keras model (or FineTuner) with Keras's own exporter, then check the file.

    The model is written with ``model.export(path, format=...)``: LiteRT files
    through the TensorFlow Lite converter (quantization set on it), ONNX
    through ``tf2onnx``, SavedModels through TensorFlow. The export takes raw
    RGB pixels, floats in ``[0, 255]``, exactly like the Keras model, and a
    labels file (one class name per line) is written beside it
    (``model.tflite`` -> ``model.labels.txt``).

    Then the exported file is loaded in its own runtime (the ``ai-edge-litert``
    interpreter, ONNX Runtime, TensorFlow) and run on ``check_data`` beside the
    Keras model: :func:`check_export`.

    Parameters
    ----------
    model : keras.Model or FineTuner
        A Keras model taking raw pixels, or an object whose ``.model`` is one
        (its ``class_names`` are then used for the labels file).
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

    Returns
    -------
    ExportReport

    Raises
    ------
    tlkit.errors.ExportCheckError
        The export agrees with the Keras model on fewer images than required;
        the message gives the figures and the file is left for inspection.
    tlkit.errors.ExportError
        An invalid argument, or the converter failed.
    tlkit.errors.MissingDependencyError
        ``tf2onnx``, ``onnx`` or ``onnxruntime`` is missing for ONNX: install
        ``tlkit[export]``.

    Examples
    --------
    >>> from tlkit.export import export
    >>> report = export(tuner, "out/model.tflite", quantize="int8",
    ...                 representative=split.train, check_data=split.test)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    litert-int8 export: out/model.tflite (2.61 MB), .keras 9.51 MB
    agreement with Keras 98.9% on 394 images; max probability difference 0.08
    ...
    """
    keras_model, names, _ = _unwrap(model)
    if format not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(
            f"quantize must be None, 'dynamic', 'float16' or 'int8'; got {quantize!r}"
        )
    if quantize is not None and format != "litert":
        raise ExportError(
            f"quantize={quantize!r} works with format 'litert' only; {format} exports are float32"
        )
    if quantize == "int8" and representative is None:
        raise ExportError(
            "quantize='int8' needs representative images to calibrate the int8 ranges: pass "
            "representative=split.train (a SplitPart, dataset or image array)"
        )
    _check_count("max_representative", max_representative)
    _check_count("batch_size", batch_size)
    _check_count("latency_runs", latency_runs)
    size = _input_size(keras_model)
    path = _output_path(path, format)
    if names is None:
        names = class_names
    if names is None:
        names = getattr(check_data, "class_names", None)
    if format == "onnx":
        require("tf2onnx", "onnx", "onnxruntime", why="ONNX export")

    kwargs: dict[str, Any] = {}
    if format == "litert":
        kwargs = _converter_options(quantize, representative, size, max_representative, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras_format = "tf_saved_model" if format == "saved_model" else format
    if format == "saved_model" and path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    try:
        with _quiet_converters():
            keras_model.export(str(path), format=keras_format, verbose=False, **kwargs)
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

    notes: list[str] = []
    num_classes = int(keras_model.output_shape[-1])
    if names is None:
        names = [f"class_{i}" for i in range(num_classes)]
        notes.append("no class names were given: the labels file says class_0, class_1, ...")
    names = [str(c) for c in names]
    if len(names) != num_classes:
        raise ExportError(
            f"{len(names)} class names {names} but the model has {num_classes} outputs"
        )
    labels = labels_path(path)
    write_labels(labels, names)
    return _check(
        keras_model,
        path,
        check_data,
        quantize=quantize,
        min_agreement=min_agreement,
        batch_size=batch_size,
        latency_runs=latency_runs,
        notes=notes,
    )


def check_export(
    model: Any,
    path: str | os.PathLike[str],
    check_data: Any,
    *,
    quantize: str | None = None,
    min_agreement: float | None = None,
    batch_size: int = 32,
    latency_runs: int = 20,
) -> ExportReport:
    """Run an exported file beside its Keras model on check data and compare predictions.

    Parameters
    ----------
    model : keras.Model or FineTuner
        The model the file was exported from.
    path : str or os.PathLike
        The exported ``.tflite``/``.onnx`` file or SavedModel folder.
    check_data : SplitPart, tf.data.Dataset, (images, labels), array or None
        Images to predict (labels, when present, give the accuracies). ``None``
        measures size and latency only and notes that nothing was checked.
    quantize : {None, "dynamic", "float16", "int8"}
        How the file was quantized: sets the default ``min_agreement`` and the
        report's ``quantize``.
    min_agreement : float, optional
        Top-1 agreement required (default: 0.98 for float formats, none for
        ``"dynamic"`` and ``"int8"``).
    batch_size, latency_runs : int
        As in :func:`export`.

    Returns
    -------
    ExportReport

    Raises
    ------
    tlkit.errors.ExportCheckError
        Agreement below ``min_agreement``: the message names the figures.

    Examples
    --------
    >>> report = check_export(model, "model.tflite", split.test)  # doctest: +SKIP
    >>> report.agreement  # doctest: +SKIP
    1.0
    """
    return _check(
        model,
        path,
        check_data,
        quantize=quantize,
        min_agreement=min_agreement,
        batch_size=batch_size,
        latency_runs=latency_runs,
        notes=(),
    )


def _check(
    model: Any,
    path: str | os.PathLike[str],
    check_data: Any,
    *,
    quantize: str | None,
    min_agreement: float | None,
    batch_size: int,
    latency_runs: int,
    notes: Sequence[str],
) -> ExportReport:
    _check_count("batch_size", batch_size)
    _check_count("latency_runs", latency_runs)
    keras_model, _, _ = _unwrap(model)
    if quantize not in QUANTIZATIONS:
        raise ExportError(
            f"quantize must be None, 'dynamic', 'float16' or 'int8'; got {quantize!r}"
        )
    if min_agreement is None and quantize in _FLOAT:
        min_agreement = FLOAT_MIN_AGREEMENT
    if min_agreement is not None and not 0.0 <= float(min_agreement) <= 1.0:
        raise ExportError(f"min_agreement must be in [0, 1], got {min_agreement!r}")
    path = Path(path)
    fmt = format_of(path)
    exported = ExportedModel(path)
    size = _input_size(keras_model)
    if exported.input_size != size:
        raise ExportError(
            f"{str(path)!r} takes {exported.input_size[0]}x{exported.input_size[1]} images but "
            f"the Keras model takes {size[0]}x{size[1]}: it was exported from another model"
        )
    notes = list(notes)
    keras_probs, exp_probs, labels = [], [], []
    sample = None
    if check_data is not None:
        for x, y in _batches(check_data, size, batch_size):
            if sample is None:
                sample = x[:1]
            keras_probs.append(np.asarray(keras_model.predict_on_batch(x), np.float64))
            exp_probs.append(np.asarray(exported.predict_on_batch(x), np.float64))
            labels.append(y)
        if not keras_probs:
            raise ExportError("check_data holds no images")
    n = 0
    agreement = acc_before = acc_after = max_diff = None
    if keras_probs:
        kp, ep = np.concatenate(keras_probs), np.concatenate(exp_probs)
        if kp.shape != ep.shape:
            raise ExportError(
                f"{str(path)!r} outputs shape {ep.shape[1:]} but the Keras model {kp.shape[1:]}"
            )
        n = len(kp)
        k_top, e_top = np.argmax(kp, axis=1), np.argmax(ep, axis=1)
        agreement = float(np.mean(k_top == e_top))
        max_diff = float(np.max(np.abs(kp - ep))) if np.all(np.isfinite(ep)) else float("inf")
        if all(y is not None for y in labels):
            y_true = np.concatenate(labels)
            acc_before = float(np.mean(k_top == y_true))
            acc_after = float(np.mean(e_top == y_true))
        else:
            notes.append("check data without labels: accuracy not measured")
    else:
        notes.append("not checked: pass check_data (e.g. split.test) to compare predictions")
        sample = np.full((1, *size, 3), 127.0, np.float32)
    latency = _latency_ms(exported.predict_on_batch, sample, latency_runs)
    keras_latency = _latency_ms(keras_model.predict_on_batch, sample, latency_runs)
    labels_file = labels_path(path)
    report = ExportReport(
        path=path,
        format=fmt,
        quantize=quantize,
        labels_path=labels_file if labels_file.is_file() else None,
        size_bytes=size_of(path),
        keras_size_bytes=_keras_size(keras_model),
        n_checked=n,
        agreement=agreement,
        accuracy_before=acc_before,
        accuracy_after=acc_after,
        max_prob_diff=max_diff,
        latency_ms=latency,
        keras_latency_ms=keras_latency,
        min_agreement=None if min_agreement is None else float(min_agreement),
        runtime=exported.runtime,
        notes=tuple(notes),
    )
    if not report.passed:
        acc = (
            f"; accuracy {acc_before:.1%} (Keras) vs {acc_after:.1%} (export)"
            if acc_before is not None and acc_after is not None
            else ""
        )
        raise ExportCheckError(
            f"the {report.kind} export {str(path)!r} agrees with the Keras model on "
            f"{agreement:.1%} of {n} images (top-1), below the {report.min_agreement:.0%} "
            f"required; max probability difference {max_diff:.3g}{acc}. Do not ship it: check "
            "that the model includes its own preprocessing (it must take raw pixels in [0, 255])",
            report,
        )
    return report


# -- helpers ------------------------------------------------------------------------------------


def _unwrap(obj: Any) -> tuple[Any, list[str] | None, tuple[int, int] | None]:
    """(keras model, class names or None, input size or None) of a model or FineTuner."""
    import keras

    if isinstance(obj, keras.Model):
        return obj, None, None
    inner = getattr(obj, "model", None)
    if isinstance(inner, keras.Model):
        names = getattr(obj, "class_names", None)
        size = getattr(obj, "input_size", None)
        return inner, (None if names is None else [str(c) for c in names]), size
    raise ExportError(
        "model must be a keras.Model or an object whose .model is one (a tlkit FineTuner), "
        f"got {type(obj).__name__}"
    )


def _input_size(model: Any) -> tuple[int, int]:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list) or shape is None or len(shape) != 4 or None in shape[1:3]:
        raise ExportError(
            f"the model must take images of a fixed size (batch, height, width, 3); its input "
            f"shape is {shape}"
        )
    if shape[3] != 3:
        raise ExportError(f"the model must take RGB images (3 channels); input shape {shape}")
    return int(shape[1]), int(shape[2])


def _output_path(path: str | os.PathLike[str], format: str) -> Path:
    p = Path(path)
    want = _SUFFIX[format]
    if format == "saved_model":
        if p.suffix.lower() in (".tflite", ".onnx", ".keras"):
            raise ExportError(f"a SavedModel is a folder; {str(p)!r} looks like a file name")
        return p
    if p.suffix.lower() != want:
        if p.suffix.lower() in (".tflite", ".onnx", ".keras"):
            raise ExportError(
                f"format {format!r} writes a {want} file; path {str(p)!r} has suffix {p.suffix}"
            )
        p = p.with_name(p.name + want)
    return p


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ExportError(f"{name} must be an integer >= 1, got {value!r}")


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
        images = []
        for x, _ in _batches(representative, size, batch_size):
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


def _batches(data: Any, size: tuple[int, int], batch_size: int) -> Iterator[tuple[Any, Any]]:
    """(float32 images (B, H, W, 3), int labels (B,) or None) from any accepted data form."""
    if hasattr(data, "to_dataset") and hasattr(data, "labels"):  # SplitPart
        ds = data.to_dataset(image_size=size, batch_size=batch_size, shuffle=False)
        yield from _from_dataset(ds, batch_size)
        return
    if hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator"):
        yield from _from_dataset(data, batch_size)
        return
    if isinstance(data, tuple) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) != len(y):
            raise ExportError(f"(images, labels) hold {len(x)} images but {len(y)} labels")
    else:
        x, y = np.asarray(data), None
    if x.ndim != 4 or x.shape[1:] != (*size, 3):
        raise ExportError(
            f"images must have shape (n, {size[0]}, {size[1]}, 3) like the model input; got "
            f"{x.shape}"
        )
    for i in range(0, len(x), batch_size):
        yb = None if y is None else _labels(y[i : i + batch_size])
        yield x[i : i + batch_size].astype(np.float32), yb


def _from_dataset(ds: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    spec = ds.element_spec
    first = spec[0] if isinstance(spec, tuple) else spec
    if first.shape.rank == 3:
        ds = ds.batch(batch_size)
    for el in ds.as_numpy_iterator():
        if isinstance(el, tuple):
            yield np.asarray(el[0], np.float32), (_labels(el[1]) if len(el) > 1 else None)
        else:
            yield np.asarray(el, np.float32), None


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        return np.argmax(y, axis=1)
    return y.reshape(-1).astype(np.int64)


def _latency_ms(fn: Callable[[Any], Any], sample: np.ndarray, runs: int) -> float:
    fn(sample)  # warm-up: tracing, allocation
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(sample)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def _keras_size(model: Any) -> int | None:
    with tempfile.TemporaryDirectory(prefix="tlkit-size-") as d:
        try:
            model.save(Path(d) / "model.keras")
        except Exception:  # custom layers without get_config: size unknown
            return None
        return (Path(d) / "model.keras").stat().st_size


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
