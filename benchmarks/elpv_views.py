"""Does a frozen probe gain from the 8 symmetries of the square? Every block's features, per view.

Usage::

    python benchmarks/elpv_views.py                  # elpv.py's 75/25 split, about 15 minutes
    python benchmarks/elpv_views.py --split study    # the study's 70/15/15 split (seed 42)

Computes EfficientNet-Lite0's pooled features from every block (as
``benchmarks/elpv_probe.py --blocks``: the expansion activations of each block and
the last layer, 10,208 numbers at 224 px) for each image under each of the 8
dihedral views (``tlkit.augment.Views("dihedral")``: rotations by 0/90/180/270
degrees, with and without a mirror; a solar cell has no "up"), then fits
scikit-learn's ``LogisticRegression`` on the standardised training features three
ways, its ``C`` chosen on validation accuracy each time:

- ``identity``: the images as they are (``elpv_probe.py --blocks``' probe);
- ``mean of views``: each image's features averaged over its 8 views (features
  that do not change when the cell is turned or mirrored);
- ``every view + TTA``: every view of every training image is a training row,
  and a prediction averages the probabilities of the 8 views (test-time
  augmentation).

Prints validation and test accuracy / balanced accuracy / macro-F1 of each, the
seconds of the feature pass and of each fit. The test set is scored once per
choice; nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from elpv_probe import BLOCK_TAPS, _scores

#: Regularisation strengths tried, each chosen on validation accuracy.
CS = (0.0003, 0.001, 0.003, 0.01)


def _fit(
    train: np.ndarray, y: np.ndarray, features: dict, labels: dict, how: str
) -> tuple[dict, str]:
    """Predictions of each part for the ``C`` of best validation accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(train)
    best: tuple[float, float, dict] | None = None
    for c in CS:
        clf = LogisticRegression(C=c, max_iter=3000).fit(scale.transform(train), y)
        pred = {k: _predict(clf, scale, features[k], how) for k in ("val", "test")}
        val = accuracy_score(labels["val"], pred["val"])
        if best is None or val > best[0]:
            best = (val, c, pred)
    assert best is not None
    return best[2], f"C={best[1]}"


def _predict(clf, scale, features: np.ndarray, how: str) -> np.ndarray:
    """Classes of one part: ``features`` has one slice per view (views, images, features)."""
    if how == "identity":
        return clf.predict(scale.transform(features[0]))
    if how == "mean of views":
        return clf.predict(scale.transform(features.mean(axis=0)))
    probs = [clf.predict_proba(scale.transform(f)) for f in features]
    return clf.classes_[np.mean(probs, axis=0).argmax(axis=1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--split",
        choices=["benchmark", "study"],
        default="benchmark",
        help="benchmarks/elpv.py's 75/25 split with 10%% validation (seed 0), or the study's "
        "70/15/15 (seed 42)",
    )
    p.add_argument("--image-size", type=int, default=224)
    args = p.parse_args()

    import keras

    from tlkit import DatasetSplitter
    from tlkit.augment import Views
    from tlkit.backbones import get_backbone
    from tlkit.datasets import elpv_samples

    val, test, seed = (0.10, 0.25, 0) if args.split == "benchmark" else (0.15, 0.15, 42)
    pairs, names = elpv_samples()
    split = DatasetSplitter(val=val, test=test, seed=seed, progress=False)
    split = split.split_samples(pairs, class_names=names)
    model = get_backbone("efficientnet_lite0", image_size=args.image_size).model
    pooled = [
        keras.layers.GlobalAveragePooling2D()(layer.output)
        for layer in model.layers
        if BLOCK_TAPS.search(layer.name)
    ]
    model = keras.Model(model.inputs, keras.layers.Concatenate()([model.output, *pooled]))
    views = Views("dihedral")
    features, labels = {}, {}
    t0 = time.perf_counter()
    for key in ("train", "val", "test"):
        part = getattr(split, key)
        ds = part.to_dataset(args.image_size, batch_size=64).map(lambda x, y: x)
        images = np.concatenate(list(ds.as_numpy_iterator()))
        features[key] = np.stack(
            [
                model.predict(np.asarray(views.view(images, i)), batch_size=32, verbose=0).astype(
                    np.float32
                )
                for i in range(len(views))  # one view in memory at a time (300 px: 1.8 GB each)
            ]
        )
        labels[key] = np.asarray(part.labels)
    print(
        f"ELPV, {args.split} split: {len(split.train)} train / {len(split.val)} val / "
        f"{len(split.test)} test images, EfficientNet-Lite0 every block at {args.image_size} px, "
        f"{len(views)} views: features in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    y = labels["train"]
    n_views = len(views)
    for how, train, rows_y in (
        ("identity", features["train"][0], y),
        ("mean of views", features["train"].mean(axis=0), y),
        ("every view + TTA", features["train"].reshape(-1, features["train"].shape[-1]),
         np.tile(y, n_views)),
    ):  # fmt: skip
        t1 = time.perf_counter()
        pred, chosen = _fit(train, rows_y, features, labels, how)
        print(
            f"{how:17s} val {_scores(labels['val'], pred['val'])}\n"
            f"{'':17s} test {_scores(labels['test'], pred['test'])}  "
            f"({chosen}, {len(CS)} fits {time.perf_counter() - t1:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
