"""Export a fine-tuned model to LiteRT, ONNX or a SavedModel, and check the file.

:func:`export` writes the file with Keras's own ``model.export`` (LiteRT
through the TensorFlow Lite converter, with optional quantization), puts a
labels file beside it, then runs the exported file in its own runtime on
held-out images and returns an :class:`ExportReport`: top-1 agreement with
the Keras model, accuracy before and after, the largest probability
difference, size and latency. A float export that agrees on fewer than 98%
of the images raises :class:`~tlkit.errors.ExportCheckError` instead.

:class:`ExportedModel` runs an exported file like a Keras model, e.g. as a row
of a :class:`~tlkit.compare.ModelComparator` (``add_exported``). A file that can
run code or read files when loaded (a SavedModel; a LiteRT file with custom or
select-TensorFlow ops; an ONNX file with external data) is loaded only with
``trust=True``.

:func:`export` writes atomically and never over what it did not write: an
existing export is replaced only with ``overwrite=True``, and only when it is
tlkit's own (recognised by the marker tlkit writes with it).

Needs ``pip install 'tlkit[export]'`` for ONNX (``tf2onnx``, ``onnx``,
``onnxruntime``) and for the ``ai-edge-litert`` interpreter (TensorFlow's
``tf.lite.Interpreter`` is used without it).

Examples
--------
With a trained :class:`~tlkit.finetune.FineTuner` and its split (a runnable
example with a tiny model is in :func:`export`)::

    report = export(tuner, "model.tflite", quantize="int8",
                    representative=split.train, check_data=split.test)
    report.agreement, report.accuracy_change   # e.g. (0.987, -0.005)

>>> from tlkit.export import FORMATS, QUANTIZATIONS
>>> FORMATS, QUANTIZATIONS
(('litert', 'onnx', 'saved_model'), (None, 'dynamic', 'float16', 'int8'))
"""

from tlkit.export._check import FLOAT_MIN_AGREEMENT, FORMATS, QUANTIZATIONS, check_export
from tlkit.export._export import export
from tlkit.export._report import ExportReport
from tlkit.export._runtime import ExportedModel, labels_path, read_labels

__all__ = [
    "FLOAT_MIN_AGREEMENT",
    "FORMATS",
    "QUANTIZATIONS",
    "ExportReport",
    "ExportedModel",
    "check_export",
    "export",
    "labels_path",
    "read_labels",
]
