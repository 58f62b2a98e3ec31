"""Kept weights: the mean of the best stretch of epochs against the stretch's last epoch alone.

``FineTuner`` compares epochs by the mean of the monitor over ``monitor_window``
epochs (5) and, since this change, ends each phase on the mean of the weights of the
best stretch's epochs (checked on validation). Before, it kept the stretch's last
epoch alone. This script fits one recipe of ``benchmarks/default_recipe.py`` (or the
study's scratch CNN) once, records the network's weights after every epoch, and
scores, on validation and on test, in one run:

``mean``
    the model ``FineTuner`` kept (the mean of the best stretch's weights, or one
    epoch where the mean scored worse than each epoch of it: ``kept_epochs`` says);
``last``
    the weights of the stretch's last epoch (``best_epoch``), what the earlier rule
    would have kept at the end of this run's last phase. (Earlier phases already
    ended on their means here, so the run before this one is not reproduced exactly:
    what is compared is the final choice on the same trajectory.)

It prints one JSON line per run with accuracy / balanced accuracy / macro-F1 of
both, the kept epochs and the seconds. Choose on validation; the test columns are
for the record.

Datasets as in ``benchmarks/default_recipe.py`` (``hym``, ``elpv``, ``synthetic``);
recipes: that script's (``default``, ``top2-flip``, ``probe-flip``) and ``scratch``,
the study's scratch CNN (160 px, 20 epochs, light augmentation, square-root class
weights).

Usage::

    python benchmarks/weight_averaging.py elpv top2-flip --pooling auto --seed 1
    python benchmarks/weight_averaging.py elpv scratch
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import default_recipe  # a sibling script: a script's folder is on its path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=default_recipe.DATASETS)
    p.add_argument("recipe", choices=(*default_recipe.recipes(), "scratch"))
    p.add_argument("--pooling", default="avg", choices=("avg", "blocks", "auto"))
    p.add_argument("--seed", type=int, default=0, help="the tuner's seed (the split's is fixed)")
    p.add_argument("--data", type=Path, default=default_recipe.DEFAULT_DATA)
    args = p.parse_args()

    import keras

    from tlkit import FineTuner
    from tlkit.backbones import get_backbone
    from tlkit.finetune import choose_pooling

    class Record(keras.callbacks.Callback):
        """The whole network's weights after every epoch (the phases share its layers)."""

        def __init__(self, tuner: FineTuner) -> None:
            super().__init__()
            self.tuner, self.epochs = tuner, []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epochs.append(self.tuner.model.get_weights())

    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train, val, test = default_recipe.load(args.dataset, args.data, Path(tmp))
        if args.recipe == "scratch":
            tuner = FineTuner.scratch_cnn(
                class_names=train.class_names, image_size=160, epochs=20, seed=args.seed,
                augment="light", class_weight="sqrt", verbose=0,
            )  # fmt: skip
        else:
            backbone: Any = "efficientnet_lite0"
            if args.pooling == "auto":
                backbone = choose_pooling(get_backbone(backbone), train, val).backbone
            elif args.pooling != "avg":
                backbone = get_backbone(backbone, pooling=args.pooling)
            kwargs = default_recipe.recipes()[args.recipe]
            tuner = FineTuner(
                backbone, class_names=train.class_names, seed=args.seed, verbose=0, **kwargs
            )
        tuner.build()
        record = Record(tuner)
        t0 = time.perf_counter()
        tuner.fit(train, val, callbacks=[record])
        fit_s = time.perf_counter() - t0

        def scores() -> dict[str, list[float]]:
            keep = ("accuracy", "balanced_accuracy", "macro_f1")
            return {
                part: [round(float(tuner.evaluate(data)[k]), 3) for k in keep]
                for part, data in (("val", val), ("test", test))
            }

        mean = scores()
        tuner.model.set_weights(record.epochs[tuner.best_epoch])
        last = scores()
    row = {
        "dataset": args.dataset,
        "recipe": args.recipe,
        "pooling": args.pooling if args.recipe != "scratch" else None,
        "seed": args.seed,
        "kept_epochs": [e + 1 for e in tuner.kept_epochs],  # 1-based, as the log says
        "phase": tuner.history.phases[tuner.best_epoch],
        "mean": mean,
        "last": last,
        "fit_s": round(fit_s),
        "wall_s": round(time.perf_counter() - wall0),
    }
    print("RESULT " + json.dumps(row))


if __name__ == "__main__":
    main()
