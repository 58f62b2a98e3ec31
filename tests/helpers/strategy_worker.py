"""One tiny FreezeThenUnfreeze fit under a tf.distribute strategy: a subprocess of test_strategy.py.

Logical devices and TF_CONFIG must be set before TensorFlow starts its runtime, so every run
gets a fresh process::

    python strategy_worker.py MODE OUT [--data FOLDER] [--resume DIR] [--die-in-epoch N] [--cache]

MODE is ``single``, ``mirrored`` (2 logical CPU devices) or ``multiworker`` (reads TF_CONFIG).
Without ``--data`` the model trains on fixed, unshuffled arrays, so one device and several
replicas see the same global batches in the same order. Writes OUT/result-<task>.json,
OUT/init-<task>.npz and OUT/weights-<task>.npz, and ``tuner.save(OUT/model.keras)`` (only the
chief writes it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

SIZE = 32


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["single", "mirrored", "multiworker"])
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path)
    p.add_argument("--resume")
    p.add_argument("--die-in-epoch", type=int)
    p.add_argument("--timeout", type=int, default=20)
    p.add_argument("--cache", action="store_true", help="cache_features=True")
    a = p.parse_args()
    task = 0
    if a.mode == "mirrored":
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif a.mode == "multiworker":
        task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        opts = tf.distribute.experimental.CommunicationOptions(timeout_seconds=a.timeout)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=opts)
    else:
        strategy = None

    import keras

    from tlkit import DatasetSplitter, FineTuner, schedules
    from tlkit.backbones import get_backbone

    if a.data is not None:
        split = DatasetSplitter(val=1 / 3, test=0.0, seed=0, progress=False).split(a.data)
        train, val, classes = split.train, split.val, list(split.class_names)
    else:
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (48, SIZE, SIZE, 3)).astype("float32")
        x[1::2, :, :, 0] = 255.0  # class 1: a saturated red channel, learnable in 2 epochs
        y = (np.arange(48) % 2).astype("int32")
        train = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(16)
        val = tf.data.Dataset.from_tensor_slices((x[32:], y[32:])).batch(16)
        classes = ["a", "b"]

    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else tf.name_scope("one_device"):
        backbone = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8, 16))
    tuner = FineTuner(
        backbone,
        class_names=classes,
        schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze="all"),
        optimizer="adam",
        learning_rate=1e-2,
        batch_size=16,
        dropout=0.0,  # dropout masks differ per replica
        restore_best=False,  # compare the weights the schedule ends with
        seed=0,
        verbose=0,
        strategy=strategy,
        resume_dir=a.resume,
        cache_features=True if a.cache else "auto",
    )
    init = [np.asarray(w).copy() for w in tuner.build().get_weights()]
    callbacks = []
    if a.die_in_epoch is not None:

        class Die(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch + 1 == a.die_in_epoch:
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(Die())
    history = tuner.fit(train, val, callbacks=callbacks)
    a.out.mkdir(parents=True, exist_ok=True)
    np.savez(a.out / f"init-{task}.npz", *init)
    np.savez(a.out / f"weights-{task}.npz", *[np.asarray(w) for w in tuner.model.get_weights()])
    tuner.save(a.out / "model.keras")
    result = {
        "phases": history.phases,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
        "chief": tuner.is_chief(),
        "iterations": {n: int(np.asarray(o.iterations)) for n, o in tuner._optimizers.items()},
        "resumed": tuner._resumed,
        "cached": [p["cached_features"] for p in tuner.phase_log],
    }
    (a.out / f"result-{task}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
