"""Input pipeline throughput and memory: tlkit.data.to_dataset against a naive loop.

Measures, in one run, on the same generated files:

(a) images/s of ``to_dataset`` (decode + resize to 224 + "standard" augmentation,
    batch 32) against the study-style naive loop (PIL open, EXIF transpose,
    resize, numpy stack, then Keras RandomFlip / RandomRotation / RandomZoom /
    RandomContrast called eagerly per batch), on 2,000 generated 500x375 JPEGs;
(b) the same on 200 generated 4000x3000 JPEGs (12 megapixels, phone size);
(c) images/s of one training step of a frozen MobileNetV2 with a Dense head
    (224x224, batch 32), against which the pipeline must be >= 2x;
(d) peak RSS (VmHWM) of a fresh process streaming 5,000 and then 20,000 images
    with cache off (the 500x375 files, repeated to make up the count).

Usage::

    python benchmarks/pipeline_throughput.py            # full run, about 6 minutes on 2 cores
    python benchmarks/pipeline_throughput.py --quick    # smaller counts, about 2 minutes

The machine's load average is printed before and after: on a shared machine
other processes take CPU from both contenders, which lowers both rates.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image, ImageOps

from tlkit.datasets import synthetic_image

BATCH = 32
SIZE = 224
NUM_CLASSES = 4


# -- data ----------------------------------------------------------------------------------


def generate(folder: Path, n: int, width: int, height: int, seed: int) -> list[str]:
    """Write ``n`` distinct JPEGs (quality 90) of ``width x height``; return relative paths.

    Four base images (class colour, stripes, pixel noise) are shifted by a random
    offset per file, so every file is different and costs a full decode.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = [synthetic_image(k, NUM_CLASSES, (height, width), rng) for k in range(NUM_CLASSES)]
    shifts = rng.integers(0, width, n)

    def one(i: int) -> str:
        name = f"{i:05d}.jpg"
        arr = np.roll(bases[i % NUM_CLASSES], int(shifts[i]), axis=1)
        Image.fromarray(arr).save(folder / name, "JPEG", quality=90)
        return name

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, range(n)))


def samples_for(names: list[str]) -> list:
    from tlkit.data import Sample

    return [Sample(name, i % NUM_CLASSES) for i, name in enumerate(names)]


# -- the two contenders --------------------------------------------------------------------


def naive_layers(interpolation: str = "bilinear") -> list:
    """The typical Keras augmentation layers, at the strengths of the "standard" preset."""
    import keras

    return [
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.05, interpolation=interpolation),
        keras.layers.RandomZoom(0.1, interpolation=interpolation),
        keras.layers.RandomContrast((0.1, 0.1)),
    ]


def run_naive(paths: list[str], layers: list) -> float:
    """Study-style loop: PIL per image in Python, Keras layers eagerly per batch. Images/s."""
    layers_warm = np.zeros((2, SIZE, SIZE, 3), np.float32)
    for layer in layers:  # build outside the timing
        layers_warm = np.asarray(layer(layers_warm, training=True))
    start = time.perf_counter()
    n = 0
    for i in range(0, len(paths), BATCH):
        images = []
        for p in paths[i : i + BATCH]:
            with Image.open(p) as im:
                im = ImageOps.exif_transpose(im).convert("RGB").resize((SIZE, SIZE))
                images.append(np.asarray(im))
        x = np.stack(images).astype(np.float32)
        for layer in layers:
            x = layer(x, training=True)
        _ = np.asarray(x)
        n += len(images)
    return n / (time.perf_counter() - start)


def run_pipeline(
    samples: list, root: Path, augment: object, cache: str | None = None
) -> tuple[float, float]:
    """tlkit.data.to_dataset in steady state: images/s over one epoch's worth of images
    after four warm-up batches, read from the repeated dataset (as training reads it,
    shuffled); and the seconds to the first batch of a fresh iterator. With a cache,
    the first epoch (which fills it) is not timed."""
    from tlkit.data import to_dataset

    ds = to_dataset(
        samples, SIZE, BATCH, augment=augment, shuffle=True, seed=0, root=root, cache=cache
    )
    it = iter(ds.repeat())
    start = time.perf_counter()
    next(it)
    first = time.perf_counter() - start
    skip = 4 + (-(-len(samples) // BATCH) if cache else 0)
    for _ in range(skip):  # let the autotuner and the buffers settle (and fill the cache)
        next(it)
    start = time.perf_counter()
    n = 0
    while n < len(samples):
        n += int(next(it)[1].shape[0])
    return n / (time.perf_counter() - start), first


def run_training_step(steps: int) -> float:
    """Frozen MobileNetV2 (random weights) + Dense head, one train step per batch. Images/s."""
    import keras

    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3), pooling="avg"
    )
    base.trainable = False
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1),
            base,
            keras.layers.Dense(NUM_CLASSES),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, BATCH)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * BATCH / (time.perf_counter() - start)


# -- memory --------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_child(root: Path, names: list[str], count: int) -> None:
    """Child process: stream ``count`` images (names repeated), printing the peak RSS
    once the dataset is built and after every quarter of the stream."""
    from tlkit.augment import AugmentationPipeline
    from tlkit.data import to_dataset

    repeated = [names[i % len(names)] for i in range(count)]
    aug = AugmentationPipeline.preset("standard")
    ds = to_dataset(
        samples_for(repeated), SIZE, BATCH, augment=aug, shuffle=True, seed=0, root=root
    )
    print(f"RSS 0 {peak_rss_mib():.1f}", flush=True)
    n, mark = 0, count // 4
    start = time.perf_counter()
    for _, y in ds:
        n += int(y.shape[0])
        if n >= mark:
            print(f"RSS {n} {peak_rss_mib():.1f}", flush=True)
            mark += count // 4
    print(f"RATE {n / (time.perf_counter() - start):.1f}", flush=True)


def measure_rss(root: Path, count: int) -> tuple[list[tuple[int, float]], float]:
    """Peak RSS (MiB) after 0 (built), 1/4, ... of ``count`` images, and images/s."""
    cmd = [sys.executable, __file__, "--rss-child", str(count), "--data", str(root)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    marks = [(int(x.split()[1]), float(x.split()[2])) for x in out if x.startswith("RSS ")]
    rate = float(next(x for x in out if x.startswith("RATE ")).split()[1])
    return marks, rate


# -- main ----------------------------------------------------------------------------------


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a quick check)")
    parser.add_argument("--workdir", help="folder for the generated images (default: temp)")
    parser.add_argument(
        "--parts", default="abcd", help="which measurements to run, e.g. 'ad' (default: abcd)"
    )
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_child:
        root = Path(args.data)
        rss_child(root, sorted(os.listdir(root)), args.rss_child)
        return

    parts = set(args.parts)
    if not parts or not parts <= set("abcd"):
        parser.error(f"--parts takes letters from 'abcd', got {args.parts!r}")
    n_small, n_big = (400, 40) if args.quick else (2000, 200)
    rss_counts = (1000, 4000) if args.quick else (5000, 20000)
    steps = 4 if args.quick else 10
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tlkit-bench-"))
    print(f"cores: {os.cpu_count()}, load average at start: {load()}")
    print(f"data: {work}")

    t = time.perf_counter()
    small = generate(work / "small", n_small, 500, 375, seed=0) if parts & set("acd") else []
    big = generate(work / "big", n_big, 4000, 3000, seed=1) if "b" in parts else []
    print(f"generated {len(small)} 500x375 and {len(big)} 4000x3000 JPEGs in "
          f"{time.perf_counter() - t:.0f} s")  # fmt: skip

    import tensorflow as tf

    from tlkit.augment import AugmentationPipeline

    tf.get_logger().setLevel("ERROR")
    standard = AugmentationPipeline.preset("standard", seed=0)
    bilinear = AugmentationPipeline.preset("standard", seed=0, interpolation="bilinear")
    results: dict[str, float] = {}
    summary: list[str] = []

    def show(label: str, rate: float) -> None:
        print(f"  {label:58s} {rate:8.1f} images/s", flush=True)

    for name, folder, names, reps in (
        ("a", work / "small", small, 3),
        ("b", work / "big", big, 1),
    ):
        if name not in parts and not (name == "a" and "c" in parts):
            continue
        paths = [str(folder / x) for x in names]
        samples = samples_for(names)
        what = "500x375" if name == "a" else "4000x3000"
        print(f"({name}) {len(names)} {what} JPEGs -> {SIZE}x{SIZE}, batch {BATCH}")
        naive_rates, ours_rates = [], []
        for _ in range(reps):  # alternate, so that load from elsewhere hits both
            naive_rates.append(run_naive(paths, naive_layers()))
            show("naive: PIL + eager Keras layers (bilinear)", naive_rates[-1])
            rate, first = run_pipeline(samples, folder, standard)
            ours_rates.append(rate)
            show(f'to_dataset, "standard" (nearest warps; 1st batch {first:.2f} s)', rate)
        results[f"{name}_naive"] = float(np.median(naive_rates))
        results[f"{name}_ours"] = float(np.median(ours_rates))
        results[f"{name}_bilinear"], _ = run_pipeline(samples, folder, bilinear)
        show('to_dataset, "standard" with bilinear warps', results[f"{name}_bilinear"])
        results[f"{name}_noaug"], _ = run_pipeline(samples, folder, None)
        show("to_dataset, no augmentation (decode + resize)", results[f"{name}_noaug"])
        if name == "b":
            results["b_cached"], _ = run_pipeline(samples, folder, standard, cache="memory")
            show('to_dataset, "standard", cache="memory", later epochs', results["b_cached"])
        ratio = results[f"{name}_ours"] / results[f"{name}_naive"]
        target = "2x; medians of 3 runs" if name == "a" else "5x"
        summary.append(f"({name}) {what}: to_dataset / naive = {ratio:5.2f}x  (target >= {target})")

    if "c" in parts:
        print(f"(c) frozen MobileNetV2 + Dense head, train step, {SIZE}x{SIZE}, batch {BATCH}")
        results["train"] = run_training_step(steps)
        show("training step", results["train"])
        line = f"(c) pipeline / training step: {results['a_ours'] / results['train']:5.2f}x on (a)"
        if "b_ours" in results:
            line += (
                f"; on (b) {results['b_ours'] / results['train']:4.2f}x, "
                f"{results['b_cached'] / results['train']:4.2f}x cached in memory"
            )
        summary.append(line + "  (target >= 2x)")

    if "d" in parts:
        print(
            "(d) peak RSS (VmHWM) of a fresh process streaming N images (cache off, standard aug)"
        )
        ends = []
        for count in rss_counts:
            marks, rate = measure_rss(work / "small", count)
            ends.append(marks[-1][1])
            trail = ", ".join(f"{m:.0f} after {k}" for k, m in marks[1:])
            print(f"  N={count:6d}: {marks[0][1]:.0f} MiB once built; {trail}; {rate:.0f} images/s")
        quarter, last = marks[1], marks[-1]  # within the longest stream
        summary.append(
            f"(d) peak RSS {ends[0]:.0f} MiB streaming {rss_counts[0]} images, {ends[1]:.0f} MiB "
            f"streaming {rss_counts[1]}; within one {rss_counts[1]}-image stream: "
            f"{quarter[1]:.0f} MiB after {quarter[0]}, {last[1]:.0f} MiB after {last[0]} "
            f"({last[1] - quarter[1]:+.0f} MiB)"
        )

    print(f"load average at end: {load()}")
    print("summary")
    for line in summary:
        print(f"  {line}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
