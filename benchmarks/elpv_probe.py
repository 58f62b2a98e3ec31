"""The floor a fine-tuned model must beat: logistic regression on frozen backbone features.

Usage::

    python benchmarks/elpv_probe.py                 # EfficientNet-Lite0, 224 px, about a minute
    python benchmarks/elpv_probe.py --image-size 160
    python benchmarks/elpv_probe.py --blocks        # + every block's features, about 4 minutes
    python benchmarks/elpv_probe.py --blocks --photos ../shared/data/hymenoptera  # ants and bees

Splits ELPV exactly as ``examples/mobilenet_vs_cnn.py`` does (70/15/15, seed 42),
computes the backbone's pooled features once, fits scikit-learn's
``LogisticRegression`` on the training features only, and prints test accuracy,
balanced accuracy and macro-F1 next to the majority-class baseline. A
``FineTuner`` whose frozen phase does not reach these figures has a recipe bug.

``--blocks`` asks whether the layers below the last one hold better features for
images far from ImageNet's (the idea of Head2Toe, Evci et al. 2022): it also pools
the expansion activations of every inverted-residual block that has one (EfficientNet-Lite,
MobileNetV2), standardises the features, and compares, on the last layer's
features and on all of them, a logistic regression whose ``C`` is chosen on the
validation part with a softmax head trained as ``FineTuner``'s frozen phase trains
one (Adam 3e-3, dropout 0.2, a BatchNormalization without scale in front, the epoch
of best validation balanced accuracy kept out of 60). ``--photos DIR`` runs the same on
a folder holding ``train/`` and ``val/`` (the ants-and-bees photos) split as
``benchmarks/hymenoptera.py`` splits it: 15% of ``train/`` for validation (seeded),
``val/`` as the test set.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

#: Layers whose pooled outputs ``--blocks`` adds: the expansion activations of
#: EfficientNet-Lite (``block3_expand_relu6``) and MobileNetV2 (``block_3_expand_relu``).
BLOCK_TAPS = re.compile(r"block_?\d+_expand_relu6?$")


def _scores(y: np.ndarray, pred: np.ndarray) -> str:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return (
        f"accuracy {accuracy_score(y, pred):.3f}  balanced accuracy "
        f"{balanced_accuracy_score(y, pred):.3f}  macro-F1 "
        f"{f1_score(y, pred, average='macro', zero_division=0):.3f}"
    )


def _logistic(x: dict, y: dict) -> tuple[np.ndarray, str]:
    """Standardised features, C chosen on validation accuracy; test predictions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(x["train"])
    best = None
    for c in (0.0003, 0.001, 0.003, 0.01, 0.03):
        clf = LogisticRegression(C=c, max_iter=3000).fit(scale.transform(x["train"]), y["train"])
        val = accuracy_score(y["val"], clf.predict(scale.transform(x["val"])))
        if best is None or val > best[0]:
            best = (val, c, clf)
    val, c, clf = best
    return clf.predict(scale.transform(x["test"])), f"C={c}, val accuracy {val:.3f}"


def _keras_head(x: dict, y: dict, classes: int, seed: int) -> tuple[np.ndarray, str]:
    """A softmax head trained like FineTuner's frozen phase; the best validation epoch kept."""
    import keras
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x["train"].shape[1],))
    h = keras.layers.BatchNormalization(center=False, scale=False)(inputs)
    h = keras.layers.Dropout(0.2, seed=seed)(h)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    best: tuple[float, int, list] = (-1.0, 0, [])
    for epoch in range(60):
        model.fit(x["train"], y["train"], batch_size=32, epochs=1, verbose=0)
        val = balanced_accuracy_score(y["val"], model.predict(x["val"], verbose=0).argmax(1))
        if val > best[0]:
            best = (val, epoch + 1, model.get_weights())
    model.set_weights(best[2])
    acc = accuracy_score(y["val"], model.predict(x["val"], verbose=0).argmax(1))
    return model.predict(x["test"], verbose=0).argmax(1), (
        f"epoch {best[1]}, val balanced accuracy {best[0]:.3f}, val accuracy {acc:.3f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--seed", type=int, default=None, help="split seed (42 for ELPV, 0 photos)")
    p.add_argument("--photos", default=None, help="a folder with train/ and val/ instead of ELPV")
    p.add_argument(
        "--blocks", action="store_true", help="also every block's pooled features (see above)"
    )
    args = p.parse_args()

    import keras
    from sklearn.linear_model import LogisticRegression

    from tlkit import DatasetSplitter
    from tlkit.backbones import get_backbone
    from tlkit.datasets import elpv_samples

    if args.photos is None:
        args.seed = 42 if args.seed is None else args.seed
        pairs, names = elpv_samples()
        split = DatasetSplitter(val=0.15, test=0.15, seed=args.seed, progress=False)
        split = split.split_samples(pairs, class_names=names)
        test, data = split.test, "ELPV"
    else:
        args.seed = 0 if args.seed is None else args.seed
        split = DatasetSplitter(val=0.15, test=0, seed=args.seed, progress=False)
        split = split.split(f"{args.photos}/train")
        test = DatasetSplitter(val=0, test=0, progress=False).split(f"{args.photos}/val").train
        names, data = list(split.class_names), args.photos
    model = get_backbone(args.backbone, image_size=args.image_size).model
    taps = [layer.output for layer in model.layers if BLOCK_TAPS.search(layer.name)]
    if args.blocks:
        if not taps:
            p.error(f"{args.backbone} has no layers named like {BLOCK_TAPS.pattern}")
        pooled = [keras.layers.GlobalAveragePooling2D()(t) for t in taps]
        model = keras.Model(model.inputs, [model.output, keras.layers.Concatenate()(pooled)])
    parts = {"train": split.train, "val": split.val, "test": test}
    if not args.blocks:
        del parts["val"]
    t0 = time.perf_counter()
    last, blocks = {}, {}
    for key, part in parts.items():
        ds = part.to_dataset(args.image_size, batch_size=32).map(lambda x, y: x)
        out = model.predict(ds, verbose=0)
        last[key], blocks[key] = (out[0], out[1]) if args.blocks else (out, None)
    seconds = time.perf_counter() - t0
    y = {key: part.labels for key, part in parts.items()}
    majority = np.bincount(split.train.labels).argmax()
    print(
        f"{data} test ({len(y['test'])} images), {args.backbone} at {args.image_size} px, "
        f"features in {seconds:.0f} s"
    )
    probe = LogisticRegression(max_iter=5000).fit(last["train"], y["train"])
    print(f"{'logistic regression probe':26s} {_scores(y['test'], probe.predict(last['test']))}")
    print(f"{'majority class':26s} {_scores(y['test'], np.full_like(y['test'], majority))}")
    if not args.blocks:
        return
    every = {k: np.concatenate([last[k], blocks[k]], axis=1) for k in last}
    for label, x in (
        (f"last layer ({last['train'].shape[1]})", last),
        (f"every block ({every['train'].shape[1]})", every),
    ):
        for how, fit in (("logistic", _logistic), ("keras head", _keras_head)):
            t1 = time.perf_counter()
            args_ = (x, y) if fit is _logistic else (x, y, len(names), args.seed)
            pred, chosen = fit(*args_)
            print(
                f"{label:20s} {how:10s} test {_scores(y['test'], pred)}  "
                f"({chosen}; {time.perf_counter() - t1:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
