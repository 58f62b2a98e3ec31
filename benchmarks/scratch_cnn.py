"""The CNN from scratch on small data: batch-norm momentum and stem stride, measured.

Trains ``FineTuner.scratch_cnn`` (128 px, 20 epochs, light augmentation,
square-root class weights, seed 0) with the given batch-norm momentum on every
batch-normalisation layer (tlkit's 0.9 or Keras's default 0.99) and the given
stride of the first convolution (tlkit's 2, or 1), and prints one JSON line:
accuracy, balanced accuracy, macro-F1 on the test images, the classes it never
predicts, the majority baseline's accuracy, and the training seconds.

``--speed`` trains nothing: it times training steps of 32 random images at
``--image-size`` with stem stride 1 and 2 and prints the ratio.

Data: ``hym`` is the ants-and-bees photos in the PyTorch tutorial's folders
(``../shared/data/hymenoptera``: 15% of train/ validates, val/ is the test set);
``elpv`` is a seeded sample of 300 ELPV images split 60/15/25.

Usage::

    python benchmarks/scratch_cnn.py elpv --bn-momentum 0.99 --stem-stride 1
    python benchmarks/scratch_cnn.py elpv --bn-momentum 0.9 --stem-stride 1
    python benchmarks/scratch_cnn.py elpv                      # tlkit's defaults: 0.9, stride 2
    python benchmarks/scratch_cnn.py hym --data PATH/hymenoptera
    python benchmarks/scratch_cnn.py --speed --image-size 160
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", choices=("hym", "elpv"))
    p.add_argument("--bn-momentum", type=float, default=0.9)
    p.add_argument("--stem-stride", type=int, default=2)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hymenoptera folder")
    p.add_argument("--speed", action="store_true", help="time training steps, stride 1 vs 2")
    args = p.parse_args()
    if args.speed:
        speed(args.image_size)
        return
    if args.dataset is None:
        p.error("give a dataset (hym or elpv), or --speed")

    import keras
    import numpy as np

    from tlkit import DatasetSplitter, FineTuner, ModelComparator, schedules
    from tlkit.backbones import get_backbone

    if args.dataset == "hym":
        split = DatasetSplitter(val=0.15, test=0, seed=0, progress=False).split(args.data / "train")
        test = DatasetSplitter(val=0, test=0, seed=0, progress=False).split(args.data / "val")
        test = test.train
    else:
        from tlkit.datasets import elpv_samples

        pairs, names = elpv_samples()
        pick = np.random.default_rng(0).choice(len(pairs), 300, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
        split = DatasetSplitter(val=0.15, test=0.25, seed=0, progress=False).split_samples(
            pairs, class_names=names
        )
        test = split.test
    keras.utils.set_random_seed(0)  # the backbone's weights are drawn when it is built
    backbone = get_backbone(
        "scratch_cnn", weights=None, image_size=args.image_size, stem_stride=args.stem_stride
    )
    for layer in backbone.model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = args.bn_momentum
    tuner = FineTuner(
        backbone,
        weights=None,
        class_names=split.class_names,
        schedule=schedules.FullTraining(args.epochs, train_bn=True),
        dropout=0.3,
        augment="light",
        class_weight="sqrt",
        seed=0,
        verbose=0,
    )
    t0 = time.perf_counter()
    tuner.fit(split.train, split.val)
    seconds = time.perf_counter() - t0
    rows = ModelComparator(test, baseline_labels=split.train.labels, seed=0).add("cnn", tuner).run()
    baseline, row = rows.rows[0], rows.rows[-1]
    print(
        json.dumps(
            {
                "data": args.dataset,
                "bn_momentum": args.bn_momentum,
                "stem_stride": args.stem_stride,
                "image_size": args.image_size,
                "epochs": args.epochs,
                "test_images": len(test),
                "accuracy": round(row.metrics["accuracy"], 3),
                "balanced_accuracy": round(row.metrics["balanced_accuracy"], 3),
                "macro_f1": round(row.metrics["macro_f1"], 3),
                "never_predicted": list(row.never_predicted),
                "baseline_accuracy": round(baseline.metrics["accuracy"], 3),
                "train_s": round(seconds),
            }
        )
    )


def speed(size: int, batch: int = 32, steps: int = 8) -> None:
    """Seconds per training step of the scratch CNN, stem stride 1 vs 2 (random pixels)."""
    import keras
    import numpy as np

    from tlkit.backbones import get_backbone

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * steps, size, size, 3)).astype("float32")
    y = rng.integers(0, 4, batch * steps)
    seconds = {}
    for stride in (1, 2):
        keras.utils.set_random_seed(0)
        bb = get_backbone("scratch_cnn", weights=None, image_size=size, stem_stride=stride)
        out = keras.layers.Dense(4, activation="softmax")(bb.model.output)
        model = keras.Model(bb.model.input, out)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x[:batch], y[:batch], batch_size=batch, verbose=0)  # trace
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=2, verbose=0)
        seconds[stride] = (time.perf_counter() - t0) / (2 * steps)
    print(
        json.dumps(
            {
                "image_size": size,
                "batch": batch,
                "s_per_step_stride1": round(seconds[1], 3),
                "s_per_step_stride2": round(seconds[2], 3),
                "ratio": round(seconds[1] / seconds[2], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
