"""A five-minute tour of tlkit's API on a generated dataset (the study is mobilenet_vs_cnn.py).

Usage::

    python examples/quickstart.py                 # a generated, imbalanced 3-class dataset
    python examples/quickstart.py --data photos/  # your own folder-per-class photos

Each step is one tlkit call: split, fine-tune a pretrained backbone with a
layer-freezing schedule, train a CNN from scratch, compare them honestly.
The comparison takes any :class:`tlkit.protocols.TrainedClassifier` (a
``model``, ``class_names``, ``history``, ``train_time_s`` and ``tflite_path``):
a FineTuner is one, and so can be the result of your own training code.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tlkit import DatasetSplitter, FineTuner, ModelComparator, Split, schedules
from tlkit.datasets import make_synthetic_dataset
from tlkit.protocols import TrainedClassifier


def compare(split: Split, runs: Mapping[str, TrainedClassifier], out: Path) -> None:
    """The honest comparison: warnings first, baseline row, intervals, McNemar, cost."""
    comparator = ModelComparator(split.test, baseline_labels=split.train.labels)
    for name, run in runs.items():
        comparator.add(name, run)
    report = comparator.run()
    print(report.to_markdown())
    report.save(out)
    print(f"\nreport: {out / 'report.html'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder, one sub-folder per class")
    parser.add_argument("--out", type=Path, help="where to write the report and model")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="tlkit-quickstart-"))

    # 1. A split you can trust: stratified, seeded, leak-free, saved as a manifest.
    root = args.data or make_synthetic_dataset(
        work / "photos", {"healthy": 120, "rust": 50, "scab": 30}, image_size=96, seed=0
    )
    split = DatasetSplitter(val=0.15, test=0.15, seed=42).split(root)
    print(split.summary())
    split.save(work / "split.json")

    # 2 + 3. A pretrained backbone (offline ImageNet weights) fine-tuned in two phases:
    # the head on cached features, then the top layer groups with augmentation.
    tuner = FineTuner(
        "efficientnet_lite0",
        class_names=split.class_names,
        image_size=128,
        schedule=schedules.FreezeThenUnfreeze(head_epochs=10, finetune_epochs=2, unfreeze=2),
        augment="light",
        class_weight="sqrt",
        seed=42,
        verbose=2,
    )
    tuner.fit(split.train, split.val)
    tuner.save(work / "efficientnet_lite0.keras")

    # The study's baseline: a small CNN from scratch, through the same API.
    cnn = FineTuner.scratch_cnn(class_names=split.class_names, image_size=128, epochs=8, seed=42)
    cnn.fit(split.train, split.val)

    # 4. Both are TrainedClassifiers: compare them honestly.
    compare(split, {"efficientnet_lite0": tuner, "cnn_from_scratch": cnn}, work / "report")


if __name__ == "__main__":
    main()
