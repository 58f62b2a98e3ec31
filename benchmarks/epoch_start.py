"""The wait at the start of each epoch: a new dataset iterator per epoch against one repeated.

Keras makes a new iterator of a finite ``tf.data`` dataset at every epoch. On 2 CPU
cores the first batch of some epochs then waited seconds with the process idle (its
CPU time barely moved), which a time budget counts as slow epochs. ``FineTuner``
fits each phase on ``ds.repeat()`` with ``steps_per_epoch`` instead, one iterator for
the phase, with the same batches epoch by epoch (``tests/test_finetune.py``).

The waits turned out to be tf.data's autotuning thread holding up the delete of the
previous epoch's iterator (``benchmarks/iterator_teardown.py``); with the thread off, as
tlkit's pipelines now run, neither way waits (rerun at commit 5cbb93a: first batches
0.13-0.16 s, mean epoch 7.98 s against 8.08 s, 0.99x).

This script trains the study's CNN from scratch (``FineTuner.scratch_cnn``, 160 px,
batch 32, no augmentation) on ELPV's training images with plain Keras ``fit`` both
ways, alternating (plain, repeated, plain, repeated), and prints per epoch the wall
and CPU seconds of its first batch and the epoch's wall seconds; then the mean epoch
after the first (which decodes the images into the cache) each way and their ratio.

Usage::

    python benchmarks/epoch_start.py            # about 3 minutes on 2 cores
    python benchmarks/epoch_start.py --epochs 6 --rounds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="epochs of each fit (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="fits each way (default 2)")
    p.add_argument("--image-size", type=int, default=160)
    args = p.parse_args()

    import keras

    from tlkit import DatasetSplitter, FineTuner
    from tlkit.datasets import elpv_samples

    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=42, progress=False)
    split = split.split_samples(pairs, class_names=names)

    class FirstBatch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[tuple[float, float, float]] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.c0, self.first = time.perf_counter(), time.process_time(), None

        def on_train_batch_end(self, batch, logs=None):
            if self.first is None:
                self.first = (time.perf_counter() - self.t0, time.process_time() - self.c0)

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append((*self.first, time.perf_counter() - self.t0))

    epochs: dict[str, list[float]] = {"new iterator each epoch": [], "one repeated iterator": []}
    for round_ in range(args.rounds):
        for way in epochs:
            ds = split.train.to_dataset(
                args.image_size, batch_size=32, shuffle=True, seed=round_, cache="memory"
            )
            steps = int(ds.cardinality())
            tuner = FineTuner.scratch_cnn(
                class_names=split.class_names, image_size=args.image_size, seed=round_, verbose=0
            )
            tuner.build()
            model = tuner.model
            model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
            timer = FirstBatch()
            if way == "one repeated iterator":
                model.fit(ds.repeat(), steps_per_epoch=steps, epochs=args.epochs,
                          callbacks=[timer], shuffle=False, verbose=0)  # fmt: skip
            else:
                model.fit(ds, epochs=args.epochs, callbacks=[timer], shuffle=False, verbose=0)
            print(f"{way}, round {round_ + 1}:")
            for i, (wall, cpu, epoch) in enumerate(timer.rows, start=1):
                print(f"  epoch {i}: first batch {wall:5.2f} s (CPU {cpu:4.2f} s), "
                      f"epoch {epoch:5.1f} s")  # fmt: skip
            epochs[way] += [row[2] for row in timer.rows[1:]]
    plain, repeated = (float(np.mean(v)) for v in epochs.values())
    print(
        f"mean epoch after the first: new iterator each epoch {plain:.2f} s, one repeated "
        f"iterator {repeated:.2f} s; ratio {plain / repeated:.2f}x"
    )


if __name__ == "__main__":
    main()
