"""The restricted unpickler of the checkpoint reader: opcodes, allowlists, tensor stand-ins.

Part of the checkpoint reader (:mod:`tlkit.backbones._torch_checkpoint` explains
the whole design and reads the two file layouts). The file is never handed to
:mod:`pickle`: :func:`pickletools.genops` decodes the opcodes and
:class:`_Interpreter` runs only those a state dict of tensors is written with,
each through its handler in ``_Interpreter.dispatch``, against a stack of
objects it builds itself. Globals resolve through ``_ALLOWED_GLOBALS`` only,
and ``REDUCE`` may call only the functions in ``_CALLABLES``.

What a pickle may build lives here too. The three functions a state dict
pickle may call to rebuild a tensor each check their arguments; a tensor is
bounds-checked against its storage's declared size when it is built and
again, against the bytes actually read, when it is copied out. The
stand-ins for ``torch.FloatStorage`` and friends are immutable tuples.
"""

from __future__ import annotations

import collections
import math
import pickletools
import reprlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO, ClassVar, NamedTuple

import numpy as np

from tlkit.errors import UnsafeCheckpointError, WeightsFileError

__all__: list[str] = []

# ---------------------------------------------------------------------------
# What a pickle may build: storages, tensors (bounds-checked), the saved object

# Limits that no real state dict comes near; they keep a hostile file from
# exhausting memory or the stack before it is refused.
_MAX_NDIM = 32  # numpy's own limit is 64
_MAX_EMPTY_DIM = 2**31 - 1  # product of the non-zero dimensions of an empty tensor
_MAX_DEPTH = 64  # nesting of containers in the saved object

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


# ---------------------------------------------------------------------------
# The interpreter: allowlists, opcodes, one handler per opcode

_MAX_KEY_CHARS = 256  # a storage key


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
                detail = f" ({str(arg)[:160].replace(' ', '.')})" if name == "GLOBAL" else ""
                raise self.refuse(
                    f"the pickle uses the opcode {name}{detail}, which {where} never needs; "
                    "refused without running it"
                )
            if name == "STOP":
                if len(self.stack) != 1 or self.marks:
                    raise _Malformed("STOP with a stack that is not a single object")
                return self.stack[0]
            self.dispatch[name](self, arg)
        raise _Malformed("pickle without STOP")  # pragma: no cover - genops raises first

    # One handler per opcode (or per family of opcodes that do the same thing), found
    # through ``dispatch`` below, as in CPython's ``pickle._Unpickler``. Each takes the
    # argument genops decoded (None for opcodes without one). STOP is handled by run().

    def _proto(self, arg: Any) -> None:
        if not 2 <= arg <= 5:
            raise _Malformed(f"unsupported pickle protocol {arg}")

    def _frame(self, arg: Any) -> None:
        pass

    def _mark(self, arg: Any) -> None:
        self.marks.append(self.stack)
        self.stack = []

    def _pop(self, arg: Any) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def _pop_mark(self, arg: Any) -> None:
        self.pop_mark()

    def _none(self, arg: Any) -> None:
        self.stack.append(None)

    def _true(self, arg: Any) -> None:
        self.stack.append(True)

    def _false(self, arg: Any) -> None:
        self.stack.append(False)

    def _constant(self, arg: Any) -> None:
        """An int, float, str or bytes, already decoded by genops."""
        self.stack.append(arg)

    def _binstring(self, arg: Any) -> None:
        """A Python 2 str, read as ASCII."""
        self.stack.append(arg.encode("latin-1").decode("ascii"))

    def _empty_tuple(self, arg: Any) -> None:
        self.stack.append(())

    def _tuple(self, arg: Any) -> None:
        items = tuple(self.pop_mark())
        self.stack.append(items)

    def _tuple_n(self, n: int) -> None:
        stack = self.stack
        if len(stack) < n:
            raise _Malformed("stack underflow")
        items = tuple(stack[-n:])
        del stack[-n:]
        stack.append(items)

    def _tuple1(self, arg: Any) -> None:
        self._tuple_n(1)

    def _tuple2(self, arg: Any) -> None:
        self._tuple_n(2)

    def _tuple3(self, arg: Any) -> None:
        self._tuple_n(3)

    def _empty_list(self, arg: Any) -> None:
        self.stack.append([])

    def _extend(self, name: str, items: list[Any]) -> None:
        target = self.top()
        if type(target) is not list:
            raise self.refuse(f"{name} on a {type(target).__name__}, not a list; refused")
        target.extend(items)

    def _append(self, arg: Any) -> None:
        self._extend("APPEND", [self.pop()])

    def _appends(self, arg: Any) -> None:
        self._extend("APPENDS", self.pop_mark())

    def _list(self, arg: Any) -> None:
        items = self.pop_mark()
        self.stack.append(items)

    def _empty_dict(self, arg: Any) -> None:
        self.stack.append({})

    def _setitem(self, arg: Any) -> None:
        value = self.pop()
        key = self.pop()
        self.set_items(self.top(), [key, value])

    def _setitems(self, arg: Any) -> None:
        items = self.pop_mark()
        self.set_items(self.top(), items)

    def _dict(self, arg: Any) -> None:
        out: dict[Any, Any] = {}
        self.set_items(out, self.pop_mark())
        self.stack.append(out)  # after pop_mark: the stack below the mark

    def _get(self, arg: Any) -> None:
        if arg not in self.memo:
            raise _Malformed(f"memo key {arg} was never stored")
        self.stack.append(self.memo[arg])

    def _put(self, arg: Any) -> None:
        self.memo[arg] = self.top()

    def _memoize(self, arg: Any) -> None:
        self.memo[len(self.memo)] = self.top()

    def _global(self, arg: Any) -> None:
        self.stack.append(self.find_global(arg))

    def _stack_global(self, arg: Any) -> None:
        global_name = self.pop()
        module = self.pop()
        if type(module) is not str or type(global_name) is not str:
            raise _Malformed("STACK_GLOBAL needs two strings")
        self.stack.append(self.find_global(f"{module} {global_name}"))

    def _reduce(self, arg: Any) -> None:
        args = self.pop()
        func = self.pop()
        if not any(func is f for f in _CALLABLES):
            raise self.refuse(
                f"the pickle calls {_describe(func)}(...), which a state dict never does; refused"
            )
        if type(args) is not tuple:
            raise _Malformed("REDUCE arguments are not a tuple")
        try:
            self.stack.append(func(*args))
        except UnsafeCheckpointError as exc:
            raise self.refuse(str(exc)) from None

    def _build(self, arg: Any) -> None:
        self.build(self.pop(), self.top())

    def _binpersid(self, arg: Any) -> None:
        self.stack.append(self.persistent_load(self.pop()))

    # opcode name -> handler; every opcode of _OBJECT_OPCODES but STOP (a test checks). Read-only.
    dispatch: ClassVar[Mapping[str, Callable[[_Interpreter, Any], None]]] = MappingProxyType(
        {
            "PROTO": _proto, "FRAME": _frame, "MARK": _mark, "POP": _pop, "POP_MARK": _pop_mark,
            "NONE": _none, "NEWTRUE": _true, "NEWFALSE": _false,
            "BININT": _constant, "BININT1": _constant, "BININT2": _constant,
            "LONG1": _constant, "BINFLOAT": _constant,
            "SHORT_BINUNICODE": _constant, "BINUNICODE": _constant,
            "SHORT_BINBYTES": _constant, "BINBYTES": _constant,
            "SHORT_BINSTRING": _binstring, "BINSTRING": _binstring,
            "EMPTY_TUPLE": _empty_tuple, "TUPLE": _tuple,
            "TUPLE1": _tuple1, "TUPLE2": _tuple2, "TUPLE3": _tuple3,
            "EMPTY_LIST": _empty_list, "APPEND": _append, "APPENDS": _appends, "LIST": _list,
            "EMPTY_DICT": _empty_dict, "SETITEM": _setitem, "SETITEMS": _setitems, "DICT": _dict,
            "BINGET": _get, "LONG_BINGET": _get, "BINPUT": _put, "LONG_BINPUT": _put,
            "MEMOIZE": _memoize,
            "GLOBAL": _global, "STACK_GLOBAL": _stack_global,
            "REDUCE": _reduce, "BUILD": _build, "BINPERSID": _binpersid,
        }
    )  # fmt: skip

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
