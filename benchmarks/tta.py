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

from _args import add_study_runs, study_models

TTAS = (None, "flip", "dihedral")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_runs(p)
    args = p.parse_args()
    for run, split, path, tuner in study_models(args.runs, args.root):
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
