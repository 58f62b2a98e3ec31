"""Checks of a ``.keras`` archive made before Keras opens it.

A ``.keras`` file is a zip archive; a few kilobytes can declare gigabytes (a
compressed ``config.json`` of spaces, or a config asking for a Conv2D with
2 x 10^7 filters, which Keras allocates before it reads a single weight).
:func:`check_archive` looks at every member's declared size, the compression
ratio and the names, and reads the JSON members with bounded reads;
:func:`check_declared_weights` has Keras rebuild the model from its config
without allocating any variable (``keras.StatelessScope``) and compares the
bytes the variables would take with the size of ``model.weights.h5``;
:func:`check_weights_file` does the same for the arrays the HDF5 file declares.

The limits are module-level constants, read at each call: a program that
trusts bigger files may raise one (``tlkit.finetune._modelzip.MAX_WEIGHTS_BYTES
= 8 << 30``). Each failure is a :class:`~tlkit.errors.ModelFileError` naming
the file, the member and the limit.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from typing import Any

from tlkit.errors import ModelFileError

__all__ = ["check_archive", "check_declared_weights", "check_weights_file"]

#: Largest uncompressed size of ``config.json``, ``metadata.json`` and ``tlkit.json`` (8 MiB).
MAX_JSON_MEMBER_BYTES = 8 << 20
#: Largest uncompressed size of ``model.weights.h5`` (2 GiB).
MAX_WEIGHTS_BYTES = 2 << 30
#: Largest uncompressed/compressed ratio of a member over ``RATIO_FLOOR_BYTES``.
MAX_COMPRESSION_RATIO = 100
#: Members smaller than this (1 MiB) are not held to ``MAX_COMPRESSION_RATIO``.
RATIO_FLOOR_BYTES = 1 << 20
#: The weights a config declares may take at most this many times ``model.weights.h5``'s size...
WEIGHTS_FACTOR = 2
#: ... plus this many bytes (1 MiB).
WEIGHTS_SLACK_BYTES = 1 << 20
#: Most layers (objects with a ``class_name``) in ``config.json``.
MAX_CONFIG_LAYERS = 20_000
#: Most groups and datasets in ``model.weights.h5``.
MAX_H5_OBJECTS = 200_000

CONFIG, METADATA, WEIGHTS, META = "config.json", "metadata.json", "model.weights.h5", "tlkit.json"
#: The only members a tlkit ``.keras`` file holds (Keras's three and tlkit's metadata).
MEMBERS = (CONFIG, METADATA, WEIGHTS, META)
JSON_MEMBERS = (CONFIG, METADATA, META)


def _err(where: str, why: str) -> ModelFileError:
    return ModelFileError(f"{where}: {why}; only open model files from sources you trust")


def check_archive(path: Any, where: str) -> dict[str, Any]:
    """Check the archive's members and read its JSON members (bounded).

    Returns a dict of member name to ``bytes`` for the JSON members present and
    to the ``zipfile.ZipInfo`` for ``model.weights.h5``.
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            _check_members(infos, where)
            out: dict[str, Any] = {}
            for info in infos:
                if info.filename in JSON_MEMBERS:
                    with z.open(info) as f:
                        data = f.read(MAX_JSON_MEMBER_BYTES + 1)
                    if len(data) > MAX_JSON_MEMBER_BYTES:
                        raise _err(
                            where,
                            f"{info.filename} is too large (more than {MAX_JSON_MEMBER_BYTES} bytes)",
                        )
                    out[info.filename] = data
                else:
                    out[info.filename] = info
            return out
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError, KeyError, OverflowError) as exc:  # fmt: skip
        raise ModelFileError(
            f"{where}: the zip archive is damaged ({type(exc).__name__}: {exc})"
        ) from None


def _check_members(infos: list[zipfile.ZipInfo], where: str) -> None:
    names = [i.filename for i in infos]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise _err(where, f"member {dup[0]!r} appears more than once in the archive")
    odd = [n for n in names if n not in MEMBERS]
    if odd:
        raise _err(
            where,
            f"unexpected archive member {odd[0]!r} (a tlkit model holds only {', '.join(MEMBERS)})",
        )
    for n in (CONFIG, WEIGHTS):
        if n not in names:
            raise ModelFileError(f"{where}: the archive has no {n}; it is not a Keras model file")
    total = 0
    for info in infos:
        name, size = info.filename, info.file_size
        if info.flag_bits & 0x1:
            raise _err(where, f"{name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _err(where, f"{name} uses an unsupported compression method")
        cap = MAX_WEIGHTS_BYTES if name == WEIGHTS else MAX_JSON_MEMBER_BYTES
        if size > cap:
            raise _err(
                where,
                f"{name} is too large: it declares {size} bytes, more than the limit of {cap}",
            )
        if size > RATIO_FLOOR_BYTES and size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise _err(
                where,
                f"{name} declares {size} bytes stored in {info.compress_size} (more than "
                f"{MAX_COMPRESSION_RATIO}:1 compression: a decompression bomb)",
            )
        total += size
    if total > MAX_WEIGHTS_BYTES + len(JSON_MEMBERS) * MAX_JSON_MEMBER_BYTES:
        raise _err(where, f"the archive declares {total} bytes in all, more than the limits allow")


def _itemsize(dtype: Any) -> int:
    bits = re.sub(r"\D", "", str(dtype))
    return max(int(bits) // 8, 1) if bits else 1


def _count_layers(config: Any) -> int:
    count, stack = 0, [config]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            count += "class_name" in v
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


def check_declared_weights(config: Any, weights_size: int, where: str) -> Any:
    """Bytes of the variables ``config`` declares; refuse more than ``model.weights.h5`` holds.

    Keras rebuilds the model inside ``keras.StatelessScope(initialize_variables=False)``:
    variables get their shapes but no memory. Returns the bytes declared.
    """
    import keras
    from keras.src.backend.common import global_state  # pinned in tests/test_modelfile_hostile.py

    if _count_layers(config) > MAX_CONFIG_LAYERS:
        raise _err(where, f"{CONFIG} declares more than {MAX_CONFIG_LAYERS} layers")
    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        declared = 0
        for v in model.weights:
            n = 1
            for d in v.shape:
                n *= int(d)
            declared += n * _itemsize(v.dtype)
    except Exception as exc:  # Keras raises many types for a bad config
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelFileError(
            f"{where}: Keras cannot load the model ({type(exc).__name__}: {first})"
        ) from None
    finally:
        del pending[before:]  # never initialised later by another StatelessScope
    limit = WEIGHTS_FACTOR * weights_size + WEIGHTS_SLACK_BYTES
    if declared > limit or declared > WEIGHTS_FACTOR * MAX_WEIGHTS_BYTES:
        raise _err(
            where,
            f"{CONFIG} declares {declared} bytes of weights but {WEIGHTS} holds {weights_size} "
            f"(at most {WEIGHTS_FACTOR}x + {WEIGHTS_SLACK_BYTES} bytes are accepted)",
        )
    return declared


def check_weights_file(path: Any, info: zipfile.ZipInfo, where: str) -> None:
    """Refuse a ``model.weights.h5`` whose arrays declare more bytes than the file holds."""
    import h5py

    limit = info.file_size + WEIGHTS_SLACK_BYTES
    seen = {"objects": 0, "bytes": 0}

    def visit(name: str, obj: Any) -> str | None:
        seen["objects"] += 1
        if isinstance(obj, h5py.Dataset):
            seen["bytes"] += int(obj.size or 0) * int(obj.dtype.itemsize)
        if seen["objects"] > MAX_H5_OBJECTS or seen["bytes"] > limit:
            return name
        return None

    try:
        with zipfile.ZipFile(path) as z, z.open(info) as f, h5py.File(f, "r") as h5:
            stopped = h5.visititems(visit)
    except Exception as exc:  # h5py and zipfile raise many types for a damaged file
        raise ModelFileError(
            f"{where}: {WEIGHTS} is not a readable HDF5 file ({type(exc).__name__})"
        ) from None
    if stopped is not None:
        raise _err(
            where,
            f"{WEIGHTS} declares more than {limit} bytes of arrays (or more than "
            f"{MAX_H5_OBJECTS} objects) in a {info.file_size}-byte file",
        )
