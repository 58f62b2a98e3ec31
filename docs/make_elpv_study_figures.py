"""Figures of the "The study on ELPV" tutorial, from a run of the study example.

Run the study first, then this script on its output folder::

    python examples/mobilenet_vs_cnn.py --out study/
    python docs/make_elpv_study_figures.py study/

It rebuilds the comparison from the run's saved predictions (``report/report.json``:
labels, predictions and training histories, so no model runs again) and writes the
confusion matrices, the metrics plot and the training curves into ``docs/_static``
as ``elpv_study_*.png``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from tlkit import ModelComparator
from tlkit.compare import SCHEMA

STATIC = Path(__file__).parent / "_static"


def main(out: Path) -> None:
    path = out / "report" / "report.json"
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        found = data.get("schema")
        sys.exit(f"{path} has schema {found!r}, this tlkit reads {SCHEMA!r}: run the study again")
    names = data["classes"]
    names = [c["name"] if isinstance(c, dict) else c for c in names]
    comparator = ModelComparator(
        np.asarray(data["y_true"]),
        names,
        seed=data["settings"]["seed"],
        n_boot=data["settings"]["n_boot"],
    )
    for model in data["models"][1:]:  # the first row is the majority-class baseline
        comparator.add_predictions(model["name"], np.asarray(model["y_pred"]))
    written = comparator.run().save(out / "figures")
    for path in written:
        if path.suffix == ".png":
            shutil.copy(path, STATIC / f"elpv_study_{path.name}")
    # The training curves come from the run itself (predictions alone have no history).
    for png in (out / "report").glob("training_*.png"):
        shutil.copy(png, STATIC / f"elpv_study_{png.name}")
    print("\n".join(sorted(p.name for p in STATIC.glob("elpv_study_*.png"))))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
