"""Candidate default recipes on real and generated data: choose on validation, report test once.

Each run fits one recipe on one dataset with FineTuner's defaults for everything the
recipe does not name (no class weights, batch 32, Adam at 3e-3, the backbone's own
input size), keeps the epoch FineTuner keeps, and prints one JSON line: validation
and test accuracy / balanced accuracy / macro-F1 of the kept model, the same on
test with the recipe's views averaged (test-time augmentation), the kept epoch, and
the training and wall seconds. The default is chosen on the validation columns
across the datasets; the test columns are for the record.

Datasets:

``hym``
    The 398 ants-and-bees photos of the PyTorch transfer-learning tutorial
    (``../shared/data/hymenoptera``): 15% of its ``train/`` validates (seed 0), its
    ``val/`` is the test set.
``elpv``
    ELPV (2,624 solar-cell images, 4 imbalanced classes) in the study example's
    split: 70/15/15, stratified, seed 42.
``synthetic``
    ``tlkit.datasets.make_synthetic_dataset``: 3 imbalanced classes (120/60/30)
    of generated 96 px images, split 70/15/15, seed 0.

Recipes (``--list`` prints them):

``default``
    ``FineTuner(backbone)`` as it comes: ``FreezeThenUnfreeze(30, 8, unfreeze="all",
    lr_factor=0.05, lr_decay=0.8, warmup=1)``, no augmentation.
``top2-flip``
    30 head epochs, then the top two layer groups for 15 epochs on the boundary
    cache, with the identity and horizontal-flip views.
``probe-flip``
    ``Frozen(30)`` with the identity and horizontal-flip views: a linear probe.

``--backbone efficientnet_lite2`` runs any recipe on Lite2 (at its own 260 px);
``--pooling blocks`` on the backbone built with ``pooling="blocks"`` (every block's
pooled features, standardised in the head); ``--pooling auto`` lets
``tlkit.finetune.choose_pooling`` pick one of the two on validation first (its line,
both probes' scores and seconds, is printed, and the row's ``train_s`` includes it).

Usage::

    python benchmarks/default_recipe.py hym default
    python benchmarks/default_recipe.py elpv top2-flip --backbone efficientnet_lite2
    python benchmarks/default_recipe.py elpv probe-flip --pooling blocks
    python benchmarks/default_recipe.py hym top2-flip --pooling auto
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"
DATASETS = ("hym", "elpv", "synthetic")


def recipes() -> dict[str, dict[str, Any]]:
    """FineTuner keyword arguments of each candidate recipe (besides the backbone)."""
    from tlkit import schedules
    from tlkit.augment import Views

    return {
        "default": {},
        "top2-flip": {
            "schedule": schedules.FreezeThenUnfreeze(
                30, 15, unfreeze=2, lr_factor=0.05, lr_decay=0.8, warmup=1.0
            ),
            "augment": Views("flip", seed=0),
        },
        "probe-flip": {"schedule": schedules.Frozen(30), "augment": Views("flip", seed=0)},
    }


def load(name: str, data: Path, workdir: Path) -> tuple[Any, Any, Any]:
    """(train, val, test) parts of dataset ``name``."""
    from tlkit import DatasetSplitter
    from tlkit.datasets import elpv_samples, make_synthetic_dataset

    if name == "hym":
        split = DatasetSplitter(val=0.15, test=0, seed=0, progress=False).split(data / "train")
        test = DatasetSplitter(val=0, test=0, seed=0, progress=False).split(data / "val")
        return split.train, split.val, test.train
    if name == "elpv":
        pairs, names = elpv_samples()
        split = DatasetSplitter(val=0.15, test=0.15, seed=42, progress=False).split_samples(
            pairs, class_names=names
        )
        return split.train, split.val, split.test
    root = make_synthetic_dataset(workdir / "synthetic", (120, 60, 30), image_size=96, seed=0)
    split = DatasetSplitter(val=0.15, test=0.15, seed=0, progress=False).split(root)
    return split.train, split.val, split.test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", choices=DATASETS)
    p.add_argument("recipe", nargs="?")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--pooling", default="avg", choices=("avg", "blocks", "auto"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hymenoptera folder")
    p.add_argument("--list", action="store_true", help="print the recipes and exit")
    args = p.parse_args()
    table = recipes()
    if args.list:
        for name, kwargs in table.items():
            print(name, {k: repr(v) for k, v in kwargs.items()})
        return
    if args.dataset is None or args.recipe not in table:
        p.error(f"give a dataset ({', '.join(DATASETS)}) and a recipe ({', '.join(table)})")

    from tlkit import FineTuner
    from tlkit.backbones import get_backbone
    from tlkit.finetune import choose_pooling

    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train, val, test = load(args.dataset, args.data, Path(tmp))
        kwargs = table[args.recipe]
        backbone: Any = args.backbone
        choice = None
        t0 = time.perf_counter()
        if args.pooling == "auto":
            choice = choose_pooling(get_backbone(args.backbone), train, val)
            print(choice, flush=True)
            backbone = choice.backbone
        elif args.pooling != "avg":
            backbone = get_backbone(args.backbone, pooling=args.pooling)
        tuner = FineTuner(backbone, class_names=train.class_names, seed=0, verbose=2, **kwargs)
        tuner.fit(train, val)
        train_s = time.perf_counter() - t0
        views = kwargs.get("augment")

        def rounded(metrics: dict[str, Any]) -> dict[str, float]:
            keep = ("accuracy", "balanced_accuracy", "macro_f1")
            return {k: round(float(metrics[k]), 3) for k in keep}

        row = {
            "dataset": args.dataset,
            "recipe": args.recipe,
            "backbone": args.backbone,
            "pooling": args.pooling,
            "pooling_used": tuner.backbone.options.get("pooling", "avg"),
            "probe_scores": choice and {k: round(v, 3) for k, v in choice.scores.items()},
            "choice_s": choice and round(choice.seconds),
            "image_size": list(tuner.image_size),
            "kept_epoch": tuner.best_epoch,
            "val": rounded(tuner.evaluate(val)),
            "test": rounded(tuner.evaluate(test)),
            "test_tta": rounded(tuner.evaluate(test, tta=views)) if views is not None else None,
            "train_s": round(train_s),
            "wall_s": round(time.perf_counter() - wall0),
        }
    print("RESULT " + json.dumps(row))


if __name__ == "__main__":
    main()
