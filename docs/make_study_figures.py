"""Regenerate the "Comparing models" guide's example: the study's own comparison.

Usage::

    python docs/make_study_figures.py

The study this project comes from (its write-up is quoted in the guide) tested
on 108 images: 80, 20 and 8 of its classes 0, 1 and 2. It published

* its CNN's full scikit-learn classification report: recalls 0.80, 0.30, 0.00
  and precisions 0.79, 0.30, 0.00, so the CNN got 64, 6 and 0 images of the
  three classes right, and predicted class 0 for 81 images (64 / 81 = 0.79),
  class 1 for 20 (6 / 20 = 0.30) and class 2 for the other 7;
* MobileNet's class-0 figures: precision 0.74 = 80 / 108 and recall 1.00, so
  MobileNet predicted class 0 for every image.

The report fixes the CNN's diagonal and its row and column totals, not how
each class's errors split between the other two classes. Those splits form a
one-parameter family: with ``t`` the number of class-0 images predicted as
class 1, the confusion matrix is ``[[64, t, 16 - t], [23 - t, 6, t - 9],
[t - 6, 14 - t, 0]]``, and every entry is >= 0 exactly for ``t`` in 9..14.
The guide uses ``t = 12`` (:data:`STUDY_CNN`). This script checks that each of
the six matrices reproduces the published report, and compares their reports:
accuracy, balanced accuracy, macro-F1, weighted-F1, MCC, Cohen's kappa, their
bootstrap intervals except macro-F1's, and McNemar's test are the same for all
six; macro-F1's interval ends move in the third decimal.

Writes, under ``docs/_static/``:

``study_report.md``
    ``report.to_markdown()`` of the comparison;
``study_report.rst``
    the same report as reST tables, included by the guide;
``study_splits.rst``
    the six possible CNNs side by side;
``study_confusion_mobilenet.png``, ``study_confusion_cnn.png``, ``study_metrics.png``
    copied from the files ``report.save()`` writes.

The output is deterministic: the same tlkit gives the same bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import classification_report

from tlkit.compare import ComparisonReport, ModelComparator, mcnemar_exact
from tlkit.compare._render import ci_text, machine_text, pairwise_text, testset_text

CLASSES = ["class 0", "class 1", "class 2"]
SUPPORTS = [80, 20, 8]
#: What the study published, rounded to 2 decimals as scikit-learn printed it.
PUBLISHED_CNN = {
    "class 0": {"precision": 0.79, "recall": 0.80, "f1-score": 0.80, "support": 80},
    "class 1": {"precision": 0.30, "recall": 0.30, "f1-score": 0.30, "support": 20},
    "class 2": {"precision": 0.00, "recall": 0.00, "f1-score": 0.00, "support": 8},
    "macro avg": {"precision": 0.36, "recall": 0.37, "f1-score": 0.37, "support": 108},
    "weighted avg": {"precision": 0.64, "recall": 0.65, "f1-score": 0.64, "support": 108},
    "accuracy": 0.65,
}
PUBLISHED_MOBILENET_CLASS0 = {"precision": 0.74, "recall": 1.00, "f1-score": 0.85}


def cnn_confusion(t: int) -> np.ndarray:
    """The CNN's confusion matrix when ``t`` class-0 images were predicted as class 1.

    Rows: true class; columns: predicted class. Diagonal 64, 6, 0; row totals
    80, 20, 8; column totals 81, 20, 7. Valid for ``t`` in 9..14.
    """
    cm = np.array([[64, t, 16 - t], [23 - t, 6, t - 9], [t - 6, 14 - t, 0]])
    if cm.min() < 0:
        raise ValueError(f"t = {t} gives a negative count; t must be in 9..14")
    return cm


#: The split the guide shows (any of t = 9..14 fits the published report).
SPLIT_T = 12
STUDY_CNN = cnn_confusion(SPLIT_T)
VALID_T = range(9, 15)


def predictions_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions with the given confusion matrix.

    Images are grouped by true class; within a class the correctly predicted
    ones come first, so which images a model gets right does not depend on how
    its errors split (the bootstrap resamples the same images for every split).
    """
    y_true = np.repeat(np.arange(len(cm)), cm.sum(axis=1))
    order = [[i, *(j for j in range(len(cm)) if j != i)] for i in range(len(cm))]
    y_pred = np.concatenate([np.repeat(o, cm[i, o]) for i, o in enumerate(order)])
    return y_true, y_pred


def check_published(y_true: np.ndarray, cnn: np.ndarray, mobilenet: np.ndarray) -> None:
    """Raise AssertionError unless the predictions reproduce the study's published figures."""
    rep = classification_report(
        y_true, cnn, labels=[0, 1, 2], target_names=CLASSES, output_dict=True, zero_division=0
    )
    for row, want in PUBLISHED_CNN.items():
        got = rep[row]
        if isinstance(want, float):
            assert round(got, 2) == want, (row, got, want)
            continue
        for k, v in want.items():
            assert round(got[k], 2) == v, (row, k, got[k], v)
    mob = classification_report(
        y_true, mobilenet, labels=[0, 1, 2], target_names=CLASSES, output_dict=True, zero_division=0
    )
    for k, v in PUBLISHED_MOBILENET_CLASS0.items():
        assert round(mob["class 0"][k], 2) == v, (k, mob["class 0"][k], v)


def study_report(t: int = SPLIT_T) -> ComparisonReport:
    """The comparison the guide shows, with the CNN of split ``t``."""
    y_true, cnn = predictions_from_confusion(cnn_confusion(t))
    assert np.bincount(y_true).tolist() == SUPPORTS
    mobilenet = np.zeros(len(y_true), dtype=int)  # class 0 for every image
    check_published(y_true, cnn, mobilenet)
    return (
        ModelComparator(y_true, CLASSES)  # defaults: 1000 stratified resamples, seed=0
        .add_predictions("MobileNet", mobilenet)
        .add_predictions("CNN", cnn)
        .run()
    )


# -- reST rendering ------------------------------------------------------------------------------


def _esc(text: str) -> str:
    for ch in ("\\", "*", "`", "|", "_"):
        text = text.replace(ch, "\\" + ch)
    return text


def rst_table(head: Sequence[str], body: Sequence[Sequence[str]], *, title: str = "") -> list[str]:
    """A ``list-table`` directive (header row first)."""
    lines = [f".. list-table:: {_esc(title)}".rstrip(), "   :header-rows: 1", ""]
    for row in [head, *body]:
        lines.append(f"   * - {_esc(str(row[0]))}")
        lines += [f"     - {_esc(str(c))}" if str(c) else "     -" for c in row[1:]]
    return [*lines, ""]


def report_rst(report: ComparisonReport) -> str:
    """The report's warnings, verdict and tables as reST (for ``.. include::``)."""
    out = [".. Generated by docs/make_study_figures.py from report.to_markdown()'s data.", ""]
    out += [".. admonition:: Warnings", "   :class: warning", ""]
    out += [f"   {i}. {_esc(w)}" for i, w in enumerate(report.warnings, 1)]
    out += ["", f"   **Verdict.** {_esc(report.verdict)}", ""]
    out += ["**Test set.** " + _esc(testset_text(report)), ""]
    head, body = report.metrics_table()
    # Two tables: the metrics with intervals, then the rest (one wide table runs off the page).
    out += ["**Metrics.** " + _esc(ci_text(report)), ""]
    out += rst_table(head[:4], [r[:4] for r in body])
    out += rst_table([head[0], *head[4:]], [[r[0], *r[4:]] for r in body])
    out += ["**Pairwise McNemar exact tests.** " + _esc(pairwise_text(report)), ""]
    out += rst_table(*report.pairwise_table())
    out += ["**Cost.** " + _esc(machine_text(report)), ""]
    for name, r in report.models.items():
        out += [
            f"**{_esc(name)}**: classification report and confusion matrix (rows: true "
            "class, columns: predicted class; count and share of the true class).",
            "",
        ]
        rows = [
            [
                row["class"],
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            ]
            for row in r.per_class
        ]
        rows.append(["accuracy", "", "", f"{r.metrics['accuracy']:.3f}", str(report.y_true.size)])
        rows += [
            [
                k,
                f"{a['precision']:.3f}",
                f"{a['recall']:.3f}",
                f"{a['f1-score']:.3f}",
                str(int(a["support"])),
            ]
            for k, a in r.averages.items()
        ]
        out += rst_table(["class", "precision", "recall", "f1-score", "support"], rows)
        out += rst_table(*report.confusion_table(r))
    return "\n".join(out).rstrip("\n") + "\n"


def splits_rst() -> tuple[str, dict[str, set]]:
    """The six CNNs the published report allows, side by side; and what varies between them."""
    head = [
        "t",
        "CNN confusion matrix",
        "accuracy",
        "balanced accuracy",
        "macro-F1",
        "MCC",
        "McNemar (16 vs 6)",
    ]
    body, seen = [], {}
    for t in VALID_T:
        r = study_report(t)
        c, p = r["CNN"], r.pairwise[0]
        cells = {
            "accuracy": f"{c.metrics['accuracy']:.3f} [{c.ci['accuracy'].low:.3f}, "
            f"{c.ci['accuracy'].high:.3f}]",
            "balanced accuracy": f"{c.metrics['balanced_accuracy']:.3f} "
            f"[{c.ci['balanced_accuracy'].low:.3f}, {c.ci['balanced_accuracy'].high:.3f}]",
            "macro-F1": f"{c.metrics['macro_f1']:.3f} [{c.ci['macro_f1'].low:.3f}, "
            f"{c.ci['macro_f1'].high:.3f}]",
            "MCC": f"{c.metrics['mcc']:.3f}",
            "weighted-F1": f"{c.metrics['weighted_f1']:.6f}",
            "Cohen's kappa": f"{c.metrics['cohen_kappa']:.6f}",
            "McNemar": f"p = {p.test.p_value:.3f}",
            "discordant": f"{p.test.a_right_b_wrong} vs {p.test.a_wrong_b_right}",
            "verdict": r.verdict,
        }
        for k, v in cells.items():
            seen.setdefault(k, set()).add(v)
        matrix = " ".join(str(row.tolist()) for row in cnn_confusion(t))
        mark = f"{t} (shown)" if t == SPLIT_T else str(t)
        body.append(
            [
                mark,
                matrix,
                cells["accuracy"],
                cells["balanced accuracy"],
                cells["macro-F1"],
                cells["MCC"],
                cells["McNemar"],
            ]
        )
    text = [".. Generated by docs/make_study_figures.py.", ""]
    text += rst_table(head, body)
    return "\n".join(text).rstrip("\n") + "\n", seen


def main() -> None:
    static = Path(__file__).resolve().parent / "_static"
    report = study_report()

    # The significance test, two ways: tlkit's and scipy's exact binomial test.
    y_true, cnn = predictions_from_confusion(STUDY_CNN)
    m = mcnemar_exact(y_true, np.zeros_like(y_true), cnn)
    assert (m.a_right_b_wrong, m.a_wrong_b_right) == (16, 6), m
    p_scipy = binomtest(6, 22, 0.5).pvalue
    assert abs(m.p_value - p_scipy) < 1e-12 and round(m.p_value, 3) == 0.052, (m, p_scipy)
    assert report.pairwise[0].test.p_value == m.p_value

    splits, seen = splits_rst()
    varies = sorted(k for k, v in seen.items() if len(v) > 1)
    print(f"McNemar: 16 vs 6, p = {m.p_value:.4f} (scipy.stats.binomtest: {p_scipy:.4f})")
    print(f"over the six CNNs (t = 9..14) these differ: {', '.join(varies) or 'nothing'}")
    assert set(varies) <= {"macro-F1", "verdict"}, varies

    markdown = report.to_markdown()
    print(markdown)
    (static / "study_report.md").write_text(markdown, encoding="utf-8")
    (static / "study_report.rst").write_text(report_rst(report), encoding="utf-8")
    (static / "study_splits.rst").write_text(splits, encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        report.save(tmp)
        for src, dst in (
            ("confusion_MobileNet.png", "study_confusion_mobilenet.png"),
            ("confusion_CNN.png", "study_confusion_cnn.png"),
            ("metrics.png", "study_metrics.png"),
        ):
            shutil.copyfile(Path(tmp) / src, static / dst)
    print(f"wrote study_report.md/.rst, study_splits.rst and the study_*.png files in {static}")


if __name__ == "__main__":
    main()
