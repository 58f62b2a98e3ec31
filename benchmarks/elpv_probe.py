"""The floor a fine-tuned model must beat: logistic regression on frozen backbone features.

Usage::

    python benchmarks/elpv_probe.py                 # EfficientNet-Lite0, 224 px, about a minute
    python benchmarks/elpv_probe.py --image-size 160

Splits ELPV exactly as ``examples/mobilenet_vs_cnn.py`` does (70/15/15, seed 42),
computes the backbone's pooled features once, fits scikit-learn's
``LogisticRegression`` on the training features only, and prints test accuracy,
balanced accuracy and macro-F1 next to the majority-class baseline. A
``FineTuner`` whose frozen phase does not reach these figures has a recipe bug.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from tlkit import DatasetSplitter
    from tlkit.backbones import get_backbone
    from tlkit.datasets import elpv_samples

    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=args.seed, progress=False).split_samples(
        pairs, class_names=names
    )
    model = get_backbone(args.backbone, image_size=args.image_size).model
    t0 = time.perf_counter()
    feats = {}
    for part in (split.train, split.test):
        ds = part.to_dataset(args.image_size, batch_size=64).map(lambda x, y: x)
        feats[part.name] = np.asarray(model.predict(ds, verbose=0))
    seconds = time.perf_counter() - t0
    probe = LogisticRegression(max_iter=5000).fit(feats["train"], split.train.labels)
    y, pred = split.test.labels, probe.predict(feats["test"])
    majority = np.bincount(split.train.labels).argmax()
    print(
        f"ELPV test ({len(y)} images), {args.backbone} at {args.image_size} px, features in "
        f"{seconds:.0f} s"
    )
    for name, p_ in (
        ("logistic regression probe", pred),
        ("majority class", np.full_like(y, majority)),
    ):
        print(
            f"{name:26s} accuracy {accuracy_score(y, p_):.3f}  balanced accuracy "
            f"{balanced_accuracy_score(y, p_):.3f}  macro-F1 "
            f"{f1_score(y, p_, average='macro', zero_division=0):.3f}"
        )


if __name__ == "__main__":
    main()
