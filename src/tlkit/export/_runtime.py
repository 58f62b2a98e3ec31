"""Run an exported model file: LiteRT (``.tflite``), ONNX (``.onnx``) or a TF SavedModel folder."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._keras_model import size_on_disk
from tlkit._validation import check_bool, check_int, check_path
from tlkit.errors import ExportError, MissingDependencyError
from tlkit.export._trust import check_trusted

__all__ = ["EXPORT_EXTRA", "ExportedModel", "format_of", "labels_path", "read_labels"]

EXPORT_EXTRA = "pip install 'tlkit[export]'"

_SUFFIX = {".tflite": "litert", ".onnx": "onnx"}


def require(*modules: str, why: str) -> None:
    """Raise :class:`MissingDependencyError` naming the extra when a module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"{why} needs the package(s) {', '.join(missing)}, which are not installed: "
            f"{EXPORT_EXTRA}"
        )


def format_of(path: str | os.PathLike[str]) -> str:
    """The export format of a path: ``"litert"``, ``"onnx"`` or ``"saved_model"``.

    Examples
    --------
    >>> format_of("model.tflite"), format_of("model.onnx")
    ('litert', 'onnx')
    """
    p = Path(path)
    if p.suffix.lower() in _SUFFIX:
        return _SUFFIX[p.suffix.lower()]
    if p.is_dir() and (p / "saved_model.pb").is_file():
        return "saved_model"
    raise ExportError(
        f"{str(p)!r} is not an exported model: expected a .tflite or .onnx file or a "
        "SavedModel folder (holding saved_model.pb)"
    )


def labels_path(path: str | os.PathLike[str]) -> Path:
    """The labels file that travels beside an export: ``model.tflite`` -> ``model.labels.txt``.

    Examples
    --------
    >>> labels_path("out/model_int8.tflite").as_posix()
    'out/model_int8.labels.txt'
    """
    p = Path(os.fspath(path).rstrip("/\\"))
    return p.with_name(p.stem + ".labels.txt") if p.suffix else p.with_name(p.name + ".labels.txt")


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a labels file, one per line (line ``i`` is class ``i``)."""
    text = Path(path).read_text(encoding="utf-8")
    names = [line.rstrip("\r") for line in text.split("\n")]
    while names and names[-1] == "":
        names.pop()
    return names


def labels_text(class_names: Sequence[str]) -> str:
    """The text of a labels file: one class name per line; a name with a line break is refused."""
    for c in class_names:
        if "\n" in c or "\r" in c:
            raise ExportError(f"class name {c!r} holds a line break; it cannot go in a labels file")
    return "".join(f"{c}\n" for c in class_names)


class ExportedModel:
    """An exported model file, run with its own runtime, behaving like a Keras model.

    LiteRT files run in the ``ai-edge-litert`` interpreter (TensorFlow's
    ``tf.lite.Interpreter`` when that package is missing), ONNX files in
    ``onnxruntime``, SavedModel folders in TensorFlow. The input is what the
    Keras model took: raw RGB pixels, floats in ``[0, 255]``; a file with
    integer input or output tensors is (de)quantized with its own scale and
    zero point.

    It can be added to a :class:`~tlkit.compare.ModelComparator` as a row of
    its own with :meth:`~tlkit.compare.ModelComparator.add_exported`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tflite`` or ``.onnx`` file or a SavedModel folder.
    class_names : sequence of str, optional
        Default: read from the labels file beside the export
        (:func:`labels_path`), when it exists.
    num_threads : int, optional
        Threads of the LiteRT interpreter or ONNX Runtime (default: the
        runtime's own choice).
    trust : bool
        Load a file that can run code or read files when loaded (default
        ``False``: such a file is refused with
        :class:`~tlkit.errors.UntrustedModelError`). A SavedModel always needs
        it: its graph may call any TensorFlow op, ``tf.io.write_file``
        included. A LiteRT file needs it only if it holds custom or
        select-TensorFlow ops, an ONNX file only if it keeps tensors in
        external data files; tlkit's own LiteRT and ONNX exports need neither.
        Pass ``True`` only for a model from a source you trust.

    Attributes
    ----------
    format : str
        ``"litert"``, ``"onnx"`` or ``"saved_model"``.
    image_size : (int, int)
        ``(height, width)`` of the input.
    size_bytes : int
        Size on disk.
    runtime : str
        The runtime and its version, e.g. ``"ai-edge-litert 2.3.0"``.

    Examples
    --------
    >>> import tempfile, keras, numpy as np
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> from tlkit.export import ExportedModel, export
    >>> path = export(model, tempfile.mkdtemp() + "/model.tflite", class_names=["ok", "crack"],
    ...               latency_runs=1).path
    >>> exported = ExportedModel(path)
    >>> exported.image_size, exported.class_names
    ((32, 32), ['ok', 'crack'])
    >>> exported.predict(images).shape  # (n, K) probabilities
    (8, 2)
    """

    format: str
    image_size: tuple[int, int]
    size_bytes: int
    runtime: str
    class_names: list[str] | None

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        class_names: Sequence[str] | None = None,
        num_threads: int | None = None,
        trust: bool = False,
    ) -> None:
        self.path = check_path("path", path)
        check_int("num_threads", num_threads, minimum=1, allow_none=True)
        trust = check_bool("trust", trust)
        if not self.path.exists():
            raise ExportError(f"exported model {str(self.path)!r} does not exist")
        self.format = format_of(self.path)
        # Checked before any runtime opens the file; None when trusted or not ONNX.
        self._onnx_bytes = None if trust else check_trusted(self.path, self.format)
        if class_names is None and labels_path(self.path).is_file():
            class_names = read_labels(labels_path(self.path))
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.size_bytes = size_on_disk(self.path)
        self._batch = -1
        loader = {"litert": self._load_litert, "onnx": self._load_onnx}
        loader.get(self.format, self._load_saved_model)(num_threads)
        self._onnx_bytes = None  # the session holds the model now

    def __repr__(self) -> str:
        return (
            f"ExportedModel({str(self.path)!r}, format={self.format!r}, "
            f"image_size={self.image_size})"
        )

    @property
    def input_shape(self) -> tuple[None, int, int, int]:
        """``(None, height, width, 3)``, like a Keras model's."""
        return (None, *self.image_size, 3)

    # -- loading ---------------------------------------------------------------------------

    def _load_litert(self, num_threads: int | None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter

            self.runtime = f"ai-edge-litert {_version('ai-edge-litert')}"
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
            self.runtime = f"tf.lite.Interpreter (TensorFlow {tf.__version__})"
        try:
            self._interp = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ExportError(f"cannot load LiteRT file {str(self.path)!r}: {exc}") from None
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ExportError(
                f"{str(self.path)!r} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "an image classifier has one of each"
            )
        self._in, self._out = inputs[0], outputs[0]
        self.image_size = _hw(self._in["shape"], self.path)

    def _load_onnx(self, num_threads: int | None) -> None:
        require("onnxruntime", why="running an ONNX model")
        import onnxruntime as ort

        self.runtime = f"onnxruntime {ort.__version__}"
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
        try:
            self._session = ort.InferenceSession(
                # untrusted: the bytes checked for external data, so nothing else is read
                str(self.path) if self._onnx_bytes is None else self._onnx_bytes,
                sess_options=opts,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ExportError(f"cannot load ONNX file {str(self.path)!r}: {exc}") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(self._session.get_outputs()) != 1:
            raise ExportError(f"{str(self.path)!r} must have one input and one output")
        self._input_name = inputs[0].name
        self.image_size = _hw(inputs[0].shape, self.path)

    def _load_saved_model(self, num_threads: int | None) -> None:
        import tensorflow as tf

        self.runtime = f"TensorFlow {tf.__version__}"
        try:
            loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # TensorFlow raises many kinds of errors on a bad folder
            raise ExportError(f"cannot load SavedModel {str(self.path)!r}: {exc}") from None
        sigs = dict(loaded.signatures)
        fn = sigs.get("serve") or sigs.get("serving_default")
        if fn is None:
            raise ExportError(
                f"SavedModel {str(self.path)!r} has no 'serve' or 'serving_default' signature"
            )
        self._loaded = loaded  # keep the variables alive
        self._fn = fn
        _, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise ExportError(f"SavedModel {str(self.path)!r} must take one input tensor")
        self._input_name, spec = next(iter(kwargs.items()))
        args = [spec]
        self.image_size = _hw(list(args[0].shape), self.path)

    # -- prediction ------------------------------------------------------------------------

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """The model's outputs for one batch of images ``(B, H, W, 3)``, as ``float32``."""
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if x.ndim != 4 or x.shape[1:3] != tuple(self.image_size) or x.shape[3] != 3:
            raise ExportError(
                f"{str(self.path)!r} takes images of shape (B, {self.image_size[0]}, "
                f"{self.image_size[1]}, 3), got {x.shape}"
            )
        if self.format == "litert":
            return self._run_litert(x)
        if self.format == "onnx":
            return np.asarray(self._session.run(None, {self._input_name: x})[0], np.float32)
        out = self._fn(**{self._input_name: x})
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return np.asarray(out, dtype=np.float32)

    def predict(self, x: Any, batch_size: int = 32) -> np.ndarray:
        """Outputs for an array of images ``(n, H, W, 3)``, predicted in batches."""
        x = np.asarray(x, dtype=np.float32)
        outs = [self.predict_on_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    def _run_litert(self, x: np.ndarray) -> np.ndarray:
        interp = self._interp
        if x.shape[0] != self._batch:
            interp.resize_tensor_input(self._in["index"], list(x.shape))
            interp.allocate_tensors()
            self._batch = x.shape[0]
        dtype = self._in["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self._in["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        interp.set_tensor(self._in["index"], x)
        interp.invoke()
        out = interp.get_tensor(self._out["index"])
        if np.issubdtype(out.dtype, np.integer):
            scale, zero = self._out["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return np.asarray(out, dtype=np.float32)


def _hw(shape: Any, path: Path) -> tuple[int, int]:
    dims = list(shape)
    if len(dims) != 4 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in dims[1:3]):
        raise ExportError(
            f"{str(path)!r} takes input of shape {dims}; expected (batch, height, width, 3) "
            "with a fixed height and width"
        )
    return int(dims[1]), int(dims[2])


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover
        return "?"
