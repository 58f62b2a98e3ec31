"""Make the figure of the "Input pipeline and augmentation" guide page.

Writes ``docs/_static/augmentations.png`` with
:meth:`tlkit.AugmentationPipeline.preview`: four electroluminescence images of
solar cells from the ELPV dataset (``pip install elpv-dataset``; Apache-2.0),
one per defect probability, each followed by four versions augmented by the
``"standard"`` preset (seed 0). Without the package, generated images are used.

Usage::

    python docs/make_pipeline_figures.py
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from tlkit import AugmentationPipeline
from tlkit.data import Sample, SplitPart

OUT = Path(__file__).resolve().parent / "_static" / "augmentations.png"
CLASSES = ("functional", "possibly defective", "likely defective", "defective")
PROBABILITIES = ("0.0", "0.3333333333333333", "0.6666666666666666", "1.0")


def elpv_part() -> SplitPart | None:
    """The first cell image of each defect probability, as a SplitPart (or None)."""
    try:
        import elpv_dataset
    except ImportError:
        return None
    root = Path(elpv_dataset.__file__).parent / "data"
    first: dict[str, str] = {}
    with open(root / "labels.csv") as f:
        for row in csv.reader(f, delimiter=" ", skipinitialspace=True):
            path, probability = row[0], row[1]
            first.setdefault(probability, path)
    samples = tuple(Sample(first[p], k) for k, p in enumerate(PROBABILITIES) if p in first)
    return SplitPart("train", root, CLASSES, samples) if len(samples) == 4 else None


def synthetic_part() -> SplitPart:
    from tlkit import DatasetSplitter
    from tlkit.datasets import make_synthetic_dataset

    root = make_synthetic_dataset(tempfile.mkdtemp(), (4, 4, 4, 4), image_size=160, seed=0)
    split = DatasetSplitter(val=0, test=0, seed=0).split(root)
    return split.train


def main() -> None:
    part = elpv_part() or synthetic_part()
    aug = AugmentationPipeline.preset("standard", seed=0)
    out = aug.preview(part, n=16, per_image=4, path=OUT, image_size=224)
    print(f"wrote {out} from {len(part)} images under {part.root}")


if __name__ == "__main__":
    main()
