"""Hostile checkpoints against the torch-free reader, each in a subprocess so a crash fails.

The files are written opcode by opcode (tests/helpers/torch_pickle_asm.py). Every one
must be refused with :class:`~tlkit.errors.UnsafeCheckpointError` or
:class:`~tlkit.errors.WeightsFileError`; afterwards the reader's allowlist and
module state are unchanged and a clean checkpoint still loads exactly. One
subprocess loads a whole batch of files, so a segfault (the legacy ``BUILD``
attack on the old reader) or any other crash fails the test.

The fuzzers (random opcode streams, random mutations of a valid file in both
layouts) run under hypothesis in a subprocess too.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import helpers.torch_pickle_asm as asm
import numpy as np
import pytest
from helpers.torch_pickle_asm import call, d, g, i, lst, od, pid, pkl, t, tensor, u

import tlkit

SRC = str(Path(tlkit.__file__).resolve().parent.parent)

# Imports the reader without tlkit.backbones/__init__ (which loads TensorFlow):
# a bare package object stands in for tlkit.backbones, so the subprocess starts
# in well under a second. The module under test is the real file.
CHILD_PRELUDE = textwrap.dedent(
    """
    import json, os, sys, types
    import numpy as np
    import tlkit
    from tlkit.errors import TlkitError
    _pkg = types.ModuleType("tlkit.backbones")
    _pkg.__path__ = [os.path.join(os.path.dirname(tlkit.__file__), "backbones")]
    sys.modules["tlkit.backbones"] = _pkg
    from tlkit.backbones import _pickle_vm as vm
    from tlkit.backbones import _torch_checkpoint as tp

    def snapshot():
        out = {"module": {k: id(v) for k, v in vars(tp).items()}}
        for name, mod in sorted(sys.modules.items()):  # the reader's other modules too
            if name.startswith("tlkit.backbones._"):
                out[name] = {k: id(v) for k, v in vars(mod).items()}
        for key, value in vm._ALLOWED_GLOBALS.items():
            if isinstance(value, tuple):
                out[key] = (type(value).__name__, tuple(value), id(value))
            else:
                out[key] = (
                    id(value), value.__code__, value.__defaults__, value.__kwdefaults__,
                    dict(vars(value)), value.__qualname__, id(value.__globals__),
                )
        out["storage_types"] = [(id(s), tuple(s), s.dtype.str) for s in vm._STORAGE_TYPES]
        out["callables"] = [id(f) for f in vm._CALLABLES]
        out["allowlist_type"] = type(vm._ALLOWED_GLOBALS).__name__
        return out

    def clean_loads_exactly(clean_path, expected_path):
        expected = np.load(expected_path)
        got = tp.load_state_dict(clean_path)
        return list(got) == list(expected.files) and all(
            got[k].dtype == expected[k].dtype and got[k].shape == expected[k].shape
            and np.array_equal(got[k], expected[k]) for k in expected.files
        )
    """
)

BATCH_CHILD = CHILD_PRELUDE + textwrap.dedent(
    """
    job = json.loads(sys.stdin.read())
    before = snapshot()
    ok_before = clean_loads_exactly(job["clean"], job["expected"])
    results = {}
    for name, path in job["cases"]:
        try:
            tp.load_state_dict(path)
            results[name] = ["loaded", False, ""]
        except Exception as exc:
            results[name] = [type(exc).__name__, isinstance(exc, TlkitError), str(exc)[:300]]
    print(json.dumps({
        "results": results,
        "clean_before": ok_before,
        "clean_after": clean_loads_exactly(job["clean"], job["expected"]),
        "state_unchanged": snapshot() == before,
    }))
    """
)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def write_clean(tmp_path: Path) -> tuple[Path, Path]:
    main, storages = asm.clean_state(legacy=True)
    clean = asm.legacy_file(tmp_path / "clean.pth", main, storages)
    expected = tmp_path / "expected.npz"
    np.savez(expected, **asm.clean_expected())
    return clean, expected


def run_batch(tmp_path: Path, cases: dict[str, Path]) -> dict[str, list]:
    clean, expected = write_clean(tmp_path)
    job = {
        "clean": str(clean),
        "expected": str(expected),
        "cases": [[name, str(p)] for name, p in cases.items()],
    }
    proc = subprocess.run(
        [sys.executable, "-c", BATCH_CHILD],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
    )
    # a segfault or abort shows as a negative return code, an uncaught error as 1
    assert proc.returncode == 0, f"reader crashed (rc={proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["clean_before"], "the clean checkpoint did not load before the hostile files"
    assert report["clean_after"], "a hostile file changed how a later clean checkpoint loads"
    assert report["state_unchanged"], "a hostile file changed the reader's allowlist or module"
    return report["results"]


# --- the corpus ------------------------------------------------------------------------------

F4 = {"0": np.array([1, 2, 3, 4], dtype=np.float32)}
UNSAFE, BROKEN = "UnsafeCheckpointError", "WeightsFileError"


def ok_tensor(legacy: bool) -> bytes:
    return tensor(pid("0", 4, legacy), 0, (4,), (1,))


def sd(legacy: bool, value: bytes, *, after: bytes = b"") -> bytes:
    """A state dict ``{"w": value}`` with ``after`` run before it (its result popped)."""
    return pkl(after + od((u("w"), value)))


Case = Callable[[bool], bytes]

# name -> (builds data.pkl / the main pickle for legacy=True/False, expected error)
CORPUS: dict[str, tuple[Case, str]] = {
    # BUILD on a tensor: rewrite size/stride after the bounds check (old reader: segfault / heap)
    "build_tensor_dict": (
        lambda L: sd(L, ok_tensor(L) + d((u("size"), t(i(10**6)))) + pickle.BUILD),
        UNSAFE,
    ),
    "build_tensor_slots": (
        lambda L: sd(
            L, ok_tensor(L) + t(pickle.NONE, d((u("stride"), t(i(10**9))))) + pickle.BUILD
        ),
        UNSAFE,
    ),
    # BUILD on the shared storage-type stand-in (old reader: later clean files read as garbage)
    "build_storage_type": (
        lambda L: sd(
            L,
            ok_tensor(L),
            after=g("torch", "FloatStorage")
            + d((u("name"), u("X")), (u("dtype"), u("<f8")))
            + pickle.BUILD
            + pickle.POP,
        ),
        UNSAFE,
    ),
    "build_storage_type_slots": (
        lambda L: sd(
            L,
            ok_tensor(L),
            after=g("torch", "FloatStorage")
            + t(pickle.NONE, d((u("typestr"), u("<f8"))))
            + pickle.BUILD
            + pickle.POP,
        ),
        UNSAFE,
    ),
    "build_storage": (
        lambda L: sd(
            L,
            tensor(pid("0", 4, L) + d((u("numel"), i(10**6))) + pickle.BUILD, 0, (4,), (1,)),
        ),
        UNSAFE,
    ),
    # BUILD on an allowed function
    "build_function_dict": (
        lambda L: sd(
            L,
            ok_tensor(L),
            after=g("torch._utils", "_rebuild_tensor_v2")
            + d((u("x"), i(1)))
            + pickle.BUILD
            + pickle.POP,
        ),
        UNSAFE,
    ),
    "build_function_code": (
        lambda L: sd(
            L,
            ok_tensor(L),
            after=g("torch._utils", "_rebuild_tensor_v2")
            + t(pickle.NONE, d((u("__defaults__"), t(i(0), i(0), i(0), i(0)))))
            + pickle.BUILD
            + pickle.POP,
        ),
        UNSAFE,
    ),
    # BUILD on an OrderedDict: only {"_metadata": {...}} is allowed
    "build_odict_other_key": (
        lambda L: pkl(od((u("w"), ok_tensor(L))) + d((u("__class__"), i(1))) + pickle.BUILD),
        UNSAFE,
    ),
    "build_odict_slots": (
        lambda L: pkl(
            od((u("w"), ok_tensor(L))) + t(pickle.NONE, d((u("_metadata"), d()))) + pickle.BUILD
        ),
        UNSAFE,
    ),
    "build_odict_non_dict_state": (
        lambda L: pkl(od((u("w"), ok_tensor(L))) + lst(i(1)) + pickle.BUILD),
        UNSAFE,
    ),
    "build_odict_metadata_not_dict": (
        lambda L: pkl(od((u("w"), ok_tensor(L))) + d((u("_metadata"), i(3))) + pickle.BUILD),
        UNSAFE,
    ),
    "build_list": (lambda L: sd(L, lst(ok_tensor(L)) + d((u("x"), i(1))) + pickle.BUILD), UNSAFE),
    # getattr / __globals__ chains
    "getattr_globals": (
        lambda L: sd(
            L,
            call(
                g("builtins", "getattr"), g("torch._utils", "_rebuild_tensor_v2"), u("__globals__")
            ),
        ),
        UNSAFE,
    ),
    "getattr_stack_global": (
        lambda L: pkl(
            od(
                (
                    u("w"),
                    call(
                        asm.stack_global("builtins", "getattr"),
                        g("torch._utils", "_rebuild_tensor_v2"),
                        u("__globals__"),
                    ),
                )
            ),
            proto=4,
        ),
        UNSAFE,
    ),
    "dotted_global": (lambda L: sd(L, g("torch._utils", "_rebuild_tensor_v2.__globals__")), UNSAFE),
    "dotted_stack_global": (
        lambda L: pkl(
            od((u("w"), asm.stack_global("torch._utils", "_rebuild_tensor_v2.__globals__"))),
            proto=4,
        ),
        UNSAFE,
    ),
    "os_system": (lambda L: sd(L, call(g("os", "system"), u("true"))), UNSAFE),
    "builtins_eval": (lambda L: sd(L, call(g("builtins", "eval"), u("1+1"))), UNSAFE),
    # calling what may only be named
    "call_storage_type": (lambda L: sd(L, call(g("torch", "FloatStorage"), i(10))), UNSAFE),
    "call_a_tensor": (lambda L: sd(L, call(ok_tensor(L))), UNSAFE),
    # opcodes a state dict never needs
    "newobj": (
        lambda L: sd(L, g("collections", "OrderedDict") + t() + pickle.NEWOBJ),
        UNSAFE,
    ),
    "inst": (lambda L: sd(L, pickle.MARK + b"ios\nsystem\n"), UNSAFE),
    "obj": (lambda L: sd(L, pickle.MARK + g("os", "system") + u("true") + pickle.OBJ), UNSAFE),
    "ext1": (lambda L: sd(L, pickle.EXT1 + b"\x01"), UNSAFE),
    "text_persid": (lambda L: sd(L, pickle.PERSID + b"0\n"), UNSAFE),
    "dup": (lambda L: sd(L, ok_tensor(L) + pickle.DUP + pickle.POP), UNSAFE),
    # tensors out of range
    "offset_past_end": (lambda L: sd(L, tensor(pid("0", 4, L), 2, (4,), (1,))), UNSAFE),
    # the last element read would be element 4 of 0..3: one past the end
    "one_past_end": (lambda L: sd(L, tensor(pid("0", 4, L), 1, (4,), (1,))), UNSAFE),
    "one_past_end_2d": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (2, 2), (3, 1))), UNSAFE),
    "negative_offset": (lambda L: sd(L, tensor(pid("0", 4, L), -1, (4,), (1,))), UNSAFE),
    "negative_stride": (lambda L: sd(L, tensor(pid("0", 4, L), 3, (4,), (-1,))), UNSAFE),
    "negative_size": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (-4,), (1,))), UNSAFE),
    "huge_stride": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (2,), (2**62,))), UNSAFE),
    "huge_stride_times_itemsize": (
        lambda L: sd(L, tensor(pid("0", 4, L), 0, (2, 1), (2**61, 1))),
        UNSAFE,
    ),
    "broadcast_huge": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (2**40,), (0,))), UNSAFE),
    "too_many_dims": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (1,) * 40, (0,) * 40)), UNSAFE),
    "huge_empty_dim": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (0, 2**70), (1, 1))), UNSAFE),
    "huge_empty_dims": (
        lambda L: sd(L, tensor(pid("0", 4, L), 0, (0, 2**31 - 1, 2**31 - 1), (1, 1, 1))),
        UNSAFE,
    ),
    "size_stride_lengths": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (2, 2), (1,))), UNSAFE),
    "bool_size": (
        lambda L: sd(
            L,
            call(
                g("torch._utils", "_rebuild_tensor"),
                pid("0", 4, L),
                i(0),
                t(pickle.NEWTRUE),
                t(i(1)),
            ),
        ),
        UNSAFE,
    ),
    "size_not_tuple": (
        lambda L: sd(
            L, call(g("torch._utils", "_rebuild_tensor"), pid("0", 4, L), i(0), lst(i(4)), t(i(1)))
        ),
        UNSAFE,
    ),
    "not_a_storage": (
        lambda L: sd(L, call(g("torch._utils", "_rebuild_tensor"), u("x"), i(0), t(), t())),
        UNSAFE,
    ),
    # numel beyond the bytes in the file
    "numel_beyond_data": (
        lambda L: sd(L, tensor(pid("0", 10**6, L), 0, (10**6,), (1,))),
        BROKEN,
    ),
    "numel_beyond_int64": (lambda L: sd(L, tensor(pid("0", 2**70, L), 0, (4,), (1,))), BROKEN),
    "storage_two_sizes": (
        lambda L: pkl(
            od(
                (u("a"), tensor(pid("0", 4, L), 0, (4,), (1,))),
                (u("b"), tensor(pid("0", 2, L), 0, (2,), (1,))),
            )
        ),
        UNSAFE,
    ),
    "storage_two_types": (
        lambda L: pkl(
            od(
                (u("a"), tensor(pid("0", 4, L), 0, (4,), (1,))),
                (u("b"), tensor(pid("0", 4, L, "DoubleStorage"), 0, (2,), (1,))),
            )
        ),
        UNSAFE,
    ),
    "unknown_storage_type": (
        lambda L: sd(L, tensor(pid("0", 4, L, "QInt8Storage"), 0, (4,), (1,))),
        UNSAFE,
    ),
    "storage_type_not_global": (
        lambda L: sd(
            L,
            t(u("storage"), u("FloatStorage"), u("0"), u("cpu"), i(4), *([pickle.NONE] * L))
            + pickle.BINPERSID,
        ),
        UNSAFE,
    ),
    "empty_storage_key": (lambda L: sd(L, tensor(pid("", 4, L), 0, (4,), (1,))), UNSAFE),
    "long_storage_key": (lambda L: sd(L, tensor(pid("k" * 300, 4, L), 0, (4,), (1,))), UNSAFE),
    "non_storage_pid": (lambda L: sd(L, t(u("module"), u("x")) + pickle.BINPERSID), UNSAFE),
    "bare_storage": (lambda L: sd(L, pid("0", 4, L)), UNSAFE),
    # bad key types
    "key_tuple": (lambda L: pkl(od((t(u("w")), ok_tensor(L)))), UNSAFE),
    "key_none": (lambda L: pkl(od((pickle.NONE, ok_tensor(L)))), UNSAFE),
    "key_float": (lambda L: pkl(od((pickle.BINFLOAT + b"\0" * 8, ok_tensor(L)))), UNSAFE),
    "key_tensor": (lambda L: pkl(od((ok_tensor(L), i(1)))), UNSAFE),
    "key_list": (lambda L: pkl(od((lst(), ok_tensor(L)))), UNSAFE),
    "setitem_on_storage_type": (
        lambda L: sd(L, g("torch", "FloatStorage") + u("k") + i(1) + pickle.SETITEM),
        UNSAFE,
    ),
    "setitem_on_tuple": (lambda L: sd(L, t(i(1)) + u("k") + i(1) + pickle.SETITEM), UNSAFE),
    "append_on_function": (
        lambda L: sd(L, g("torch._utils", "_rebuild_tensor") + i(1) + pickle.APPEND),
        UNSAFE,
    ),
    # backward hooks
    "hooks_nonempty": (
        lambda L: sd(L, tensor(pid("0", 4, L), 0, (4,), (1,), hooks=od((i(0), u("hook"))))),
        UNSAFE,
    ),
    "hooks_list": (lambda L: sd(L, tensor(pid("0", 4, L), 0, (4,), (1,), hooks=lst())), UNSAFE),
    "parameter_hooks": (
        lambda L: sd(
            L,
            call(
                g("torch._utils", "_rebuild_parameter"),
                ok_tensor(L),
                pickle.NEWFALSE,
                od((i(0), u("hook"))),
            ),
        ),
        UNSAFE,
    ),
    "parameter_of_non_tensor": (
        lambda L: sd(
            L, call(g("torch._utils", "_rebuild_parameter"), u("x"), pickle.NEWFALSE, od())
        ),
        UNSAFE,
    ),
    # containers that never end
    "self_containing_list": (
        lambda L: sd(
            L,
            pickle.EMPTY_LIST + pickle.BINPUT + b"\x07" + pickle.BINGET + b"\x07" + pickle.APPEND,
        ),
        BROKEN,
    ),
    "deep_nesting": (
        lambda L: sd(L, pickle.EMPTY_LIST * 20_000 + pickle.APPEND * 19_999),
        BROKEN,
    ),
    # malformed streams
    "memo_miss": (lambda L: sd(L, pickle.BINGET + b"\x09"), BROKEN),
    "stack_underflow": (lambda L: pkl(pickle.REDUCE), BROKEN),
    "two_objects_at_stop": (lambda L: pkl(i(1) + i(2)), BROKEN),
    "pop_mark_without_mark": (lambda L: pkl(pickle.POP_MARK + i(1)), BROKEN),
    "no_stop": (lambda L: pkl(i(1))[:-1], BROKEN),
}


def legacy_only_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Hostile files that only the legacy layout can express."""
    L = True
    okmain = pkl(od((u("w"), ok_tensor(L))))
    out: dict[str, tuple[Path, str]] = {}

    def add(name: str, expected: str, main: bytes = okmain, **kw: object) -> None:
        path = asm.legacy_file(tmp / f"legacy_{name}.pth", main, kw.pop("storages", F4), **kw)  # type: ignore[arg-type]
        out[f"legacy/{name}"] = (path, expected)

    view = lambda off, n: t(u("0"), i(off), i(n))  # noqa: E731
    # storage views (legacy view_metadata) out of range, or a tensor past its view
    add(
        "view_past_end",
        UNSAFE,
        pkl(od((u("w"), tensor(pid("0", 4, L, view=view(2, 10)), 0, (1,), (1,))))),
    )
    add(
        "view_negative",
        UNSAFE,
        pkl(od((u("w"), tensor(pid("0", 4, L, view=view(-1, 2)), 0, (1,), (1,))))),
    )
    add(
        "view_malformed",
        UNSAFE,
        pkl(od((u("w"), tensor(pid("0", 4, L, view=t(u("0"))), 0, (1,), (1,))))),
    )
    add(
        "tensor_past_view",
        UNSAFE,
        pkl(od((u("w"), tensor(pid("0", 4, L, view=view(2, 2)), 0, (4,), (1,))))),
    )
    # storage ids and code inside the header pickles
    pid_in_header = pkl(d((u("little_endian"), t(u("storage")) + pickle.BINPERSID)))
    add("pid_in_sys_info", UNSAFE, sys_info=pid_in_header)
    add("pid_in_keys", UNSAFE, keys=pkl(lst(t(u("storage")) + pickle.BINPERSID)))
    add("global_in_sys_info", UNSAFE, sys_info=pkl(call(g("os", "system"), u("true"))))
    add("odict_in_keys", UNSAFE, keys=pkl(od()))
    # headers hold plain data: even an allowed global or call is refused there
    add("global_in_magic", UNSAFE, magic=pkl(g("torch", "FloatStorage")))
    add("call_in_protocol", UNSAFE, protocol=pkl(call(g("collections", "OrderedDict"))))
    add("tensor_in_keys", UNSAFE, keys=pkl(lst(ok_tensor(True))))
    bad_view = t(u("0"), u("1"), i(2))
    add(
        "view_offset_not_int",
        UNSAFE,
        pkl(od((u("w"), tensor(pid("0", 4, L, view=bad_view), 0, (1,), (1,))))),
    )
    add(
        "view_one_past_end",
        UNSAFE,
        pkl(od((u("w"), tensor(pid("0", 4, L, view=view(1, 4)), 0, (1,), (1,))))),
    )
    add("big_endian", BROKEN, sys_info=pkl(d((u("little_endian"), pickle.NEWFALSE))))
    # element counts that disagree with the pickle or the file
    add("count_disagrees", BROKEN, counts={"0": 3})
    add("count_beyond_file", BROKEN, counts={"0": 10**6})
    add("count_negative", BROKEN, counts={"0": -1})
    add("key_listed_twice", BROKEN, keys=pkl(lst(u("0"), u("0"))))
    add("key_unused", BROKEN, keys=pkl(lst(u("0"), u("9"))))
    add("key_missing", BROKEN, keys=pkl(lst()))
    add("keys_not_str", BROKEN, keys=pkl(lst(i(0))))
    return out


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_hostile_checkpoints_are_refused_in_a_subprocess(tmp_path: Path, layout: str) -> None:
    legacy = layout == "legacy"
    cases: dict[str, Path] = {}
    expected: dict[str, str] = {}
    for name, (build, kind) in CORPUS.items():
        cases[name] = asm.write(tmp_path / f"{name}.pth", layout, build(legacy), F4)
        expected[name] = kind
    if legacy:
        for name, (path, kind) in legacy_only_cases(tmp_path).items():
            cases[name], expected[name] = path, kind
    else:
        big = asm.zip_file(
            tmp_path / "big_endian.pth", pkl(od((u("w"), ok_tensor(False)))), F4, byteorder="big"
        )
        cases["zip/big_endian"], expected["zip/big_endian"] = big, BROKEN
    results = run_batch(tmp_path, cases)
    wrong = {
        name: results[name]
        for name in cases
        if results[name][0] != expected[name] or not results[name][1]
    }
    assert not wrong, f"not refused as expected ({layout}):\n" + "\n".join(
        f"  {n}: expected {expected[n]}, got {r[0]}: {r[2]}" for n, r in wrong.items()
    )


def test_corpus_files_are_valid_apart_from_the_attack(tmp_path: Path) -> None:
    """The harness itself: the clean file and a benign twin of an attack load in-process."""
    from tlkit.backbones._torch_checkpoint import load_state_dict

    for layout in ("legacy", "zip"):
        legacy = layout == "legacy"
        main, storages = asm.clean_state(legacy)
        loaded = load_state_dict(
            asm.write(tmp_path / f"clean_{layout}.pth", layout, main, storages)
        )
        expected = asm.clean_expected()
        assert list(loaded) == list(expected)
        for key, value in expected.items():
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)
        # the same bytes as the BUILD attacks, minus the BUILD: these load
        benign = pkl(od((u("w"), ok_tensor(legacy))))
        path = asm.write(tmp_path / f"benign_{layout}.pth", layout, benign, F4)
        np.testing.assert_array_equal(load_state_dict(path)["w"], [1, 2, 3, 4])
        # stride along a length-1 dimension is never used, however large
        odd = pkl(od((u("w"), tensor(pid("0", 4, legacy), 1, (1, 3), (2**70, 1)))))
        path = asm.write(tmp_path / f"odd_{layout}.pth", layout, odd, F4)
        np.testing.assert_array_equal(load_state_dict(path)["w"], [[2, 3, 4]])
        # protocol 4 (torch.save(..., pickle_protocol=4)): STACK_GLOBAL, MEMOIZE, FRAME
        p4 = pkl(
            pickle.FRAME
            + (0).to_bytes(8, "little")
            + od(
                (
                    u("w"),
                    call(
                        asm.stack_global("torch._utils", "_rebuild_tensor_v2") + pickle.MEMOIZE,
                        pid("0", 4, legacy),
                        i(1),
                        t(i(3)),
                        t(i(1)),
                        pickle.NEWFALSE,
                        od(),
                    ),
                )
            ),
            proto=4,
        )
        path = asm.write(tmp_path / f"p4_{layout}.pth", layout, p4, F4)
        np.testing.assert_array_equal(load_state_dict(path)["w"], [2, 3, 4])


# --- fuzzing -----------------------------------------------------------------------------------

FUZZ_CHILD = CHILD_PRELUDE + textwrap.dedent(
    """
    import io, pickle, tempfile, zipfile
    from hypothesis import HealthCheck, given, settings, strategies as st
    sys.path.insert(0, job_dir := sys.argv[1])
    import helpers.torch_pickle_asm as asm
    from helpers.torch_pickle_asm import g, i, u, t, od, pid, tensor, pkl

    clean, expected = sys.argv[2], sys.argv[3]
    before = snapshot()
    work = tempfile.mkdtemp()
    counts = {"loaded": 0, "refused": 0}

    def check(data: bytes, layout: str, raw: bool = False) -> None:
        path = os.path.join(work, "f.pth")
        if raw:
            with open(path, "wb") as f:
                f.write(data)
        else:
            asm.write(__import__("pathlib").Path(path), layout, data,
                      {"0": np.arange(4, dtype=np.float32), "1": np.arange(3, dtype=np.int64)})
        try:
            tp.load_torch_checkpoint(path)
            counts["loaded"] += 1
        except TlkitError:
            counts["refused"] += 1
        assert snapshot() == before, "reader state changed"

    P = pickle
    def pieces(L):
        return [
            P.MARK, P.STOP, P.POP, P.POP_MARK, P.NONE, P.NEWTRUE, P.NEWFALSE, P.TUPLE,
            P.TUPLE1, P.TUPLE2, P.TUPLE3, P.EMPTY_TUPLE, P.EMPTY_LIST, P.APPEND, P.APPENDS,
            P.LIST, P.EMPTY_DICT, P.SETITEM, P.SETITEMS, P.DICT, P.REDUCE, P.BUILD,
            P.BINPERSID, P.DUP, P.NEWOBJ, P.BINGET + b"\\x00", P.BINPUT + b"\\x00",
            P.MEMOIZE, P.BINGET + b"\\x01", P.BINPUT + b"\\x01",
            i(0), i(1), i(4), i(-1), i(2**40), i(2**70), u("storage"), u("0"), u("1"), u("cpu"),
            u("w"), u("_metadata"), u("__globals__"), u("size"), u("stride"),
            g("torch", "FloatStorage"), g("torch", "LongStorage"),
            g("torch._utils", "_rebuild_tensor_v2"), g("torch._utils", "_rebuild_tensor"),
            g("torch._utils", "_rebuild_parameter"), g("collections", "OrderedDict"),
            g("builtins", "getattr"), asm.stack_global("torch", "FloatStorage"),
            pid("0", 4, L), pid("1", 3, L, "LongStorage"), pid("0", 10**6, L),
            tensor(pid("0", 4, L), 0, (4,), (1,)), tensor(pid("0", 4, L), 0, (2, 2), (2, 1)),
            tensor(pid("1", 3, L, "LongStorage"), 1, (2,), (1,)), od(),
            P.BINFLOAT + b"\\x00" * 8, P.SHORT_BINBYTES + b"\\x01x",
            P.SHORT_BINSTRING + b"\\x01\\xff", P.FRAME + b"\\x01" + b"\\x00" * 7,
        ]
    PIECES = {L: pieces(L) for L in (True, False)}

    common = settings(max_examples=int(sys.argv[4]), deadline=None, database=None,
                      derandomize=True, suppress_health_check=list(HealthCheck))

    @common
    @given(st.sampled_from(["legacy", "zip"]), st.data())
    def opcode_streams(layout, data):
        L = layout == "legacy"
        n = len(PIECES[L])
        idx = data.draw(st.lists(st.integers(0, n - 1), max_size=40))
        body = b"".join(PIECES[L][k] for k in idx)
        check(pkl(body), layout)

    @common
    @given(st.sampled_from(["legacy", "zip", "zip-pickle"]), st.data())
    def mutations(layout, data):
        L = layout == "legacy"
        main, storages = asm.clean_state(L)
        if layout == "zip-pickle":  # mutate data.pkl, then zip it (CRCs stay valid)
            target = bytearray(main)
        else:
            p = __import__("pathlib").Path(work) / "base.pth"
            asm.write(p, layout, main, storages)
            target = bytearray(p.read_bytes())
        edits = data.draw(st.lists(st.tuples(st.integers(0, len(target) - 1),
                                              st.integers(0, 255)), min_size=1, max_size=8))
        for pos, byte in edits:
            target[pos] = byte
        if data.draw(st.booleans()):
            target = target[: data.draw(st.integers(0, len(target)))]
        if layout == "zip-pickle":
            path = os.path.join(work, "f.pth")
            asm.zip_file(__import__("pathlib").Path(path), bytes(target), storages)
            check(open(path, "rb").read(), layout, raw=True)
        else:
            check(bytes(target), layout, raw=True)

    opcode_streams()
    mutations()
    assert snapshot() == before
    assert clean_loads_exactly(clean, expected), "a fuzzed file changed a later clean load"
    print(json.dumps(counts))
    """
).replace("sys.path.insert(0, job_dir := sys.argv[1])", "sys.path.insert(0, sys.argv[1])")


def test_fuzzed_checkpoints_never_crash_or_change_state(tmp_path: Path) -> None:
    """Random opcode streams and byte mutations: a tlkit error or a load, nothing else."""
    clean, expected = write_clean(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            FUZZ_CHILD,
            str(Path(__file__).parent),
            str(clean),
            str(expected),
            "300",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert proc.returncode == 0, f"fuzzing failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # both outcomes occur, so the fuzzer reaches past the first opcode
    assert counts["refused"] > 0 and counts["loaded"] > 0, counts


# --- the edges of what loads (each one a boundary a mutant moved) -----------------------------


def _load(tmp_path: Path, layout: str, main: bytes, storages: dict[str, np.ndarray] | None = None):
    from tlkit.backbones._torch_checkpoint import load_torch_checkpoint

    path = asm.write(
        tmp_path / f"edge_{layout}.pth", layout, main, F4 if storages is None else storages
    )
    return load_torch_checkpoint(path)


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_every_storage_type_round_trips(tmp_path: Path, layout: str) -> None:
    legacy = layout == "legacy"
    arrays = {str(k): np.arange(6).astype(dtype) for k, dtype in enumerate(asm.STORAGE)}
    entries = [
        (u(f"t{k}"), tensor(pid(k, 6, legacy, asm.STORAGE[arr.dtype]), 1, (2, 2), (2, 1)))
        for k, arr in arrays.items()
    ]
    bf16 = np.array([0x3F80, 0x4000, 0xC040], dtype="<u2")  # 1.0, 2.0, -3.0 in bfloat16
    entries.append((u("bf16"), tensor(pid("bf", 3, legacy, "BFloat16Storage"), 0, (3,), (1,))))
    got = _load(tmp_path, layout, pkl(od(*entries)), {**arrays, "bf": bf16})
    for k, arr in arrays.items():
        assert got[f"t{k}"].dtype == arr.dtype
        np.testing.assert_array_equal(got[f"t{k}"], arr[[1, 2, 3, 4]].reshape(2, 2))
    assert got["bf16"].dtype == np.float32
    np.testing.assert_array_equal(got["bf16"], [1.0, 2.0, -3.0])


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_limits_are_inclusive(tmp_path: Path, layout: str) -> None:
    L = layout == "legacy"
    main = pkl(
        od(
            # 32 dimensions is the limit (33 is refused, see too_many_dims)
            (u("ndim32"), tensor(pid("0", 4, L), 0, (1,) * 32, (1,) * 32)),
            # an empty tensor may sit at the very end of its storage
            (u("empty_at_end"), tensor(pid("0", 4, L), 4, (0,), (1,))),
            (u("last_element"), tensor(pid("0", 4, L), 3, (1,), (1,))),
        )
    )
    got = _load(tmp_path, layout, main)
    assert got["ndim32"].shape == (1,) * 32 and got["ndim32"].item() == 1
    assert got["empty_at_end"].shape == (0,) and got["empty_at_end"].dtype == np.float32
    np.testing.assert_array_equal(got["last_element"], [4])
    from tlkit.errors import UnsafeCheckpointError

    with pytest.raises(UnsafeCheckpointError, match="empty tensor"):
        _load(tmp_path, layout, pkl(od((u("w"), tensor(pid("0", 4, L), 5, (0,), (1,))))))


def _nested(kind: str, depth: int) -> bytes:
    inner = pickle.EMPTY_LIST if kind == "list" else pickle.EMPTY_DICT
    for _ in range(depth - 1):
        inner = lst(inner) if kind == "list" else d((u("k"), inner))
    return inner


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_nesting_limit_is_exactly_64_levels_below_the_top(tmp_path: Path, kind: str) -> None:
    from tlkit.errors import WeightsFileError

    got = _load(tmp_path, "zip", pkl(_nested(kind, 65)))
    depth = 0
    while got:
        got = got[0] if kind == "list" else got["k"]
        depth += 1
    assert depth == 64
    with pytest.raises(WeightsFileError, match="nested more than 64"):
        _load(tmp_path, "zip", pkl(_nested(kind, 66)))


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_python2_and_rarer_opcodes_load(tmp_path: Path, layout: str) -> None:
    L = layout == "legacy"
    main = pkl(
        # OrderedDict([[key, value], ...]) as Python 2 pickled it, with byte-string keys
        call(
            g("collections", "OrderedDict"),
            lst(
                lst(pickle.SHORT_BINSTRING + b"\x01a", ok_tensor(L)),
                t(pickle.BINSTRING + b"\x01\x00\x00\x00b", pickle.BINBYTES + b"\x02\x00\x00\x00hi"),
                lst(u("c"), pickle.MARK + u("x") + i(1) + pickle.DICT),
                lst(u("d"), pickle.MARK + i(1) + i(2) + pickle.LIST),
                lst(u("e"), pickle.SHORT_BINBYTES + b"\x01z"),
                lst(u("f"), i(7) + i(8) + pickle.POP),
                lst(u("g"), i(7) + pickle.MARK + i(8) + i(9) + pickle.POP_MARK),
            ),
        )
    )
    got = _load(tmp_path, layout, main)
    assert list(got) == ["a", "b", "c", "d", "e", "f", "g"]
    np.testing.assert_array_equal(got["a"], [1, 2, 3, 4])
    assert got["b"] == b"hi" and got["c"] == {"x": 1} and got["d"] == [1, 2]
    assert got["e"] == b"z" and got["f"] == 7 and got["g"] == 7


@pytest.mark.parametrize(
    "pairs",
    [
        lst(lst(u("a"))),  # not a pair
        lst(u("a")),  # not a list or tuple
        lst(lst(u("a"), i(1), i(2))),  # three items
        lst(lst(t(u("k")), i(1))),  # a tuple key
    ],
)
def test_python2_ordered_dict_items_must_be_pairs_with_plain_keys(
    tmp_path: Path, pairs: bytes
) -> None:
    from tlkit.errors import UnsafeCheckpointError

    with pytest.raises(UnsafeCheckpointError):
        _load(tmp_path, "zip", pkl(call(g("collections", "OrderedDict"), pairs)))


def test_legacy_view_at_offset_zero_and_empty_last_storage_load(tmp_path: Path) -> None:
    view = t(u("0"), i(0), i(4))
    main = pkl(
        od(
            (u("v"), tensor(pid("0", 4, True, view=view), 1, (3,), (1,))),
            (u("none"), tensor(pid("9", 0, True), 0, (0, 3), (3, 1))),
        )
    )
    got = _load(tmp_path, "legacy", main, {"0": F4["0"], "9": np.zeros(0, np.float32)})
    np.testing.assert_array_equal(got["v"], [2, 3, 4])
    assert got["none"].shape == (0, 3)


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_bounds_are_checked_before_any_storage_is_read(tmp_path: Path, layout: str) -> None:
    """A tensor past its storage is refused while unpickling, whatever the data holds."""
    from tlkit.errors import UnsafeCheckpointError

    L = layout == "legacy"
    main = pkl(od((u("w"), tensor(pid("0", 4, L), 2, (4,), (1,)))))
    with pytest.raises(UnsafeCheckpointError, match="reads past the end"):
        _load(tmp_path, layout, main, {"0": np.zeros(2, np.float32)})  # data short as well


def test_stand_ins_cannot_be_changed() -> None:
    import dataclasses

    from tlkit.backbones import _pickle_vm as vm

    for stype in vm._STORAGE_TYPES:
        with pytest.raises(AttributeError):
            stype.typestr = "<f8"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            stype.extra = 1  # type: ignore[attr-defined]
    storage = vm._Storage("0", vm._STORAGE_TYPES[0], 4)
    view = vm._StorageView(storage, 0, 4)
    ref = vm._TensorRef(storage, 0, (4,), (1,))
    for obj, field_name in ((view, "numel"), (ref, "size")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field_name, 10**6)
    with pytest.raises(TypeError):
        vm._ALLOWED_GLOBALS["builtins getattr"] = getattr  # type: ignore[index]
    with pytest.raises(TypeError):
        vm._Interpreter.dispatch["INST"] = vm._Interpreter._none  # type: ignore[index]


def test_every_allowed_opcode_has_a_handler() -> None:
    """The dispatch table covers both allowlists (STOP ends run()) and nothing beyond them."""
    from tlkit.backbones import _pickle_vm as vm

    assert set(vm._Interpreter.dispatch) == vm._OBJECT_OPCODES - {"STOP"}
    assert vm._DATA_OPCODES <= vm._OBJECT_OPCODES
