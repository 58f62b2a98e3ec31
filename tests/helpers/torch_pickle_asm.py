"""A tiny assembler for hand-written pickle opcode streams (used by the hostile-checkpoint tests).

Each helper returns the raw bytes of one pickle fragment that pushes one object
on the unpickler's stack, so hostile files can be written opcode by opcode
(``BUILD`` on a tensor, ``getattr`` chains, ...) without any pickler deciding
for us what gets emitted.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("int16"): "ShortStorage",
    np.dtype("int8"): "CharStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


def u(text: str) -> bytes:
    """A str (BINUNICODE)."""
    data = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def i(n: int) -> bytes:
    """An int: BININT when it fits in 4 signed bytes, else LONG1."""
    if -(2**31) <= n < 2**31:
        return pickle.BININT + struct.pack("<i", n)
    data = pickle.encode_long(n)
    return pickle.LONG1 + bytes([len(data)]) + data


def g(module: str, name: str) -> bytes:
    """A global (GLOBAL ``module\\nname``)."""
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def stack_global(module: str, name: str) -> bytes:
    """A global the protocol-4 way (STACK_GLOBAL)."""
    return u(module) + u(name) + pickle.STACK_GLOBAL


def t(*items: bytes) -> bytes:
    """A tuple of the fragments."""
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def lst(*items: bytes) -> bytes:
    return pickle.EMPTY_LIST + (pickle.MARK + b"".join(items) + pickle.APPENDS if items else b"")


def d(*pairs: tuple[bytes, bytes]) -> bytes:
    """A plain dict."""
    body = b"".join(k + v for k, v in pairs)
    return pickle.EMPTY_DICT + (pickle.MARK + body + pickle.SETITEMS if pairs else b"")


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` (REDUCE)."""
    return func + t(*args) + pickle.REDUCE


def od(*pairs: tuple[bytes, bytes]) -> bytes:
    """``collections.OrderedDict()`` filled by SETITEMS, as torch writes state dicts."""
    body = b"".join(k + v for k, v in pairs)
    return call(g("collections", "OrderedDict")) + (
        pickle.MARK + body + pickle.SETITEMS if pairs else b""
    )


def pid(
    key: str,
    numel: int,
    legacy: bool,
    stype: str = "FloatStorage",
    view: bytes | None = None,
) -> bytes:
    """A storage persistent id (BINPERSID), as torch writes it."""
    parts = [u("storage"), g("torch", stype), u(key), u("cpu"), i(numel)]
    if legacy:
        parts.append(view if view is not None else pickle.NONE)
    return t(*parts) + pickle.BINPERSID


def tensor(
    storage: bytes,
    offset: int,
    size: Sequence[int],
    stride: Sequence[int],
    hooks: bytes | None = None,
) -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, hooks)``."""
    return call(
        g("torch._utils", "_rebuild_tensor_v2"),
        storage,
        i(offset),
        t(*map(i, size)),
        t(*map(i, stride)),
        pickle.NEWFALSE,
        hooks if hooks is not None else od(),
    )


def pkl(body: bytes, proto: int = 2) -> bytes:
    """One complete pickle: PROTO, the fragment, STOP."""
    return pickle.PROTO + bytes([proto]) + body + pickle.STOP


def legacy_file(
    path: Path,
    main: bytes,
    storages: dict[str, np.ndarray],
    *,
    sys_info: bytes | None = None,
    keys: bytes | None = None,
    counts: dict[str, int] | None = None,
    magic: bytes | None = None,
    protocol: bytes | None = None,
) -> Path:
    """The legacy layout: 5 pickles, then ``<count><elements>`` per storage."""
    buf = io.BytesIO()
    buf.write(magic if magic is not None else pickle.dumps(LEGACY_MAGIC, protocol=2))
    buf.write(protocol if protocol is not None else pickle.dumps(1001, protocol=2))
    buf.write(
        sys_info
        if sys_info is not None
        else pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    )
    buf.write(main)
    buf.write(keys if keys is not None else pickle.dumps(list(storages), protocol=2))
    for key, arr in storages.items():
        count = (counts or {}).get(key, arr.size)
        buf.write(struct.pack("<q", count))
        buf.write(np.ascontiguousarray(arr).tobytes())
    path.write_bytes(buf.getvalue())
    return path


def zip_file(
    path: Path, main: bytes, storages: dict[str, np.ndarray], byteorder: str = "little"
) -> Path:
    """The zip layout: ``archive/data.pkl`` and ``archive/data/<key>``."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", main)
        z.writestr("archive/byteorder", byteorder)
        z.writestr("archive/version", "3\n")
        for key, arr in storages.items():
            z.writestr(f"archive/data/{key}", np.ascontiguousarray(arr).tobytes())
    return path


def write(path: Path, layout: str, main: bytes, storages: dict[str, np.ndarray]) -> Path:
    if layout == "legacy":
        return legacy_file(path, main, storages)
    return zip_file(path, main, storages)


def clean_state(legacy: bool) -> tuple[bytes, dict[str, np.ndarray]]:
    """A small valid state dict (three tensors, two storages) and its storages."""
    w = np.arange(12, dtype=np.float32) / 7
    n = np.array([5], dtype=np.int64)
    main = pkl(
        od(
            (u("conv.weight"), tensor(pid("0", 12, legacy), 0, (3, 4), (4, 1))),
            (u("conv.bias"), tensor(pid("0", 12, legacy), 8, (2,), (2,))),
            (u("bn.num_batches_tracked"), tensor(pid("1", 1, legacy, "LongStorage"), 0, (), ())),
        )
        + d((u("_metadata"), od((u(""), d((u("version"), i(1)))))))
        + pickle.BUILD
    )
    return main, {"0": w, "1": n}


def clean_expected() -> dict[str, np.ndarray]:
    w = np.arange(12, dtype=np.float32) / 7
    return {
        "conv.weight": w.reshape(3, 4),
        "conv.bias": w[[8, 10]],
        "bn.num_batches_tracked": np.array(5, dtype=np.int64),
    }
