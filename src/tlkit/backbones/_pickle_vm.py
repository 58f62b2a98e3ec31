"""The opcode walker of the checkpoint reader: runs a pickle against two allowlists.

Part of the checkpoint reader (:mod:`tlkit.backbones._torch_pickle` explains
the whole design). The file is never handed to :mod:`pickle`:
:func:`pickletools.genops` decodes the opcodes and :class:`_Interpreter`
runs only those a state dict of tensors is written with, against a stack of
objects it builds itself. Globals resolve through ``_ALLOWED_GLOBALS`` only,
and ``REDUCE`` may call only the functions in ``_CALLABLES``.
"""

from __future__ import annotations

import collections
import pickletools
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, BinaryIO

from tlkit.backbones._errors import WeightsFileError
from tlkit.backbones._torch_tensors import (
    _STORAGE_TYPES,
    _is_int,
    _r,
    _rebuild_parameter,
    _rebuild_tensor,
    _rebuild_tensor_v2,
    _Storage,
    _StorageType,
    _StorageView,
)
from tlkit.errors import UnsafeCheckpointError

__all__: list[str] = []

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
            items: tuple[Any, ...] | list[Any] = tuple(self.pop_mark())
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
