"""Tensors of a torch checkpoint, without torch: storages, bounds checks, numpy arrays.

Part of the checkpoint reader (:mod:`tlkit.backbones._torch_pickle` explains
the whole design). The three functions a state dict pickle may call to
rebuild a tensor live here, each checking its arguments; a tensor is
bounds-checked against its storage's declared size when it is built and
again, against the bytes actually read, when it is copied out. The
stand-ins for ``torch.FloatStorage`` and friends are immutable tuples.
"""

from __future__ import annotations

import collections
import math
import reprlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tlkit.backbones._errors import WeightsFileError
from tlkit.errors import UnsafeCheckpointError

__all__: list[str] = []

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
