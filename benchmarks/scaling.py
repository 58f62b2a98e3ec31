"""Scaling: training images/s of ``FineTuner.fit`` with 1 vs 2 replicas (tf.distribute).

Each replica count runs in a fresh process (logical devices must be set before TensorFlow
starts): ``MirroredStrategy`` over the first N GPUs when the machine has N GPUs, otherwise over
N logical CPU devices made with ``tf.config.set_logical_device_configuration``. The model trains
with ``FullTraining`` (every layer) on random arrays at a fixed *global* batch, so 2 replicas get
half a batch each; the first epoch (tracing, warm-up) is left out of the timing. Runs are
interleaved and the best of ``--repeat`` is kept. Prints images/s per replica count and the
ratio 2 replicas / 1 replica.

Logical CPU devices share the same cores (one process, one thread pool), so on a CPU this is no
scale-out and no speed-up is expected: the ratio there is the strategy's overhead (splitting
batches, all-reducing gradients) against whatever two half-batches running side by side gain in
keeping the cores busy.

Usage::

    python benchmarks/scaling.py                        # scratch CNN at 64 px, about 1 min on 2 cores
    python benchmarks/scaling.py --backbone mobilenet_v2 --image-size 96 --images 256 --batch 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def child(a: argparse.Namespace) -> None:
    import numpy as np
    import tensorflow as tf

    n = a.child
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= n:
        devices = [f"/gpu:{i}" for i in range(n)]
    else:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * n
        )
        devices = [f"/cpu:{i}" for i in range(n)]
    strategy = tf.distribute.MirroredStrategy(devices)

    import keras

    from tlkit import FineTuner, schedules

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (a.images, a.image_size, a.image_size, 3)).astype("float32")
    y = (np.arange(a.images) % 2).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(a.batch, drop_remainder=True)
    ds = ds.cache().prefetch(2)

    class Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.times.append(time.perf_counter() - self.t0)

    options = {"widths": (16, 32, 64)} if a.backbone == "scratch_cnn" else {}
    with strategy.scope():
        from tlkit.backbones import get_backbone

        backbone = get_backbone(a.backbone, weights=None, image_size=a.image_size, **options)
    tuner = FineTuner(
        backbone,
        class_names=["a", "b"],
        schedule=schedules.FullTraining(a.epochs + 1),
        batch_size=a.batch,
        restore_best=False,
        seed=0,
        verbose=0,
        strategy=strategy,
    )
    clock = Clock()
    tuner.fit(ds, callbacks=[clock])
    steps = a.images // a.batch
    seconds = sum(clock.times[1:])
    print(
        json.dumps(
            {"replicas": n, "devices": devices, "images_s": a.epochs * steps * a.batch / seconds}
        )
    )


def run_child(a: argparse.Namespace, n: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n)]
    for k in ("backbone", "image_size", "images", "batch", "epochs"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"replicas={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="scratch_cnn")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch", type=int, default=64, help="global batch")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{a.backbone} at {a.image_size} px, FullTraining, {a.images} random images, global "
        f"batch {a.batch}, {a.epochs} timed epochs, best of {a.repeat}"
    )
    best: dict[int, dict] = {}
    for _ in range(a.repeat):
        for n in (1, 2):
            r = run_child(a, n)
            if n not in best or r["images_s"] > best[n]["images_s"]:
                best[n] = r
    for n in (1, 2):
        print(
            f"{n} replica(s) on {', '.join(best[n]['devices'])}: {best[n]['images_s']:.1f} images/s"
        )
    ratio = best[2]["images_s"] / best[1]["images_s"]
    print(f"ratio 2 replicas / 1 replica: {ratio:.2f}")
    if best[2]["devices"][0].startswith("/cpu"):
        print(
            "note: logical CPU devices share the same cores, so no speed-up is expected here: "
            "the ratio is the strategy's overhead against two half-batches sharing the cores"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
