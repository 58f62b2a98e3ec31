"""What an exported model may do when loaded, checked before any runtime sees it.

The trust rule of :class:`~tlkit.export.ExportedModel`:

- a **SavedModel** is a TensorFlow program: running its serving function runs
  every op of its graph, and TensorFlow has ops that read and write files
  (``tf.io.write_file``), so it is loaded only with ``trust=True``;
- a **LiteRT** file runs in the LiteRT interpreter, whose built-in kernels do
  no file I/O; custom ops and select-TensorFlow ("Flex") ops run code outside
  them (a Flex ``WriteFile`` writes files where the Flex delegate is linked),
  so a file that uses any is loaded only with ``trust=True``. The operator
  table is read from the file here, before the interpreter opens it;
- an **ONNX** file runs in ONNX Runtime, whose operators do no file I/O, but a
  tensor may keep its data in an external file that the runtime reads (from
  the model's folder); a file with external data is loaded only with
  ``trust=True``. It is parsed here with the ``onnx`` package and handed to
  ONNX Runtime as the bytes that were checked.
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import stat
import struct
from pathlib import Path
from typing import Any

from tlkit.errors import ExportError, UntrustedModelError

__all__ = ["check_trusted", "onnx_external_tensors", "read_regular", "tflite_custom_ops"]

_TRUST_HINT = (
    "Pass trust=True (tlkit compare: --trust-model) only for a model from a source you "
    "trust, e.g. one you exported yourself"
)
_CUSTOM = 32  # tflite::BuiltinOperator_CUSTOM
_MAX_NAMES = 5


def check_trusted(path: Path, format: str) -> bytes | None:
    """Raise :class:`UntrustedModelError` unless ``path`` loads without running foreign code.

    Returns the ONNX file's bytes (checked, to be loaded as they are), else ``None``.
    """
    if format == "saved_model":
        raise UntrustedModelError(
            f"SavedModel {str(path)!r} is a TensorFlow program: running it runs every op of its "
            "graph, and TensorFlow ops can read and write files, so tlkit does not load it "
            f"unless told to trust it. {_TRUST_HINT}"
        )
    if format == "litert":
        custom = tflite_custom_ops(path)
        if custom:
            raise UntrustedModelError(
                f"LiteRT file {str(path)!r} holds custom or select-TensorFlow ops "
                f"({', '.join(custom[:_MAX_NAMES])}), which run outside LiteRT's built-in "
                f"kernels and can read or write files. {_TRUST_HINT}"
            )
        return None
    data = read_regular(path)
    names = onnx_external_tensors(path, data)
    if names:
        raise UntrustedModelError(
            f"ONNX file {str(path)!r} keeps tensors in external data files "
            f"({', '.join(names[:_MAX_NAMES])}) that ONNX Runtime would read from disk. "
            f"{_TRUST_HINT}"
        )
    return data


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (a pipe or device is refused instead of read)."""
    _require_regular(path)
    return path.read_bytes()


def tflite_custom_ops(path: Path) -> list[str]:
    """The custom (and select-TensorFlow) op names in a LiteRT file's operator table."""
    _require_regular(path)
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 8:
            raise ExportError(f"cannot load LiteRT file {str(path)!r}: it is too short")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _custom_ops(buf)
            except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
                raise ExportError(
                    f"cannot load LiteRT file {str(path)!r}: its operator table is unreadable "
                    f"({exc})"
                ) from None


def onnx_external_tensors(path: Path, data: bytes) -> list[str]:
    """Names of the tensors of an ONNX model whose data lives in external files."""
    if importlib.util.find_spec("onnx") is None:
        raise UntrustedModelError(
            f"cannot check ONNX file {str(path)!r} for external data files without the onnx "
            "package: pip install 'tlkit[export]', or trust the file. " + _TRUST_HINT
        )
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and its kin
        raise ExportError(f"cannot load ONNX file {str(path)!r}: {exc}") from None
    found: list[str] = []
    graphs = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            _tensors(found, g.initializer)
            for sp in g.sparse_initializer:
                _tensors(found, [sp.values, sp.indices])
            nodes.extend(g.node)
            continue
        for attr in nodes.pop().attribute:
            _tensors(found, [attr.t, *attr.tensors])
            for sp in [attr.sparse_tensor, *attr.sparse_tensors]:
                _tensors(found, [sp.values, sp.indices])
            graphs.extend([attr.g, *attr.graphs])
    return found


# -- helpers ------------------------------------------------------------------------------------


def _tensors(found: list[str], tensors: Any) -> None:
    import onnx

    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            found.append(t.name or "(unnamed)")


def _require_regular(path: Path) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ExportError(f"cannot read exported model {str(path)!r}: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ExportError(f"{str(path)!r} is not a regular file; it is not read")


def _custom_ops(buf: Any) -> list[str]:
    """Walk the flatbuffer: Model.operator_codes (field 1) -> OperatorCode fields 0, 1, 3."""
    size = len(buf)

    def rd(fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > size:
            raise ValueError(f"offset {pos} outside the file")
        return int(struct.unpack_from(fmt, buf, pos)[0])

    def u32(pos: int) -> int:
        return rd("<I", pos)

    def field(table: int, index: int) -> int | None:
        """Absolute position of a table's field, or None when absent."""
        vtable = table - rd("<i", table)
        vt_size = rd("<H", vtable)
        if 4 + 2 * index + 2 > vt_size:
            return None
        off = rd("<H", vtable + 4 + 2 * index)
        return None if off == 0 else table + off

    def deref(pos: int) -> int:
        return pos + u32(pos)

    root = u32(0)
    codes_at = field(root, 1)
    if codes_at is None:
        return []
    vec = deref(codes_at)
    n = u32(vec)
    if vec + 4 + 4 * n > size:
        raise ValueError("operator table longer than the file")
    custom: list[str] = []
    for i in range(n):
        code = deref(vec + 4 + 4 * i)
        deprecated = field(code, 0)
        builtin = field(code, 3)
        op = max(
            0 if deprecated is None else rd("<b", deprecated),
            0 if builtin is None else rd("<i", builtin),
        )
        if op == _CUSTOM:
            name_at = field(code, 1)
            name = "custom"
            if name_at is not None:
                s = deref(name_at)
                length = u32(s)
                if s + 4 + length > size:
                    raise ValueError("op name outside the file")
                name = bytes(buf[s + 4 : s + 4 + min(length, 200)]).decode("utf-8", "replace")
            custom.append(name)
    return custom
