"""Ants vs bees (the PyTorch transfer-learning tutorial's photos): the default recipe on real photos.

398 real photos in the tutorial's own folders: ``train/`` (245) and ``val/`` (153).
The tutorial's ResNet-18 reaches about 0.93-0.95 on ``val/``, fine-tuned or as a
fixed feature extractor. Here ``val/`` is the held-out test set, scored once; 15% of
``train/`` (stratified, seeded) is the validation set that picks the best epoch,
so nothing is tuned on the test photos. The photos come from ImageNet, so an
ImageNet-pretrained backbone may have seen some of them.

Usage::

    python benchmarks/hymenoptera.py                          # default recipe
    python benchmarks/hymenoptera.py --time-budget 5min       # the recipe within a budget
    python benchmarks/hymenoptera.py --finetune-epochs 0      # head only (linear probe)
    python benchmarks/hymenoptera.py --data PATH/hymenoptera  # elsewhere than ../shared/data

Prints accuracy, balanced accuracy and macro-F1 with 95% bootstrap intervals for
the fine-tuned backbone and the majority baseline, the training wall time and the
peak RSS, and writes the split manifests and the comparison report into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

from _args import augment_arg

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train/ and val/")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=None, help="default: the backbone's")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=None,
        help="all-layer epochs after the head (default: the default schedule's; 0: head only)",
    )
    p.add_argument(
        "--augment",
        default=None,
        help="a preset name, or views:SET for finite views (default: FineTuner's, none)",
    )
    p.add_argument("--unfreeze", default=None, help="groups to unfreeze, or 'all' (default's)")
    p.add_argument("--lr-factor", type=float, default=None, help="fine-tuning rate / head rate")
    p.add_argument("--lr-decay", type=float, default=None, help="rate factor per group downwards")
    p.add_argument("--tta", default=None, help="also score with test-time augmentation (views)")
    p.add_argument("--time-budget", default=None, help="e.g. 5min: plan the epochs to fit")
    p.add_argument("--scratch-epochs", type=int, default=0, help="also train the scratch CNN")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmark-hymenoptera"))
    args = p.parse_args()
    for sub in ("train", "val"):
        if not (args.data / sub).is_dir():
            p.error(
                f"{args.data / sub} is not a folder: pass --data, the folder holding train/ and val/"
            )

    from tlkit import DatasetSplitter, FineTuner, ModelComparator, schedules
    from tlkit.finetune import default_schedule

    args.out.mkdir(parents=True, exist_ok=True)
    split = DatasetSplitter(val=0.15, test=0, seed=args.seed, progress=False).split(
        args.data / "train"
    )
    held_out = DatasetSplitter(val=0, test=0, seed=args.seed, progress=False).split(
        args.data / "val"
    )
    split.save(args.out / "train.split.json")
    held_out.save(args.out / "val.split.json")
    test = held_out.train  # the tutorial's val/ folder, whole
    print(split.summary())
    print(f"held-out test (the tutorial's val/): {test.class_counts()}")

    schedule = default_schedule()
    if args.finetune_epochs == 0:
        schedule = schedules.Frozen(schedule.head_epochs)
    elif any(
        v is not None for v in (args.finetune_epochs, args.unfreeze, args.lr_factor, args.lr_decay)
    ):
        config = dict(schedule.get_config()["config"])
        for key in ("lr_factor", "lr_decay"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        if args.finetune_epochs is not None:
            config["finetune_epochs"] = args.finetune_epochs
        if args.unfreeze is not None:
            config["unfreeze"] = args.unfreeze if args.unfreeze == "all" else int(args.unfreeze)
        schedule = schedules.FreezeThenUnfreeze(**config)
    kwargs = {} if args.image_size is None else {"image_size": args.image_size}
    if args.augment is not None:
        kwargs["augment"] = augment_arg(args.augment, args.seed)
    tuner = FineTuner(args.backbone, schedule=schedule, seed=args.seed, verbose=2, **kwargs)
    t0 = time.perf_counter()
    tuner.fit(split.train, split.val, time_budget=args.time_budget)
    seconds = {args.backbone: time.perf_counter() - t0}
    comparator = ModelComparator(test, baseline_labels=split.train.labels, seed=args.seed)
    comparator.add(args.backbone, tuner)
    if args.tta:
        comparator.add(f"{args.backbone} + {args.tta} TTA", tuner, tta=args.tta)
    if args.scratch_epochs:
        extra = {"augment": kwargs["augment"]} if "augment" in kwargs else {}
        cnn = FineTuner.scratch_cnn(epochs=args.scratch_epochs, seed=args.seed, verbose=2, **extra)
        t0 = time.perf_counter()
        cnn.fit(split.train, split.val)
        seconds["cnn_from_scratch"] = time.perf_counter() - t0
        comparator.add("cnn_from_scratch", cnn)
    report = comparator.run()
    report.save(args.out / "report")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nhymenoptera: {len(split.train)} train / {len(split.val)} val photos from train/, "
        f"{len(test)} test photos (val/), seed {args.seed}, {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}; schedule {tuner.schedule!r}; "
        f"peak RSS {rss:.0f} MB"
    )
    print(
        f"{'model':22s} {'accuracy':>22s} {'balanced accuracy':>22s} {'macro-F1':>22s} {'train s':>8s}"
    )
    for r in report.rows:
        cells = []
        for m in ("accuracy", "balanced_accuracy", "macro_f1"):
            ci = r.ci.get(m)
            ci_text = f" [{ci.low:.3f}, {ci.high:.3f}]" if ci is not None else ""
            cells.append(f"{r.metrics[m]:.3f}{ci_text}")
        secs = seconds.get(r.name)
        secs_text = f"{secs:8.0f}" if secs is not None else f"{'-':>8s}"
        print(f"{r.name:22s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>22s} {secs_text}")
    for w in report.warnings:
        print(f"- {w}")


if __name__ == "__main__":
    main()
