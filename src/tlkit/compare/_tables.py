"""The tables and sentences of a report, as strings: what the Markdown and HTML pages show.

Each function reads a report object (a :class:`~tlkit.compare.ComparisonReport`) and
returns text; the renderers lay it out. The module does not import the report's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlkit._calibration import N_BINS
from tlkit.compare._format import fmt, fmt_bytes, fmt_ms, fmt_p, fmt_s
from tlkit.compare._warnings import ECE_WARNING
from tlkit.metrics import METRIC_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport, ModelResult

__all__ = [
    "calibration_table",
    "calibration_text",
    "ci_text",
    "confused_text",
    "confusion_table",
    "cost_table",
    "machine_text",
    "metrics_table",
    "pairwise_table",
    "pairwise_text",
    "testset_text",
]

Table = tuple[list[str], list[list[str]]]


def testset_text(report: ComparisonReport) -> str:
    """Size and classes of the test set, and the baseline's class."""
    sup = report.supports
    classes = ", ".join(f"{c} {int(n)}" for c, n in zip(report.class_names, sup, strict=True))
    b = report.baseline_info
    src = (
        "the most frequent class in the test set"
        if b["source"] == "test set"
        else "the most frequent class in baseline_labels"
    )
    return (
        f"{report.y_true.size} examples in {len(report.class_names)} classes ({classes}). "
        f"Baseline: always predict {b['class_name']!r}, {src}."
    )


def ci_text(report: ComparisonReport) -> str:
    """How the intervals in brackets were made."""
    s = report.settings
    if not s["n_boot"]:
        return "No intervals (n_boot=0)."
    return (
        f"Brackets: {s['confidence']:.0%} bootstrap percentile intervals from "
        f"{s['n_boot']} stratified resamples of the test set (seed="
        f"{s['seed']})."
    )


def machine_text(report: ComparisonReport) -> str:
    """Where and how latencies were measured."""
    m = report.machine
    if not any(r.kind in ("keras", "exported") for r in report.models.values()):
        return "No model was run here: cost columns show what was passed to add_predictions()."
    return (
        "Latency: mean milliseconds per image at batch 1 and batch 32, median of "
        f"{report.settings['latency_runs']} runs after a warm-up, measured on "
        f"{m.get('platform', '?')} ({m.get('cpu_count', '?')} CPUs"
        + (f", {m['accelerator']}" if m.get("accelerator") else "")
        + ")."
    )


def pairwise_text(report: ComparisonReport) -> str:
    """How the McNemar p-values were computed and adjusted."""
    s = report.settings
    corr = "Holm-adjusted over all pairs" if s["correction"] == "holm" else "not adjusted"
    return (
        f"Exact two-sided binomial test of the discordant counts; p-values {corr}; "
        f"significant when the adjusted p < {s['alpha']}."
    )


def confused_text(r: ModelResult) -> str:
    """One model's most confused (true, predicted) pairs, largest first."""
    if not r.most_confused:
        return "none."
    return "; ".join(
        f"{m['true']} → {m['predicted']}: {m['count']} ({m['share_of_true']:.0%} of {m['true']})"
        for m in r.most_confused
    )


def row_name(report: ComparisonReport, r: ModelResult) -> str:
    """A row's name; the baseline's says which class it always predicts."""
    if r.kind == "baseline":
        return f"{r.name} (always {report.baseline_info['class_name']!r})"
    return r.name


def metrics_table(report: ComparisonReport) -> Table:
    """Header and rows of the metrics table, intervals in brackets."""
    k = report.baseline.top_k
    head = ["model"] + [METRIC_LABELS[m].replace("top-k", f"top-{k}") for m in METRIC_LABELS]
    body = []
    for r in report.rows:
        row = [row_name(report, r)]
        for m in METRIC_LABELS:
            v = r.metrics.get(m)
            cell = fmt(v)
            if m in r.ci and v is not None:
                c = r.ci[m]
                cell += f" [{fmt(c.low)}, {fmt(c.high)}]"
            row.append(cell)
        body.append(row)
    return head, body


def calibration_text(report: ComparisonReport) -> str:
    """How the expected calibration error is computed, and when the report warns."""
    return (
        "ECE: expected calibration error, the mean gap between the top-label confidence and "
        f"the accuracy over {N_BINS} equal-width confidence bins, weighted by the bins' sizes "
        f"(0 is perfect; above {ECE_WARNING:.2f} the report warns). A model that gives class "
        "labels only has no ECE."
    )


def calibration_table(report: ComparisonReport) -> Table:
    """Header and rows of the calibration table: ECE, mean confidence and accuracy per row."""
    head = ["model", "ECE", "mean confidence", "accuracy", "reading"]
    body = []
    for r in report.rows:
        rel = r.reliability
        if rel is None:
            body.append([row_name(report, r), "—", "—", fmt(r.metrics.get("accuracy")),
                         "no probabilities (class labels only): no ECE"])  # fmt: skip
            continue
        conf, acc = rel.mean_confidence, rel.mean_accuracy
        if rel.ece <= ECE_WARNING:
            reading = f"within {ECE_WARNING:.2f}"
        elif conf is not None and acc is not None and conf > acc:
            reading = "over-confident"
        else:
            reading = "under-confident"
        body.append([row_name(report, r), fmt(rel.ece), fmt(conf), fmt(acc), reading])
    return head, body


def cost_table(report: ComparisonReport) -> Table:
    """Header and rows of the cost table (one row per model, no baseline)."""
    head = [
        "model",
        "parameters",
        ".keras size",
        "TFLite size",
        "latency, batch 1",
        "latency, batch 32",
        "training time",
        "test-set prediction",
    ]
    body = []
    for r in report.models.values():
        c = r.cost
        body.append(
            [
                r.name,
                f"{c.params:,}" if c.params is not None else "—",
                fmt_bytes(c.keras_bytes),
                fmt_bytes(c.tflite_bytes),
                fmt_ms(c.latency_ms_batch1),
                fmt_ms(c.latency_ms_batch32),
                fmt_s(c.train_time_s),
                fmt_s(c.predict_time_s),
            ]
        )
    return head, body


def pairwise_table(report: ComparisonReport) -> Table:
    """Header and rows of the McNemar table."""
    head = [
        "model A",
        "model B",
        "A right, B wrong",
        "A wrong, B right",
        "p (exact)",
        "p (adjusted)",
        f"significant at {report.settings['alpha']}",
    ]
    body = [
        [
            p.model_a,
            p.model_b,
            str(p.test.a_right_b_wrong),
            str(p.test.a_wrong_b_right),
            fmt_p(p.test.p_value),
            fmt_p(p.p_adjusted),
            "yes" if p.significant else "no",
        ]
        for p in report.pairwise
    ]
    return head, body


def confusion_table(report: ComparisonReport, r: ModelResult) -> Table:
    """Header and rows of one model's confusion matrix (count and share of the true class)."""
    sup = report.supports
    head = ["true \\ predicted", *report.class_names]
    body = [
        [f"{c} ({int(sup[i])})"]
        + [
            f"{int(r.confusion[i, j])} ({r.confusion_normalized[i, j]:.0%})"
            for j in range(len(report.class_names))
        ]
        for i, c in enumerate(report.class_names)
    ]
    return head, body
