"""Which validation metric should pick the epoch a FineTuner keeps? Measured on ELPV.

Usage::

    python benchmarks/elpv_selection.py                      # the study's default recipe, ~25 min
    python benchmarks/elpv_selection.py --head 10 --finetune 4 --image-size 128   # quicker

Splits ELPV as ``examples/mobilenet_vs_cnn.py`` does (70/15/15, seed 42) and fits the
example's default recipe (EfficientNet-Lite0, FreezeThenUnfreeze, light augmentation,
``class_weight="sqrt"``). After every epoch a callback also scores the TEST set. This is
an analysis, not a way to train: the kept model is still chosen on validation data only.
It prints, for each candidate selection metric (``val_balanced_accuracy``, ``val_macro_f1``,
``val_loss``, ``val_accuracy``, and "last epoch"), the epoch that metric would keep over
the whole schedule and that epoch's test accuracy, balanced accuracy and macro-F1.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--head", type=int, default=30)
    p.add_argument("--finetune", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--monitor-window", type=int, default=5)
    p.add_argument("--out", default=None, help="write the per-epoch table as JSON here")
    args = p.parse_args()

    import keras
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from tlkit import AugmentationPipeline, DatasetSplitter, FineTuner, schedules
    from tlkit.datasets import elpv_samples

    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=args.seed, progress=False).split_samples(
        pairs, class_names=names
    )
    size = args.image_size
    test_x = np.concatenate(
        [x for x, _ in split.test.to_dataset(size, batch_size=64).as_numpy_iterator()]
    )
    test_y = np.asarray(split.test.labels)

    tuner = FineTuner(
        args.backbone,
        class_names=split.class_names,
        image_size=size,
        schedule=schedules.FreezeThenUnfreeze(
            args.head, args.finetune, unfreeze="all", lr_factor=0.05, lr_decay=0.8, warmup=1.0
        ),
        augment=AugmentationPipeline.preset("light", seed=args.seed),
        class_weight="sqrt",
        learning_rate=3e-3,
        seed=args.seed,
        monitor_window=args.monitor_window,
        verbose=0,
    )
    tuner.build()
    scores: list[dict[str, float]] = []

    class TestScore(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pred = tuner.model.predict(test_x, batch_size=64, verbose=0).argmax(1)
            scores.append(
                {
                    "accuracy": accuracy_score(test_y, pred),
                    "balanced_accuracy": balanced_accuracy_score(test_y, pred),
                    "macro_f1": f1_score(test_y, pred, average="macro"),
                }
            )

    t0 = time.perf_counter()
    history = tuner.fit(split.train, split.val, callbacks=[TestScore()])
    minutes = (time.perf_counter() - t0) / 60
    val = {k: list(v) for k, v in history.history.items() if k.startswith("val_")}
    n = len(scores)
    rows = [
        {"epoch": i + 1, "phase": history.phases[i], **{k: val[k][i] for k in val}, **scores[i]}
        for i in range(n)
    ]
    print(f"ELPV, {args.backbone} at {size} px, {n} epochs in {minutes:.1f} min")
    print("epoch phase        val_loss val_acc val_bal val_f1 | test_acc test_bal test_f1")
    for r in rows:
        print(
            f"{r['epoch']:5d} {r['phase']:12s} {r['val_loss']:8.3f} {r['val_accuracy']:7.3f} "
            f"{r['val_balanced_accuracy']:7.3f} {r['val_macro_f1']:6.3f} | {r['accuracy']:8.3f} "
            f"{r['balanced_accuracy']:8.3f} {r['macro_f1']:7.3f}"
        )
    picks = {
        "val_balanced_accuracy": int(np.nanargmax(val["val_balanced_accuracy"])),
        "val_macro_f1": int(np.nanargmax(val["val_macro_f1"])),
        "val_accuracy": int(np.nanargmax(val["val_accuracy"])),
        "val_loss": int(np.nanargmin(val["val_loss"])),
        "last epoch": n - 1,
    }
    print("\nselection metric        epoch  test accuracy  balanced  macro-F1")
    for name, i in picks.items():
        s = scores[i]
        print(
            f"{name:22s} {i + 1:6d} {s['accuracy']:14.3f} {s['balanced_accuracy']:9.3f} "
            f"{s['macro_f1']:9.3f}"
        )
    kept = tuner.model.predict(test_x, batch_size=64, verbose=0).argmax(1)
    print(
        f"kept by FineTuner ({tuner.monitor}, mean of {tuner.monitor_window} epochs): epoch "
        f"{tuner.best_epoch + 1}, test {accuracy_score(test_y, kept):.3f} "
        f"{balanced_accuracy_score(test_y, kept):.3f} {f1_score(test_y, kept, average='macro'):.3f}"
    )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "rows": rows, "picks": picks}, f, indent=1)


if __name__ == "__main__":
    main()
