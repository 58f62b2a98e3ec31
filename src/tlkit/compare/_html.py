"""Self-contained HTML rendering of a ComparisonReport (plots embedded as base64 PNG)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

from tlkit.compare import _gallery, _tables
from tlkit.compare._format import SCHEMA, unique_slugs

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport, ModelResult

__all__ = ["render_html"]

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
    parts.append(
        f'<section id="test-set"><h2>Test set</h2><p>{escape(_tables.testset_text(report))}</p></section>'
    )

    head, body = _tables.metrics_table(report)
    row_classes = ["baseline" if r.kind == "baseline" else "" for r in report.rows]
    parts.append('<section id="metrics"><h2>Metrics</h2>')
    parts.append(f'<p class="small">{escape(_tables.ci_text(report))}</p>')
    parts.append(_table(head, body, cls="metrics", row_classes=row_classes))
    if "metrics" in figures:
        parts.append(_img(figures["metrics"][1], "metrics with bootstrap intervals"))
    parts.append("</section>")

    head, body = _tables.calibration_table(report)
    parts.append('<section id="calibration"><h2>Calibration</h2>')
    parts.append(f'<p class="small">{escape(_tables.calibration_text(report))}</p>')
    parts.append(_table(head, body, cls="calibration", row_classes=row_classes))
    if "reliability" in figures:
        parts.append(_img(figures["reliability"][1], "reliability diagram of each model"))
    parts.append("</section>")

    head, body = _tables.cost_table(report)
    parts.append('<section id="cost"><h2>Cost</h2>')
    parts.append(_table(head, body, cls="cost"))
    parts.append(f'<p class="small">{escape(_tables.machine_text(report))}</p></section>')

    parts.append('<section id="pairwise"><h2>Pairwise McNemar exact tests</h2>')
    if report.pairwise:
        head, body = _tables.pairwise_table(report)
        parts.append(_table(head, body, cls="pairwise"))
        parts.append(f'<p class="small">{escape(_tables.pairwise_text(report))}</p>')
    else:
        parts.append("<p>One model: nothing to test.</p>")
    parts.append("</section>")

    if "per_class_f1" in figures:
        parts.append('<section id="per-class-f1"><h2>Per-class F1</h2>')
        parts.append(_img(figures["per_class_f1"][1], "per-class F1 of each model"))
        parts.append("</section>")

    slugs = unique_slugs(list(report.models))
    thumbnails = _gallery.ThumbnailBudget()  # one budget for the page's thumbnails
    for name, r in report.models.items():
        parts.append(f'<section class="model" id="model-{escape(slugs[name])}">')
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
        head, body = _tables.confusion_table(report, r)
        parts.append(_table(head, body, cls="confusion", attrs=f' data-model="{escape(name)}"'))
        if f"confusion:{name}" in figures:
            parts.append(_img(figures[f"confusion:{name}"][1], f"confusion matrix of {name}"))
        parts.append(f"<p>Most confused: {escape(_tables.confused_text(r))}</p>")
        parts.append(_gallery.gallery_html(report, r, thumbnails))
        if f"training:{name}" in figures:
            parts.append("<h3>Training history</h3>")
            parts.append(_img(figures[f"training:{name}"][1], f"training curves of {name}"))
        if r.notes:
            parts.append("<ul class='notes'>")
            parts += [f"<li>{escape(n)}</li>" for n in r.notes]
            parts.append("</ul>")
        parts.append("</section>")
    parts.append(f'<footer class="small"><p>Made by tlkit; schema {escape(SCHEMA)}.</p></footer>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
