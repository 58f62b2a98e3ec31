"""The wait when Keras's ``fit`` returns: tf.data's autotuning thread on against off.

With autotuning on (TensorFlow's default) every dataset iterator runs a thread that
wakes on a timer whose period doubles from 10 ms to 60 s. Deleting the iterator
(which Keras does as ``fit`` returns) wakes that thread to stop, but TensorFlow marks
the iterator cancelled only after the wake-up, so the thread can sleep out its
period while the delete waits for it, the process idle. In the README's study runs
the CNN from scratch's ``fit`` returned 54-60 s after its last epoch (273 s for a
240 s time budget), each time at the thread's wake-up 262 s after the iterator
started. tlkit's pipelines and the datasets ``FineTuner`` trains on now have the
thread off (``tlkit.data._pipeline.without_autotune_thread``).

This script trains the study's CNN from scratch (``FineTuner.scratch_cnn``, 160 px,
batch 32) on ELPV's training images with plain Keras ``fit(ds.repeat(),
steps_per_epoch=...)``, as ``FineTuner`` does, many short fits alternating the thread
on and off, each fit a new iterator. It prints per fit the seconds from its last
batch's end to ``fit`` returning (and the CPU seconds the process used meanwhile),
then per way the mean and largest wait, how many waited over 0.1 s, and the mean
step time. A wait is at most the thread's current period: seconds for these short
fits, up to 60 s for a phase of minutes. Then, for what the thread off costs where
the pipeline does the most work, it streams the same images through ``to_dataset``
(decode, resize to 224, the ``"standard"`` augmentation, no cache) ``--passes`` times
each way, alternating, and prints images/s each way.

Usage::

    python benchmarks/iterator_teardown.py             # about 4 minutes on 2 cores
    python benchmarks/iterator_teardown.py --fits 20 --steps 30 --passes 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fits", type=int, default=12, help="fits each way (default 12)")
    p.add_argument("--steps", type=int, default=20, help="batches per fit (default 20)")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--passes", type=int, default=3, help="streaming passes each way (default 3)")
    args = p.parse_args()
    if args.fits < 1 or args.steps < 2:
        p.error("--fits must be >= 1 and --steps >= 2")

    import keras
    import tensorflow as tf

    from tlkit import DatasetSplitter, FineTuner
    from tlkit.datasets import elpv_samples

    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=42, progress=False)
    split = split.split_samples(pairs, class_names=names)
    off = split.train.to_dataset(
        args.image_size, batch_size=32, shuffle=True, seed=0, cache="memory"
    ).repeat()
    assert off.options().autotune.enabled is False, "tlkit's pipeline should have it off"
    options = tf.data.Options()
    options.autotune.enabled = True
    ways = {"thread on (TensorFlow's default)": off.with_options(options), "thread off": off}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.last = (time.perf_counter(), time.process_time())

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

    tuner = FineTuner.scratch_cnn(
        class_names=split.class_names, image_size=args.image_size, seed=0, verbose=0
    )
    tuner.build()
    model = tuner.model
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    # Untimed: fill the image cache and trace the step.
    model.fit(off, steps_per_epoch=args.steps, epochs=1, verbose=0)
    waits: dict[str, list[float]] = {w: [] for w in ways}
    steps: dict[str, list[float]] = {w: [] for w in ways}
    for i in range(args.fits):
        for way, ds in ways.items():
            clock = Clock()
            model.fit(ds, steps_per_epoch=args.steps, epochs=1, callbacks=[clock], verbose=0)
            wall, cpu = time.perf_counter() - clock.last[0], time.process_time() - clock.last[1]
            waits[way].append(wall)
            steps[way].append((clock.last[0] - clock.start) / args.steps)
            print(f"fit {i + 1:2d}, {way}: returned {wall:5.2f} s after its last batch "
                  f"(CPU {cpu:4.2f} s)", flush=True)  # fmt: skip
    print()
    for way in ways:
        w = np.asarray(waits[way])
        print(f"{way}: wait mean {w.mean():.2f} s, largest {w.max():.2f} s, over 0.1 s in "
              f"{int((w > 0.1).sum())} of {len(w)} fits; mean step {np.mean(steps[way]):.3f} s")  # fmt: skip
    on, off_ = (float(np.mean(steps[w])) for w in ways)
    print(f"step time, thread off / on: {off_ / on:.2f}x")

    from tlkit import AugmentationPipeline

    stream = split.train.to_dataset(
        224, batch_size=32, shuffle=True, seed=0, augment=AugmentationPipeline.preset("standard")
    )
    streams = {"thread on": stream.with_options(options), "thread off": stream}
    rates: dict[str, list[float]] = {w: [] for w in streams}
    print(
        f"\nstreaming {len(split.train)} images (decode, resize to 224, 'standard' augmentation):"
    )
    for i in range(args.passes):
        for way, ds in streams.items():
            t0 = time.perf_counter()
            n = sum(int(x.shape[0]) for x, _ in ds)
            rates[way].append(n / (time.perf_counter() - t0))
            print(f"pass {i + 1}, {way}: {rates[way][-1]:.0f} images/s", flush=True)
    r_on, r_off = (float(np.median(rates[w])) for w in streams)
    print(f"median images/s: thread on {r_on:.0f}, off {r_off:.0f}; off / on {r_off / r_on:.2f}x")


if __name__ == "__main__":
    main()
