"""The probe of ``pooling="auto"``: row-space coordinates against the raw feature columns.

``tlkit.finetune.choose_pooling`` scores every block's pooled features (10,208 for
EfficientNet-Lite0) with a logistic regression fitted on the training rows' span
(``row_space``: as many columns as training images) instead of on the raw columns.
This script computes those features once for ELPV's study split (70/15/15, seed 42,
224 px), then times ``fit_probe`` (row space) against the same three logistic
regressions fitted on the raw standardised columns, in one run, and prints both
times, their ratio and both validation scores (they must agree: the same model).

Usage::

    python benchmarks/pooling_probe.py          # about 2 minutes on 2 cores
"""

from __future__ import annotations

import time
import warnings


def raw_probe(x_train, y_train, x_val, y_val) -> float:
    """``fit_probe``'s score without the row-space step (the reference)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    from tlkit.finetune._probe import C_GRID

    scale = StandardScaler().fit(x_train)
    xt, xv = scale.transform(x_train), scale.transform(x_val)
    best = 0.0
    for c in C_GRID:
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000, tol=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(xt, y_train)
        best = max(best, float(balanced_accuracy_score(y_val, clf.predict(xv))))
    return best


def main() -> None:
    from tlkit import DatasetSplitter
    from tlkit.backbones import get_backbone
    from tlkit.datasets import elpv_samples
    from tlkit.finetune._data import as_data
    from tlkit.finetune._pooling import _features
    from tlkit.finetune._probe import fit_probe

    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=42, progress=False).split_samples(
        pairs, class_names=names
    )
    blocks = get_backbone("efficientnet_lite0", pooling="blocks")
    t0 = time.perf_counter()
    data = {p: as_data(getattr(split, p), p) for p in ("train", "val")}
    x = {p: _features(blocks, d, blocks.image_size, 32) for p, d in data.items()}
    y = {p: d.labels() for p, d in data.items()}
    print(
        f"features: {x['train'].shape} train, {x['val'].shape} val, {time.perf_counter() - t0:.0f} s"
    )
    t0 = time.perf_counter()
    fast = fit_probe(x["train"], y["train"], x["val"], y["val"]).score
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = raw_probe(x["train"], y["train"], x["val"], y["val"])
    slow_s = time.perf_counter() - t0
    print(f"row space:   {fast_s:.1f} s, validation balanced accuracy {fast:.3f}")
    print(f"raw columns: {slow_s:.1f} s, validation balanced accuracy {slow:.3f}")
    print(f"speed-up: {slow_s / fast_s:.1f}x")


if __name__ == "__main__":
    main()
