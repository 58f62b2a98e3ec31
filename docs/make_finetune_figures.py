"""Figures of the "Fine-tuning and schedules" guide page, from real ELPV images.

Run: ``python docs/make_finetune_figures.py`` (about two minutes on 2 CPU cores; needs
``tlkit[data,lite]``). Writes ``docs/_static/lr_find.png`` and prints the suggestion.
"""

from __future__ import annotations

from pathlib import Path

from tlkit import DatasetSplitter, FineTuner, schedules
from tlkit.datasets import elpv_samples

STATIC = Path(__file__).parent / "_static"


def main() -> None:
    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=42, progress=False).split_samples(
        pairs, class_names=names
    )
    tuner = FineTuner(
        "efficientnet_lite0",
        class_names=split.class_names,
        image_size=160,
        schedule=schedules.Frozen(30),
        seed=42,
        verbose=0,
    )
    result = tuner.lr_find(split.train, min_lr=1e-6, max_lr=10.0, steps=100)
    result.plot(STATIC / "lr_find.png")
    print(
        f"lr_find on ELPV (efficientnet_lite0, 160 px, head on cached features): "
        f"suggestion {result.suggestion:.2g}"
    )


if __name__ == "__main__":
    main()
