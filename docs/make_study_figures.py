"""Regenerate the "Comparing models" guide's example: the study's misleading comparison.

Usage::

    python docs/make_study_figures.py

Writes, under ``docs/_static/``: ``study_report.md`` (``report.to_markdown()``),
``study_confusion.png`` and ``study_metrics.png`` (copied from the files
``report.save()`` writes). The output is deterministic: the same tlkit gives the
same bytes.

The study's test set held 80 healthy, 20 rust and 8 scab images, and its
MobileNet predicted "healthy" for every one (accuracy 80/108 = 0.74). The study
published only the CNN's accuracy (0.65), not its predictions: the CNN below is
**hypothetical**, a confusion matrix made up to have that accuracy, so that the
report has two models to test against each other.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from tlkit.compare import ModelComparator

CLASSES = ["healthy", "rust", "scab"]
SUPPORTS = [80, 20, 8]
# Rows: true class; columns: predicted class. 56 + 10 + 4 = 70 right: 70 / 108 = 0.648.
HYPOTHETICAL_CNN = np.array([[56, 16, 8], [7, 10, 3], [3, 1, 4]])


def predictions_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions (grouped by true class) with the given confusion matrix."""
    y_true = np.repeat(np.arange(len(cm)), cm.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(len(row)), row) for row in cm])
    return y_true, y_pred


def main() -> None:
    static = Path(__file__).resolve().parent / "_static"
    y_true, cnn = predictions_from_confusion(HYPOTHETICAL_CNN)
    assert np.bincount(y_true).tolist() == SUPPORTS

    report = (
        ModelComparator(y_true, CLASSES)  # defaults: 1000 stratified resamples, random_state=0
        .add_predictions("MobileNet", np.zeros(len(y_true), dtype=int))  # "healthy" for all
        .add_predictions("CNN (hypothetical)", cnn)
        .run()
    )
    markdown = report.to_markdown()
    print(markdown)
    (static / "study_report.md").write_text(markdown, encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        report.save(tmp)
        shutil.copyfile(Path(tmp) / "confusion_MobileNet.png", static / "study_confusion.png")
        shutil.copyfile(Path(tmp) / "metrics.png", static / "study_metrics.png")
    print(f"wrote study_report.md, study_confusion.png and study_metrics.png in {static}")


if __name__ == "__main__":
    main()
