"""The fixed cost of an input pipeline: the decoding function traced once per settings, or per pipeline.

``tlkit.data.to_dataset`` decodes in a ``tf.data`` map whose function (every
format's branch, the pixel limits, the EXIF orientation) takes about a second to
trace. A fit builds several pipelines (training, validation, each cache pass), and
before this change each traced it again. It is now a ``tf.function`` kept per image
size, resize policy and limits, so each later pipeline traces a call to it only.

Measured in one run, alternating the two (same process, after a warm-up):

(a) building a pipeline and reading its first batch: the kept decoder against a
    fresh trace each time (the reference: the cache bypassed, what every pipeline
    did before);
(b) a whole two-phase fit of a tiny CNN on 32 px generated images (the size of a
    unit test's fit, where fixed costs are all there is): the same two ways.

Usage::

    python benchmarks/pipeline_build.py            # about a minute on 2 cores
    python benchmarks/pipeline_build.py --repeats 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    args = p.parse_args()

    import keras

    import tlkit.data._decode as decode
    from tlkit import DatasetSplitter, FineTuner, schedules
    from tlkit.backbones import get_backbone
    from tlkit.data import to_dataset
    from tlkit.datasets import make_synthetic_dataset

    kept = decode._decoder
    fresh = kept.__wrapped__  # the same function without the cache: a new trace each call
    root = make_synthetic_dataset(
        Path(tempfile.mkdtemp()) / "photos", {"a": 24, "b": 18, "c": 12}, image_size=32
    )
    split = DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(root)

    def build() -> float:
        t0 = time.perf_counter()
        ds = to_dataset(split.train.samples, image_size=32, batch_size=16, root=split.train.root)
        next(iter(ds))
        return time.perf_counter() - t0

    def fit() -> float:
        keras.utils.set_random_seed(7)
        backbone = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(8, 16, 16))
        tuner = FineTuner(
            backbone, batch_size=16, schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze="all"),
            seed=0, verbose=0,
        )  # fmt: skip
        t0 = time.perf_counter()
        tuner.fit(split.train, split.val)
        return time.perf_counter() - t0

    build(), fit()  # warm-up: TensorFlow's start, Keras's first traces
    for name, task in (("pipeline build + first batch", build), ("two-phase fit, 32 px", fit)):
        times: dict[str, list[float]] = {"kept decoder": [], "traced each time": []}
        for _ in range(args.repeats):
            for label, decoder in (("kept decoder", kept), ("traced each time", fresh)):
                decode._decoder = decoder
                try:
                    times[label].append(task())
                finally:
                    decode._decoder = kept
        a, b = (statistics.median(times[k]) for k in ("kept decoder", "traced each time"))
        print(f"{name}: kept decoder {a:.2f} s, traced each time {b:.2f} s (medians of "
              f"{args.repeats}): {b / a:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
