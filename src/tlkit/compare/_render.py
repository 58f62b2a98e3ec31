"""Rendering a ComparisonReport: its tables and sentences, Markdown, HTML, and the files saved.

* The tables and sentences, as strings (:func:`metrics_table`, :func:`cost_table`,
  :func:`testset_text`, ...): each reads a report object (a
  :class:`~tlkit.compare.ComparisonReport`) and returns text that both pages lay out. The
  module does not import the report's module.
* :func:`render_markdown`: GitHub-flavoured Markdown, warnings first. Every text that can
  hold a class or model name goes through :func:`tlkit._escape.md_text` (tables through
  :func:`~tlkit.compare._format.md_table`, pre-formatted text through
  :func:`tlkit._escape.md_fence`): a name shows as written and never becomes HTML or markup.
* :func:`render_html`: one self-contained page (plots embedded as base64 PNG).
* :func:`save`: writing a report to a folder: the plots (:func:`figures`), ``report.md``,
  ``report.json``, ``report.html``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from tlkit._atomic import atomic_write_bytes, atomic_write_text
from tlkit._calibration import N_BINS
from tlkit._escape import md_fence, md_text
from tlkit.compare import _gallery
from tlkit.compare._format import (
    SCHEMA,
    fmt,
    fmt_bytes,
    fmt_ms,
    fmt_p,
    fmt_s,
    md_table,
    unique_slugs,
)
from tlkit.compare._verdict import ECE_WARNING
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
    "figures",
    "machine_text",
    "metrics_table",
    "pairwise_table",
    "pairwise_text",
    "render_html",
    "render_markdown",
    "save",
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
                fmt_bytes(c.size_bytes),
                fmt_bytes(c.tflite_size_bytes),
                fmt_ms(c.latency_ms),
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


def _warnings_md(warnings: Sequence[str]) -> list[str]:
    if not warnings:
        return ["## Warnings", "", "None.", ""]
    lines = [f"## ⚠ Warnings ({len(warnings)})", ""]
    lines += [f"{i}. **{md_text(w)}**" for i, w in enumerate(warnings, 1)]
    return [*lines, ""]


def render_markdown(report: ComparisonReport, images: Mapping[str, str] | None = None) -> str:
    """Return the report as Markdown; ``images`` maps plot keys to the PNG files to link."""
    lines = ["# Model comparison", ""]
    lines += _warnings_md(report.warnings)
    if report.verdict:
        lines += [f"**Verdict.** {md_text(report.verdict)}", ""]
    lines += ["## Test set", "", md_text(testset_text(report)), ""]
    lines += ["## Metrics", ""]
    lines += [ci_text(report), ""]  # numbers and fixed words only
    lines += md_table(*metrics_table(report))
    lines += [""]
    if images and "metrics" in images:
        lines += [f"![metrics with intervals]({images['metrics']})", ""]
    lines += ["## Calibration", ""]
    lines += [calibration_text(report), ""]  # numbers and fixed words only
    lines += md_table(*calibration_table(report))
    lines += [""]
    if images and "reliability" in images:
        lines += [f"![reliability diagrams]({images['reliability']})", ""]
    lines += ["## Cost", ""]
    lines += md_table(*cost_table(report))
    lines += ["", machine_text(report), ""]  # this machine, not user input
    lines += ["## Pairwise McNemar exact tests", ""]
    if report.pairwise:
        lines += md_table(*pairwise_table(report))
        lines += ["", pairwise_text(report), ""]  # numbers and fixed words only
    else:
        lines += ["One model: nothing to test.", ""]
    if images and "per_class_f1" in images:
        lines += ["## Per-class F1", "", f"![per-class F1]({images['per_class_f1']})", ""]
    for r in report.models.values():
        lines += [f"## {md_text(r.name)}", ""]
        if r.output:
            lines += [f"Outputs: {md_text(r.output)}.", ""]
        lines += ["scikit-learn classification report:", ""]
        lines += [*md_fence(r.classification_report.rstrip("\n"), "text"), ""]
        lines += [
            "Confusion matrix (rows: true class, columns: predicted class; "
            "count and share of the true class):",
            "",
        ]
        lines += md_table(*confusion_table(report, r))
        lines += [""]
        if images and f"confusion:{r.name}" in images:
            alt = md_text(f"confusion matrix of {r.name}", brackets=True)
            lines += [f"![{alt}]({images[f'confusion:{r.name}']})", ""]
        lines += ["Most confused: " + md_text(confused_text(r)), ""]
        lines += _gallery.gallery_markdown(report, r)
        if images and f"training:{r.name}" in images:
            alt = md_text(f"training curves of {r.name}", brackets=True)
            lines += [f"![{alt}]({images[f'training:{r.name}']})", ""]
        for note in r.notes:
            lines += [f"- note: {md_text(note)}"]
        if r.notes:
            lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#f3f3f3}tr.baseline td{background:#f7f7f7;font-style:italic}
tr.average td{border-top:2px solid #999}
.warnings{background:#fdecea;border:2px solid #c62828;border-radius:6px;padding:.6rem 1.2rem;
margin:1rem 0}.warnings h2{color:#c62828;border:none;margin-top:.3rem}
.warnings li{font-weight:600;margin:.3rem 0}
.verdict{font-weight:400;margin:.6rem 0 .3rem}
.ok{background:#edf7ed;border:1px solid #2e7d32;border-radius:6px;padding:.4rem 1rem}
.small{color:#555;font-size:.88rem}img{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.85rem}
"""


def _table(
    head: Sequence[str],
    body: Sequence[Sequence[str]],
    *,
    cls: str,
    row_classes: Sequence[str] | None = None,
    attrs: str = "",
) -> str:
    out = [f'<table class="{escape(cls)}"{attrs}>', "<thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(body):
        rc = row_classes[i] if row_classes else ""
        out.append(f'<tr class="{escape(rc)}">' if rc else "<tr>")
        out += [f"<td>{escape(c)}</td>" for c in row]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{escape(alt)}"></p>'


def _classification_table(r: ModelResult) -> str:
    head = ["class", "precision", "recall", "f1-score", "support"]
    body, classes = [], []
    for row in r.per_class:
        body.append(
            [
                str(row["class"]),
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            ]
        )
        classes.append("")
    n = sum(row["support"] for row in r.per_class)
    acc = r.metrics["accuracy"]
    body.append(["accuracy", "", "", f"{acc:.3f}" if acc is not None else "—", str(n)])
    classes.append("average")
    for name, avg in r.averages.items():
        body.append(
            [
                name,
                f"{avg['precision']:.3f}",
                f"{avg['recall']:.3f}",
                f"{avg['f1-score']:.3f}",
                str(int(avg["support"])),
            ]
        )
        classes.append("")
    return _table(
        head,
        body,
        cls="classification-report",
        row_classes=classes,
        attrs=f' data-model="{escape(r.name)}"',
    )


def render_html(report: ComparisonReport, figures: Mapping[str, tuple[str, bytes]]) -> str:
    """Return the report as one HTML page; ``figures`` maps plot keys to (file name, PNG)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tlkit model comparison</title>",
        f"<style>{_gallery.CSS}</style>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Model comparison</h1>",
    ]
    parts += _html_warnings(report)
    parts.append(
        f'<section id="test-set"><h2>Test set</h2><p>{escape(testset_text(report))}</p></section>'
    )
    parts += _html_tables(report, figures)
    slugs = unique_slugs(list(report.models))
    thumbnails = _gallery.ThumbnailBudget()  # one budget for the page's thumbnails
    for name, r in report.models.items():
        parts += _html_model(report, r, slugs[name], figures, thumbnails)
    parts.append(f'<footer class="small"><p>Made by tlkit; schema {escape(SCHEMA)}.</p></footer>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_warnings(report: ComparisonReport) -> list[str]:
    """The first section: the warnings (or "No warnings.") and the verdict."""
    parts = []
    if report.warnings:
        parts.append(
            f'<section class="warnings" id="warnings"><h2>⚠ Warnings ({len(report.warnings)})</h2><ol>'
        )
        parts += [f"<li>{escape(w)}</li>" for w in report.warnings]
        parts.append("</ol>")
    else:
        parts.append('<section class="ok" id="warnings"><p>No warnings.</p>')
    if report.verdict:
        parts.append(f'<p class="verdict"><strong>Verdict.</strong> {escape(report.verdict)}</p>')
    parts.append("</section>")
    return parts


def _html_tables(report: ComparisonReport, figures: Mapping[str, tuple[str, bytes]]) -> list[str]:
    """The sections over all models: metrics, calibration, cost, McNemar tests, per-class F1."""
    parts = []
    head, body = metrics_table(report)
    row_classes = ["baseline" if r.kind == "baseline" else "" for r in report.rows]
    parts.append('<section id="metrics"><h2>Metrics</h2>')
    parts.append(f'<p class="small">{escape(ci_text(report))}</p>')
    parts.append(_table(head, body, cls="metrics", row_classes=row_classes))
    if "metrics" in figures:
        parts.append(_img(figures["metrics"][1], "metrics with bootstrap intervals"))
    parts.append("</section>")

    head, body = calibration_table(report)
    parts.append('<section id="calibration"><h2>Calibration</h2>')
    parts.append(f'<p class="small">{escape(calibration_text(report))}</p>')
    parts.append(_table(head, body, cls="calibration", row_classes=row_classes))
    if "reliability" in figures:
        parts.append(_img(figures["reliability"][1], "reliability diagram of each model"))
    parts.append("</section>")

    head, body = cost_table(report)
    parts.append('<section id="cost"><h2>Cost</h2>')
    parts.append(_table(head, body, cls="cost"))
    parts.append(f'<p class="small">{escape(machine_text(report))}</p></section>')

    parts.append('<section id="pairwise"><h2>Pairwise McNemar exact tests</h2>')
    if report.pairwise:
        head, body = pairwise_table(report)
        parts.append(_table(head, body, cls="pairwise"))
        parts.append(f'<p class="small">{escape(pairwise_text(report))}</p>')
    else:
        parts.append("<p>One model: nothing to test.</p>")
    parts.append("</section>")

    if "per_class_f1" in figures:
        parts.append('<section id="per-class-f1"><h2>Per-class F1</h2>')
        parts.append(_img(figures["per_class_f1"][1], "per-class F1 of each model"))
        parts.append("</section>")
    return parts


def _html_model(
    report: ComparisonReport,
    r: ModelResult,
    slug: str,
    figures: Mapping[str, tuple[str, bytes]],
    thumbnails: _gallery.ThumbnailBudget,
) -> list[str]:
    """One model's section: its outputs, classification report, confusion matrix, gallery."""
    name = r.name
    parts = [f'<section class="model" id="model-{escape(slug)}">']
    parts.append(f"<h2>{escape(name)}</h2>")
    if r.output:
        parts.append(f"<p>Outputs: {escape(r.output)}.</p>")
    parts.append("<h3>Classification report</h3>")
    parts.append(_classification_table(r))
    parts.append(
        "<details><summary>scikit-learn's text</summary>"
        f"<pre>{escape(r.classification_report)}</pre></details>"
    )
    parts.append("<h3>Confusion matrix</h3>")
    parts.append(
        '<p class="small">Rows: true class; columns: predicted class; count and share of '
        "the true class.</p>"
    )
    head, body = confusion_table(report, r)
    parts.append(_table(head, body, cls="confusion", attrs=f' data-model="{escape(name)}"'))
    if f"confusion:{name}" in figures:
        parts.append(_img(figures[f"confusion:{name}"][1], f"confusion matrix of {name}"))
    parts.append(f"<p>Most confused: {escape(confused_text(r))}</p>")
    parts.append(_gallery.gallery_html(report, r, thumbnails))
    if f"training:{name}" in figures:
        parts.append("<h3>Training history</h3>")
        parts.append(_img(figures[f"training:{name}"][1], f"training curves of {name}"))
    if r.notes:
        parts.append("<ul class='notes'>")
        parts += [f"<li>{escape(n)}</li>" for n in r.notes]
        parts.append("</ul>")
    parts.append("</section>")
    return parts


def figures(report: ComparisonReport) -> dict[str, tuple[str, bytes]]:
    """Render every plot: key -> (file name, PNG bytes)."""
    from tlkit.compare import _plots  # matplotlib, only when a plot is drawn

    out: dict[str, tuple[str, bytes]] = {}
    slugs = unique_slugs(list(report.models))
    out["metrics"] = ("metrics.png", _plots.metrics_png(report))
    out["per_class_f1"] = ("per_class_f1.png", _plots.per_class_f1_png(report))
    reliability = _plots.reliability_png(report)
    if reliability is not None:
        out["reliability"] = ("reliability.png", reliability)
    for name, r in report.models.items():
        out[f"confusion:{name}"] = (
            f"confusion_{slugs[name]}.png",
            _plots.confusion_png(r, report.class_names),
        )
        if r.history:
            out[f"training:{name}"] = (
                f"training_{slugs[name]}.png",
                _plots.training_png(r.name, r.history),
            )
    return out


def save(report: ComparisonReport, directory: str | os.PathLike[str]) -> list[Path]:
    """Write the plots and the three reports into ``directory``; return the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(report)
    written = []
    for fname, png in figs.values():
        path = atomic_write_bytes(out / fname, png)
        written.append(path)
    images = {key: fname for key, (fname, _) in figs.items()}
    for fname, text in (
        ("report.md", render_markdown(report, images)),
        ("report.json", report.to_json() + "\n"),
        ("report.html", render_html(report, figs)),
    ):
        path = atomic_write_text(out / fname, text)
        written.append(path)
    return written
