"""The real-data benchmark: ELPV, a pretrained mobile backbone vs a CNN from scratch vs the baseline.

ELPV (2,624 real solar-cell electroluminescence images, 4 imbalanced classes of
defect probability) split 75/25 stratified and seeded, as in the dataset authors'
paper; 10% of the images are taken out of the 75% for validation (best epochs).
Anchors: the authors' fine-tuned VGG-19 on a GPU reached 88.4% accuracy, their SVM
82.4%; a 2023 lightweight CNN on a CPU 83.5%.

Usage::

    python benchmarks/elpv.py                       # about 25 minutes on 2 CPU cores
    python benchmarks/elpv.py --image-size 224 --finetune-epochs 4
    python benchmarks/elpv.py --no-pretrained --scratch-epochs 150 --scratch-size 160 \
        --augment views:dihedral                    # the scratch CNN alone, about 30 minutes
    python benchmarks/elpv.py --image-size 224 --head-epochs 20 --finetune-epochs 32 --lr 0.03 \
        --lr-factor 0.033 --lr-decay 0.9 --augment views:dihedral --scratch-epochs 0 \
        --optimizer sgd                             # SGD with momentum, about 35 minutes
    python benchmarks/elpv.py --image-size 224 --head-epochs 20 --finetune-epochs 24 \
        --lr-factor 0.033 --lr-decay 0.9 --augment views:dihedral --scratch-epochs 0 \
        --l2sp 1e-3                                 # L2-SP toward the pretrained weights
    python benchmarks/elpv.py --image-size 224 --head-epochs 20 --finetune-epochs 24 \
        --lr-factor 0.033 --lr-decay 0.9 --scratch-epochs 0 --mixup 0.2  # flips + MixUp

Prints accuracy, balanced accuracy and macro-F1 with 95% bootstrap intervals,
per-class F1, training wall time and peak RSS per model; writes the split manifest
and the comparison report into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

from _args import augment_arg


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pull_to_pretrained(tuner, beta: float):
    """A Keras callback: decoupled L2-SP, ``w -= beta * (w - w_pretrained)`` after every step.

    The anchors are the backbone's weights when training first begins (the head phase
    leaves them as loaded); each phase pulls the weights that phase trains.
    """
    import keras

    class PullToPretrained(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.anchors: dict[int, object] | None = None
            self.active: list[tuple[object, object]] = []

        def on_train_begin(self, logs=None):
            weights = [w for group in tuner.backbone.layer_groups for layer in group
                       for w in layer.weights]  # fmt: skip
            if self.anchors is None:
                self.anchors = {id(w): keras.ops.copy(w.value) for w in weights}
            trained = {id(w) for group in tuner.backbone.layer_groups for layer in group
                       for w in layer.trainable_weights}  # fmt: skip
            self.active = [(w, self.anchors[id(w)]) for w in weights if id(w) in trained]

        def on_train_batch_end(self, batch, logs=None):
            for w, w0 in self.active:
                w.assign(w - beta * (w - w0))

    return PullToPretrained()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--head-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=8)
    p.add_argument("--unfreeze", default="all", help="groups to unfreeze, or 'all'")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--lr-factor", type=float, default=0.05)
    p.add_argument("--lr-decay", type=float, default=0.8)
    p.add_argument(
        "--augment", default="light", help="a preset name, none, or views:SET (e.g. views:dihedral)"
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="FineTuner's label_smoothing (both models)",
    )
    p.add_argument(
        "--optimizer",
        choices=["adam", "adamw", "sgd", "rmsprop"],
        default="adam",
        help="FineTuner's optimizer for the pretrained model (sgd: momentum 0.9, Nesterov)",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="AdamW with this decoupled weight decay (Keras multiplies it by the rate each step)",
    )
    p.add_argument(
        "--l2sp",
        type=float,
        default=None,
        metavar="BETA",
        help="after every training step pull each trained backbone weight toward its pretrained "
        "value by this fraction of the gap (decoupled L2-SP, Li et al. 2018)",
    )
    p.add_argument(
        "--mixup",
        type=float,
        default=None,
        metavar="ALPHA",
        help="augment with random horizontal and vertical flips, then keras MixUp(alpha=ALPHA), "
        "instead of --augment (random: the head trains on cached unaugmented features, the "
        "phases that train the backbone on augmented images)",
    )
    p.add_argument("--time-budget", default=None, help="e.g. 40min: plan the pretrained epochs")
    p.add_argument(
        "--no-pretrained", action="store_true", help="only the scratch CNN (and the baseline)"
    )
    p.add_argument("--scratch-epochs", type=int, default=20, help="0: no scratch CNN")
    p.add_argument("--scratch-size", type=int, default=128, help="image size of the scratch CNN")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmark-elpv"))
    args = p.parse_args()
    if args.l2sp is not None and not 0 < args.l2sp < 1:
        p.error(f"--l2sp takes a fraction between 0 and 1, got {args.l2sp}")
    if args.weight_decay is not None and args.optimizer not in ("adam", "adamw"):
        p.error("--weight-decay trains with AdamW: leave out --optimizer or give adamw")
    if args.no_pretrained and not args.scratch_epochs:
        p.error("--no-pretrained leaves only the scratch CNN: give --scratch-epochs >= 1")
    if args.mixup is not None and args.mixup <= 0:
        p.error(f"--mixup takes MixUp's alpha, a number > 0, got {args.mixup}")
    if args.mixup is not None and args.augment != p.get_default("augment"):
        p.error("--mixup brings its own augmentation (flips, then MixUp): leave out --augment")

    from tlkit import DatasetSplitter, FineTuner, ModelComparator, schedules
    from tlkit.datasets import elpv_samples

    args.out.mkdir(parents=True, exist_ok=True)
    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.10, test=0.25, seed=args.seed, progress=False).split_samples(
        pairs, class_names=names
    )
    split.save(args.out / "split.json")
    print(split.summary())
    unfreeze = args.unfreeze if args.unfreeze == "all" else int(args.unfreeze)
    augment = augment_arg(args.augment, args.seed)
    if args.mixup is not None:
        import keras

        from tlkit import AugmentationPipeline

        flips = keras.layers.RandomFlip("horizontal_and_vertical")
        augment = AugmentationPipeline([flips, keras.layers.MixUp(args.mixup)], seed=args.seed)
    common = {
        "class_names": split.class_names,
        "image_size": args.image_size,
        "augment": augment,
        "class_weight": "sqrt",
        "label_smoothing": args.label_smoothing,
        "seed": args.seed,
        "verbose": 2,
    }
    rows = {}
    comparator = ModelComparator(split.test, baseline_labels=split.train.labels, seed=args.seed)
    schedule = schedules.FreezeThenUnfreeze(
        args.head_epochs,
        args.finetune_epochs,
        unfreeze=unfreeze,
        lr_factor=args.lr_factor,
        lr_decay=args.lr_decay,
        warmup=1.0,
    )
    optimizer, optimizer_name = args.optimizer, args.optimizer
    if args.weight_decay is not None:
        import keras

        optimizer = keras.optimizers.AdamW(weight_decay=args.weight_decay)  # a template
        optimizer_name = f"adamw, weight decay {args.weight_decay}"
    if not args.no_pretrained:
        t0 = time.perf_counter()
        tuner = FineTuner(
            args.backbone,
            schedule=schedule,
            learning_rate=args.lr,
            optimizer=optimizer,
            **common,
        )
        callbacks = [] if args.l2sp is None else [pull_to_pretrained(tuner, args.l2sp)]
        tuner.fit(split.train, split.val, time_budget=args.time_budget, callbacks=callbacks)
        rows[args.backbone] = (time.perf_counter() - t0, peak_rss_mb())
        comparator.add(args.backbone, tuner)
    if args.scratch_epochs:
        t0 = time.perf_counter()
        cnn = FineTuner.scratch_cnn(
            epochs=args.scratch_epochs, **{**common, "image_size": args.scratch_size}
        )
        cnn.fit(split.train, split.val)
        rows["cnn_from_scratch"] = (time.perf_counter() - t0, peak_rss_mb())
        comparator.add("cnn_from_scratch", cnn)
    report = comparator.run()
    report.save(args.out / "report")
    print(
        f"\nschedule {'none' if args.no_pretrained else repr(schedule)}, augment "
        f"{args.augment if args.mixup is None else f'flips + MixUp({args.mixup})'}, "
        f"optimizer {optimizer_name}, L2-SP {args.l2sp or 'off'}"
    )
    print(
        f"\nELPV, 75/25 stratified (seed {args.seed}), {len(split.test)} test images, "
        f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}"
    )
    print(
        f"{'model':22s} {'accuracy':>22s} {'balanced accuracy':>22s} {'macro-F1':>22s} "
        f"{'per-class F1':>28s} {'train s':>8s} {'peak RSS MB':>12s}"
    )
    for r in report.rows:
        cells = []
        for m in ("accuracy", "balanced_accuracy", "macro_f1"):
            ci = r.ci.get(m)
            ci_text = f" [{ci.low:.3f}, {ci.high:.3f}]" if ci is not None else ""
            cells.append(f"{r.metrics[m]:.3f}{ci_text}")
        f1 = " ".join(f"{row['f1']:.2f}" for row in r.per_class)
        secs, rss = rows.get(r.name, (0.0, 0.0))
        print(
            f"{r.name:22s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>22s} {f1:>28s} "
            f"{secs:8.0f} {rss:12.0f}"
        )
    print("\nwarnings:")
    for w in report.warnings:
        print(f"- {w}")


if __name__ == "__main__":
    main()
