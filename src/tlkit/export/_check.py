"""check_export(): run an exported file beside its Keras model and compare their predictions.

Also what export() and check_export() read: the accepted formats and
quantizations, the model's temperature, the data. The argument checks are
:mod:`tlkit._validation`'s (``check_choice("quantize", quantize,
QUANTIZATIONS)``, ...); data or a model state that cannot be used raises
:class:`~tlkit.errors.ExportError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._keras_model import input_image_size, keras_file_size, latency_ms, size_on_disk, unwrap
from tlkit._validation import check_choice, check_int, check_number, check_path
from tlkit.errors import ExportCheckError, ExportError
from tlkit.export._report import ExportReport
from tlkit.export._runtime import ExportedModel, format_of, labels_path

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from tlkit.protocols import TrainedClassifier

__all__ = [
    "FLOAT_MIN_AGREEMENT",
    "FORMATS",
    "QUANTIZATIONS",
    "batches",
    "check",
    "check_export",
    "temperature_of",
]

#: Top-1 agreement a float export (no quantization, or float16) must reach on the check data.
FLOAT_MIN_AGREEMENT = 0.98
_FLOAT = (None, "float16")

FORMATS = ("litert", "onnx", "saved_model")
QUANTIZATIONS = (None, "dynamic", "float16", "int8")


def check_export(
    model: keras.Model | TrainedClassifier,
    path: str | os.PathLike[str],
    check_data: Any,
    *,
    quantize: str | None = None,
    min_agreement: float | None = None,
    batch_size: int = 32,
    latency_runs: int = 20,
    trust: bool = False,
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
    trust : bool
        Load a file that can run code or read files when loaded (a SavedModel,
        a LiteRT file with custom ops, an ONNX file with external data): see
        :class:`ExportedModel`. Default ``False``: such a file is refused with
        :class:`~tlkit.errors.UntrustedModelError`.

    Returns
    -------
    ExportReport
        Both models are compared on their plain outputs; a calibrated
        FineTuner's temperature is reported in ``temperature``.

    Raises
    ------
    tlkit.errors.ExportCheckError
        Agreement below ``min_agreement``: the message names the figures.

    Examples
    --------
    >>> import tempfile, keras, numpy as np
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> from tlkit.export import check_export, export
    >>> path = export(model, tempfile.mkdtemp() + "/model.tflite", latency_runs=1).path
    >>> report = check_export(model, path, images, latency_runs=1)
    >>> report.agreement, report.accuracy_before is None  # images without labels
    (1.0, True)
    """
    return check(
        model,
        path,
        check_data,
        quantize=quantize,
        min_agreement=min_agreement,
        batch_size=batch_size,
        latency_runs=latency_runs,
        notes=(),
        trust=trust,
        temperature=temperature_of(model),
    )


def check(
    model: keras.Model | TrainedClassifier,
    path: str | os.PathLike[str],
    check_data: Any,
    *,
    quantize: str | None,
    min_agreement: float | None,
    batch_size: int,
    latency_runs: int,
    notes: Sequence[str],
    trust: bool = False,
    temperature: float | None = None,
) -> ExportReport:
    check_int("batch_size", batch_size, minimum=1)
    check_int("latency_runs", latency_runs, minimum=1)
    keras_model, _ = unwrap(model)
    check_choice("quantize", quantize, QUANTIZATIONS)
    if min_agreement is None and quantize in _FLOAT:
        min_agreement = FLOAT_MIN_AGREEMENT
    min_agreement = check_number("min_agreement", min_agreement, low=0.0, high=1.0, allow_none=True)
    path = check_path("path", path)
    fmt = format_of(path)
    exported = ExportedModel(path, trust=trust)
    size = input_image_size(keras_model, ExportError, rgb=True)
    if exported.image_size != size:
        raise ExportError(
            f"{str(path)!r} takes {exported.image_size[0]}x{exported.image_size[1]} images but "
            f"the Keras model takes {size[0]}x{size[1]}: it was exported from another model"
        )
    notes = list(notes)
    keras_probs, exp_probs, labels, sample = _predict_both(
        keras_model, exported, check_data, size, batch_size
    )
    n = 0
    agreement = acc_before = acc_after = max_diff = None
    if keras_probs:
        n, agreement, max_diff, acc_before, acc_after = _agreement(
            path, keras_probs, exp_probs, labels, notes
        )
    else:
        notes.append("not checked: pass check_data (e.g. split.test) to compare predictions")
        sample = np.full((1, *size, 3), 127.0, np.float32)
    latency = latency_ms(exported.predict_on_batch, sample, latency_runs)
    keras_latency = latency_ms(keras_model.predict_on_batch, sample, latency_runs)
    labels_file = labels_path(path)
    report = ExportReport(
        path=path,
        format=fmt,
        quantize=quantize,
        labels_path=labels_file if labels_file.is_file() else None,
        size_bytes=size_on_disk(path),
        keras_size_bytes=keras_file_size(keras_model)[0],
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
        temperature=temperature,
    )
    if not report.passed:
        raise _disagreement(report)
    return report


def _predict_both(
    keras_model: keras.Model,
    exported: ExportedModel,
    check_data: Any,
    size: tuple[int, int],
    batch_size: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[Any], np.ndarray | None]:
    """Both models' probabilities (float64) and the labels, batch by batch, and a first image."""
    keras_probs, exp_probs, labels = [], [], []
    sample = None
    if check_data is not None:
        for x, y in batches(check_data, size, batch_size):
            if sample is None:
                sample = x[:1]
            keras_probs.append(np.asarray(keras_model.predict_on_batch(x), np.float64))
            exp_probs.append(np.asarray(exported.predict_on_batch(x), np.float64))
            labels.append(y)
        if not keras_probs:
            raise ExportError("check_data holds no images")
    return keras_probs, exp_probs, labels, sample


def _agreement(
    path: Path,
    keras_probs: list[np.ndarray],
    exp_probs: list[np.ndarray],
    labels: list[Any],
    notes: list[str],
) -> tuple[int, float, float, float | None, float | None]:
    """``(n, agreement, max_diff, accuracy before, accuracy after)``; a note when unlabelled."""
    acc_before = acc_after = None
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
    return n, agreement, max_diff, acc_before, acc_after


def _disagreement(report: ExportReport) -> ExportCheckError:
    """The error of an export that agrees with its Keras model too rarely, naming the figures."""
    acc_before, acc_after = report.accuracy_before, report.accuracy_after
    agreement, n, max_diff = report.agreement, report.n_checked, report.max_prob_diff
    path = report.path
    acc = (
        f"; accuracy {acc_before:.1%} (Keras) vs {acc_after:.1%} (export)"
        if acc_before is not None and acc_after is not None
        else ""
    )
    return ExportCheckError(
        f"the {report.kind} export {str(path)!r} agrees with the Keras model on "
        f"{agreement:.1%} of {n} images (top-1), below the {report.min_agreement:.0%} "
        f"required; max probability difference {max_diff:.3g}{acc}. Do not ship it: check "
        "that the model includes its own preprocessing (it must take raw pixels in [0, 255])",
        report,
    )


# -- what export() and check_export() read: the model's temperature, the data -------------------


def temperature_of(obj: Any) -> float | None:
    """The calibration temperature of a FineTuner (``FineTuner.calibrate``), else None."""
    import keras

    if isinstance(obj, keras.Model):
        return None
    from tlkit._calibration import MAX_TEMPERATURE, MIN_TEMPERATURE

    return check_number(
        "model.temperature",
        getattr(obj, "temperature", None),
        low=MIN_TEMPERATURE,
        high=MAX_TEMPERATURE,
        allow_none=True,
        error=ExportError,
    )


def batches(data: Any, size: tuple[int, int], batch_size: int) -> Iterator[tuple[Any, Any]]:
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
