"""Test-time augmentation on saved study runs: the plain models against their view-averaged scores.

``examples/mobilenet_vs_cnn.py --out DIR`` saves the split and both trained models
(``DIR/split.json``, ``DIR/<backbone>.keras``, ``DIR/cnn_from_scratch.keras``). This
script loads each, and scores it on the validation and the test part three ways:
plain, with ``tta="flip"`` (identity and mirror, the views the default profile
trains the pretrained model on) and with ``tta="dihedral"`` (the 8 symmetries of
the square, views neither model saw in training). It prints one JSON line per model
and part: accuracy / balanced accuracy / macro-F1 of each.

Whether to score with TTA is a choice: make it on the validation columns. The test
columns are for the record.

Usage::

    python examples/mobilenet_vs_cnn.py --out runs/a   # one study run (about 9 minutes)
    python benchmarks/tta.py runs/a runs/b --root PATH  # PATH: the images the split names

``--root`` defaults to the images of the ``elpv-dataset`` package (the study's data).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TTAS = (None, "flip", "dihedral")


def elpv_images() -> Path:
    import elpv_dataset

    return Path(elpv_dataset.__file__).parent / "data" / "images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="study output folders (--out)")
    p.add_argument("--root", type=Path, help="the split's image folder (default: ELPV's)")
    args = p.parse_args()

    from tlkit import FineTuner
    from tlkit.data import Split

    root = args.root or elpv_images()
    for run in args.runs:
        split = Split.load(run / "split.json", root=root)
        for path in sorted(run.glob("*.keras")):
            tuner = FineTuner.load(path)
            tuner.verbose = 0
            for part in ("val", "test"):
                scores = {}
                for tta in TTAS:
                    m = tuner.evaluate(getattr(split, part), tta=tta)
                    scores[tta or "plain"] = [
                        round(m[k], 4) for k in ("accuracy", "balanced_accuracy", "macro_f1")
                    ]
                row = {"run": run.name, "model": path.stem, "part": part, **scores}
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
