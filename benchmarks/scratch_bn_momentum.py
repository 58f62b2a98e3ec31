"""The CNN from scratch on small data: batch-norm momentum 0.99 (Keras's default) vs 0.9 (tlkit's).

Trains ``FineTuner.scratch_cnn`` (128 px, 20 epochs, light augmentation,
square-root class weights, seed 0) with the given momentum set on every
batch-normalisation layer, and prints one JSON line: accuracy, balanced accuracy,
macro-F1 on the test images, the classes it never predicts, the majority
baseline's accuracy, and the training seconds.

Data: ``hym`` is the ants-and-bees photos in the PyTorch tutorial's folders
(``../shared/data/hymenoptera``: 15% of train/ validates, val/ is the test set);
``elpv`` is a seeded sample of 300 ELPV images split 60/15/25.

Usage::

    python benchmarks/scratch_bn_momentum.py elpv 0.99
    python benchmarks/scratch_bn_momentum.py elpv 0.9
    python benchmarks/scratch_bn_momentum.py hym 0.99 --data PATH/hymenoptera
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=("hym", "elpv"))
    p.add_argument("momentum", type=float)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hymenoptera folder")
    args = p.parse_args()

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
    backbone = get_backbone("scratch_cnn", weights=None, image_size=128)
    for layer in backbone.model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = args.momentum
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
                "momentum": args.momentum,
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


if __name__ == "__main__":
    main()
