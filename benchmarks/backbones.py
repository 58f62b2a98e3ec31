"""Benchmark: forward-pass speed and size of every registered backbone on this CPU.

For each backbone (headless, ``pooling="avg"``, at its default input size) it builds
the model once, runs two warm-up batches, then times forward passes of ``--batch``
raw-pixel images through ``predict_on_batch`` for at least ``--seconds`` (and at least
``--min-batches`` batches), and reports images/s and milliseconds per image from the
median batch time, parameters, and whether ImageNet weights load offline. Speed does not depend
on the weights' values, so random weights are used (``weights=None``): nothing is
downloaded.

Usage::

    python benchmarks/backbones.py                        # all backbones, batch 8
    python benchmarks/backbones.py --pattern "mobilenet*" --batch 16
    python benchmarks/backbones.py --rst                  # the table as reStructuredText
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import keras
import numpy as np

from tlkit.backbones import backbone_config, get_backbone, list_backbones


def measure(name: str, batch: int, seconds: float, min_batches: int) -> dict[str, object]:
    config = backbone_config(name)
    bb = get_backbone(name, weights=None)
    h, w = bb.image_size
    x = np.random.default_rng(0).uniform(0, 255, size=(batch, h, w, 3)).astype(np.float32)
    for _ in range(2):  # warm-up: traces the graph, lets oneDNN pick its kernels
        bb.model.predict_on_batch(x)
    times: list[float] = []
    t_start = time.perf_counter()
    while len(times) < min_batches or time.perf_counter() - t_start < seconds:
        t0 = time.perf_counter()
        bb.model.predict_on_batch(x)
        times.append(time.perf_counter() - t0)
    per_batch = float(np.median(times))  # the median resists load spikes from other processes
    row = {
        "name": name,
        "input": f"{h}x{w}",
        "preprocessing": config.preprocessing,
        "params_m": bb.model.count_params() / 1e6,
        "images_s": batch / per_batch,
        "ms_image": 1000 * per_batch / batch,
        "offline": "yes" if config.offline_weights else "no",
    }
    keras.backend.clear_session()
    return row


def as_text(rows: list[dict[str, object]]) -> str:
    head = f"{'backbone':<20} {'input':>8} {'preproc':>8} {'params':>8} {'img/s':>8} {'ms/img':>8} offline"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<20} {r['input']:>8} {r['preprocessing']:>8} {r['params_m']:>7.2f}M "
            f"{r['images_s']:>8.1f} {r['ms_image']:>8.1f} {r['offline']}"
        )
    return "\n".join(lines)


def as_rst(rows: list[dict[str, object]]) -> str:
    header = [
        "backbone",
        "input",
        "preprocessing",
        "params (M)",
        "images/s",
        "ms/image",
        "offline weights",
    ]
    cells = [
        [
            f"``{r['name']}``",
            str(r["input"]),
            str(r["preprocessing"]),
            f"{r['params_m']:.2f}",
            f"{r['images_s']:.1f}",
            f"{r['ms_image']:.1f}",
            str(r["offline"]),
        ]
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *cells, strict=True)]
    rule = "  ".join("=" * w for w in widths)

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(header), rule, *(line(r) for r in cells), rule])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="*", help="wildcard over backbone names")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per backbone")
    parser.add_argument("--min-batches", type=int, default=3)
    parser.add_argument("--rst", action="store_true", help="print a reStructuredText table")
    args = parser.parse_args()

    names = list_backbones(args.pattern)
    if not names:
        raise SystemExit(f"no backbone matches {args.pattern!r}; see list_backbones()")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, keras {keras.__version__}, "
        f"batch {args.batch}, >= {args.seconds:g} s per backbone"
    )
    rows = []
    for name in names:
        rows.append(measure(name, args.batch, args.seconds, args.min_batches))
        print(as_text(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(as_rst(rows) if args.rst else as_text(rows))
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
