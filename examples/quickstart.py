"""Split a dataset the tlkit way and print what went where.

Usage::

    python examples/quickstart.py                 # a generated, imbalanced dataset
    python examples/quickstart.py --data photos/  # your own folder-per-class photos
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tlkit import DatasetSplitter, Split
from tlkit.datasets import make_synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder, one sub-folder per class")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tlkit-quickstart-"))
    if args.data is None:
        # The study's imbalance: 80 / 20 / 8 test images came from classes of about this shape.
        args.data = make_synthetic_dataset(
            work / "photos", {"healthy": 530, "rust": 135, "scab": 55}, image_size=96, seed=0
        )
        print(f"generated an imbalanced 3-class dataset in {args.data}")

    split = DatasetSplitter(val=0.15, test=0.15, seed=args.seed).split(args.data)
    print(split.summary())
    manifest = split.save(work / "photos.split.json")
    print(f"\nmanifest: {manifest}")
    again = Split.load(manifest)
    assert again.test.paths == split.test.paths
    print("reloaded the manifest: the same split, every file hash checked")


if __name__ == "__main__":
    main()
