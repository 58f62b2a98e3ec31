"""One recipe on the study's ELPV split: the kept model's validation figures, then test, and time.

The split is the study example's (``examples/mobilenet_vs_cnn.py``: 70/15/15,
stratified, seed 42). Recipes are compared on validation; the test figures are
printed for the record, not to choose by.

Usage::

    python benchmarks/elpv_recipe.py                                   # the default schedule
    python benchmarks/elpv_recipe.py --unfreeze 2 --finetune-epochs 15 --augment views:dihedral
    python benchmarks/elpv_recipe.py --scratch --epochs 20              # the CNN from scratch

Prints one JSON line: the arguments, training seconds, and loss / accuracy /
balanced accuracy / macro-F1 on validation and on test.
"""

from __future__ import annotations

import argparse
import json
import time

from _args import augment_arg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--head-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=8)
    p.add_argument("--unfreeze", default="all", help="groups to unfreeze, or 'all'")
    p.add_argument("--lr-factor", type=float, default=0.05)
    p.add_argument("--augment", default="light", help="a preset, none, or views:SET")
    p.add_argument("--time-budget", default=None, help="e.g. 4min")
    p.add_argument("--scratch", action="store_true", help="the CNN from scratch instead")
    p.add_argument("--epochs", type=int, default=20, help="epochs of the CNN from scratch")
    p.add_argument("--stem-stride", type=int, default=2, help="of the CNN from scratch")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    from tlkit import DatasetSplitter, FineTuner, schedules
    from tlkit.datasets import elpv_samples

    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=args.seed, progress=False).split_samples(
        pairs, class_names=names
    )
    augment = augment_arg(args.augment, args.seed)
    common = {
        "class_names": split.class_names,
        "image_size": args.image_size,
        "augment": augment,
        "class_weight": "sqrt",
        "seed": args.seed,
        "verbose": 2,
    }
    if args.scratch:
        tuner = FineTuner.scratch_cnn(epochs=args.epochs, stem_stride=args.stem_stride, **common)
    else:
        unfreeze = args.unfreeze if args.unfreeze == "all" else int(args.unfreeze)
        schedule = schedules.FreezeThenUnfreeze(
            head_epochs=args.head_epochs,
            finetune_epochs=args.finetune_epochs,
            unfreeze=unfreeze,
            lr_factor=args.lr_factor,
            lr_decay=0.8,
            warmup=1.0,
        )
        tuner = FineTuner(args.backbone, schedule=schedule, learning_rate=3e-3, **common)
    t0 = time.perf_counter()
    tuner.fit(split.train, split.val, time_budget=args.time_budget)
    seconds = time.perf_counter() - t0

    def rounded(metrics: dict) -> dict:
        return {k: round(float(v), 3) for k, v in metrics.items()}

    print(
        json.dumps(
            {
                "args": vars(args),
                "train_s": round(seconds),
                "val": rounded(tuner.evaluate(split.val)),
                "test": rounded(tuner.evaluate(split.test)),
            }
        )
    )


if __name__ == "__main__":
    main()
