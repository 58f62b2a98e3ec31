"""The head started from a linear probe (LP-FT's first step) against a head started at random.

Kumar et al. (2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution") fit a linear probe on the frozen features first and start
fine-tuning from it. This script measures the first half on the study's head phase:
EfficientNet-Lite0 (224 px) frozen, the study's head settings (flip views,
square-root class weights, Adam at 3e-3, ``monitor_window`` 5), and two starts for
the same ``Frozen(EPOCHS)`` phase:

``random``
    the head as FineTuner draws it (what the study does);
``probe``
    the head's standardising layer and classifier set from a logistic regression
    on the training images' features (identity view; standardised, balanced class
    weights, strength C chosen on validation balanced accuracy among 0.001, 0.01
    and 0.1: ``tlkit.finetune.choose_pooling``'s probe), then trained the same way.

It also scores the probe itself (the ``probe`` head before any epoch). One JSON line
per start: validation and test accuracy / balanced accuracy / macro-F1 / expected
calibration error, the kept epochs, the seconds. Choose on validation; test is for the record.

Usage::

    python benchmarks/probe_init.py elpv --pooling blocks
    python benchmarks/probe_init.py hym --pooling avg --epochs 30
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import default_recipe  # a sibling script: a script's folder is on its path
import numpy as np


def scores(tuner, part) -> list[float]:
    """Accuracy, balanced accuracy, macro-F1 and the expected calibration error (15 bins)."""
    from tlkit.compare import expected_calibration_error

    m = tuner.evaluate(part)
    p = tuner.predict(part).probabilities
    ece = expected_calibration_error(np.asarray(part.labels), p)
    return [round(m[k], 4) for k in ("accuracy", "balanced_accuracy", "macro_f1")] + [
        round(float(ece), 4)
    ]


def features(tuner, part) -> tuple[np.ndarray, np.ndarray]:
    ds = part.to_dataset(tuner.image_size, batch_size=32, shuffle=False)
    xs, ys = [], []
    for x, y in ds.as_numpy_iterator():
        xs.append(np.asarray(tuner.backbone.model.predict_on_batch(x), np.float32))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def fit_probe(xt, yt, xv, yv, class_weight="balanced"):
    """The best-on-validation standardised, class-weighted logistic regression and its scaler."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    from tlkit.finetune._probe import C_GRID  # the strengths the pooling choice's probe tries

    scaler = StandardScaler().fit(xt)
    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, class_weight=class_weight, max_iter=1000, tol=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(scaler.transform(xt), yt)
        score = float(balanced_accuracy_score(yv, clf.predict(scaler.transform(xv))))
        if best is None or score > best[0]:
            best = (score, c, clf)
    return scaler, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=default_recipe.DATASETS)
    p.add_argument("--pooling", default="blocks", choices=("avg", "blocks"))
    p.add_argument("--epochs", type=int, default=48, help="head epochs (the study ran 48)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--learning-rate", type=float, default=3e-3, help="the head's (the study's 3e-3)"
    )
    p.add_argument("--starts", nargs="+", default=["random", "probe"], choices=("random", "probe"))
    p.add_argument(
        "--probe-weights", default="balanced", choices=("balanced", "tuner"),
        help="the probe's class weights: balanced (the pooling choice's) or the head's own (square root)",
    )  # fmt: skip
    p.add_argument("--data", type=Path, default=default_recipe.DEFAULT_DATA)
    args = p.parse_args()

    from tlkit import FineTuner, schedules
    from tlkit.augment import Views
    from tlkit.data import class_weights
    from tlkit.finetune._probe import LinearProbe, start_head

    train, val, test = default_recipe.load(args.dataset, args.data, Path(tempfile.mkdtemp()))

    def tuner() -> FineTuner:
        t = FineTuner(
            "efficientnet_lite0", class_names=train.class_names, image_size=224,
            pooling=args.pooling, schedule=schedules.Frozen(args.epochs),
            augment=Views("flip", seed=args.seed), class_weight="sqrt", learning_rate=args.learning_rate,
            seed=args.seed, verbose=0,
        )  # fmt: skip
        t.build()
        return t

    for start in args.starts:
        t0 = time.perf_counter()
        t = tuner()
        row: dict = {"dataset": args.dataset, "pooling": args.pooling, "start": start,
                     "learning_rate": args.learning_rate, "seed": args.seed,
                     "probe_weights": args.probe_weights}  # fmt: skip
        if start == "probe":
            xt, yt = features(t, train)
            xv, yv = features(t, val)
            weights = (
                "balanced"
                if args.probe_weights == "balanced"
                else class_weights(train, t.class_weight)
            )
            scaler, (score, c, clf) = fit_probe(xt, yt, xv, yv, weights)
            probe = LinearProbe.from_sklearn(scaler, clf, score=score)
            start_head(t._head_layers, probe)  # what head_start="probe" does
            row["probe"] = {"C": c, "val": scores(t, val), "test": scores(t, test)}
            row["probe"]["sklearn_val_balanced"] = round(score, 4)
        t.fit(train, val)
        row.update(
            val=scores(t, val), test=scores(t, test), kept_epochs=list(t.kept_epochs),
            seconds=round(time.perf_counter() - t0, 1),
        )  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
