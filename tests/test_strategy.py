"""FineTuner under tf.distribute: 2 replicas on logical CPU devices, and 2 workers on 127.0.0.1.

Logical devices and TF_CONFIG must be set before TensorFlow starts its runtime, so each run is
a fresh process (tests/helpers/strategy_worker.py). The fixed-array runs feed every replica count the
same global batches in the same order, so a correct scale-out gives the one-device result up
to float summation order: 2 replicas each average 8 examples and the all-reduce adds the two
halves, where one device averages 16. That reorders float32 additions only, so the tolerance
is 1e-5 on weights that move by more than 1e-3 (measured difference: 0.0).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tlkit import FineTuner, schedules
from tlkit.backbones import get_backbone
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import ScheduleError

WORKER = Path(__file__).parent / "helpers" / "strategy_worker.py"
SRC = Path(__file__).resolve().parents[1] / "src"
TIMEOUT = 20  # collective timeout of the workers, seconds


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(args: list[str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env=_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker hung for {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def _ok(proc: subprocess.Popen[str]) -> str:
    rc, out = _finish(proc)
    assert rc == 0, out[-3000:]
    return out


def _result(out: Path, task: int = 0) -> dict:
    return json.loads((out / f"result-{task}.json").read_text())


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[k] for k in z.files]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(out: Path, resume: Path, extra: dict[int, list[str]] | None = None) -> list:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        args = ["multiworker", str(out), "--resume", str(resume), "--timeout", str(TIMEOUT)]
        procs.append(_start(args + (extra or {}).get(i, []), TF_CONFIG=config))
    return procs


def test_mirrored_two_replicas_match_one_device(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    procs = [_start(["single", str(one)]), _start(["mirrored", str(two)])]
    for p in procs:
        _ok(p)
    r1, r2 = _result(one), _result(two)
    assert (r1["replicas"], r2["replicas"]) == (1, 2)
    assert r1["phases"] == r2["phases"] == ["head", "finetune"]
    # per-group optimizers: one step per global batch, on one device and on 2 replicas
    assert r1["iterations"] == r2["iterations"] == {"classifier": 4, "block2": 2, "block1": 2}
    init = _weights(one / "init-0.npz")
    w1, w2 = _weights(one / "weights-0.npz"), _weights(two / "weights-0.npz")
    assert all(
        np.array_equal(a, b) for a, b in zip(init, _weights(two / "init-0.npz"), strict=True)
    )
    moved = [float(np.abs(a - i).max()) for a, i in zip(w1, init, strict=True)]
    assert max(moved[:1]) > 1e-4 and max(moved) > 1e-3  # the backbone trained in phase 2
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    for key in ("loss", "val_loss", "val_balanced_accuracy"):
        np.testing.assert_allclose(r1["history"][key], r2["history"][key], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_mirrored_fit_on_split_part_with_cached_features_and_checkpoints(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "photos", {"a": 24, "b": 24}, image_size=32)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    _ok(_start(["mirrored", str(out), "--data", str(data), "--resume", str(ckpt), "--cache"]))
    assert _result(out)["cached"] == [True, False]  # the head phase on cached features
    state = json.loads((ckpt / "state.json").read_text())
    assert (state["phase_index"], state["phase_done"]) == (1, True)
    assert _result(out)["phases"] == ["head", "finetune"]
    assert (out / "model.keras").is_file()
    reloaded = FineTuner.load(out / "model.keras")
    assert reloaded.class_names == ["a", "b"]


@pytest.mark.slow
def test_multiworker_runs_schedule_and_only_the_chief_writes(tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    for p in _workers(out, ckpt):
        _ok(p)
    r0, r1 = _result(out, 0), _result(out, 1)
    assert (r0["chief"], r1["chief"]) == (True, False)
    assert r0["replicas"] == r1["replicas"] == 2
    assert r0["phases"] == r1["phases"] == ["head", "finetune"]
    assert sorted(p.name for p in out.glob("*.keras*")) == ["model.keras"]
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "optimizers-0002d.npz", "state.json", "weights-0002d.weights.h5",
    ]  # fmt: skip
    for a, b in zip(_weights(out / "weights-0.npz"), _weights(out / "weights-1.npz"), strict=True):
        np.testing.assert_array_equal(a, b)  # the replicas stayed in sync


@pytest.mark.slow
def test_killed_worker_fails_the_other_within_bounded_time_then_resume(tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    chief, doomed = _workers(out, ckpt, {1: ["--die-in-epoch", "2"]})
    rc1, _ = _finish(doomed)
    assert rc1 == -9
    t0 = time.monotonic()
    rc0, log = _finish(chief, timeout=90)
    waited = time.monotonic() - t0
    assert rc0 != 0
    assert "unhealthy" in log or "Collective ops is aborted" in log, log[-3000:]
    assert waited < 3 * TIMEOUT + 30
    assert not (out / "model.keras").exists()
    state = json.loads((ckpt / "state.json").read_text())
    assert (state["phase_index"], state["phase_done"]) == (0, True)  # head phase done
    # both workers started again continue in the fine-tuning phase
    for p in _workers(out, ckpt):
        _ok(p)
    r0 = _result(out, 0)
    assert r0["resumed"] and r0["phases"] == ["head", "finetune"]
    assert (out / "model.keras").is_file()


def test_backbone_built_outside_the_scope_is_refused() -> None:
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    outside = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(8,))
    t = FineTuner(outside, num_classes=2, schedule=schedules.Frozen(1), strategy=strategy)
    with pytest.raises(ScheduleError, match=r"outside strategy\.scope\(\)"):
        t.build()
    with strategy.scope():
        inside = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(8,))
    t = FineTuner(inside, num_classes=2, schedule=schedules.Frozen(1), strategy=strategy)
    assert t.build().output_shape == (None, 2)
    assert t.is_chief()
