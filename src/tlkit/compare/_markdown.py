"""Markdown rendering of a comparison report (GitHub-flavoured, warnings first).

Every text that can hold a class or model name goes through :func:`tlkit._escape.md_text`
(tables through :func:`~tlkit.compare._format.md_table`, pre-formatted text through
:func:`tlkit._escape.md_fence`): a name shows as written and never becomes HTML or markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tlkit._escape import md_fence, md_text
from tlkit.compare import _gallery, _tables
from tlkit.compare._format import md_table

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport

__all__ = ["render_markdown"]


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
    lines += ["## Test set", "", md_text(_tables.testset_text(report)), ""]
    lines += ["## Metrics", ""]
    lines += [_tables.ci_text(report), ""]  # numbers and fixed words only
    lines += md_table(*_tables.metrics_table(report))
    lines += [""]
    if images and "metrics" in images:
        lines += [f"![metrics with intervals]({images['metrics']})", ""]
    lines += ["## Calibration", ""]
    lines += [_tables.calibration_text(report), ""]  # numbers and fixed words only
    lines += md_table(*_tables.calibration_table(report))
    lines += [""]
    if images and "reliability" in images:
        lines += [f"![reliability diagrams]({images['reliability']})", ""]
    lines += ["## Cost", ""]
    lines += md_table(*_tables.cost_table(report))
    lines += ["", _tables.machine_text(report), ""]  # this machine, not user input
    lines += ["## Pairwise McNemar exact tests", ""]
    if report.pairwise:
        lines += md_table(*_tables.pairwise_table(report))
        lines += ["", _tables.pairwise_text(report), ""]  # numbers and fixed words only
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
        lines += md_table(*_tables.confusion_table(report, r))
        lines += [""]
        if images and f"confusion:{r.name}" in images:
            alt = md_text(f"confusion matrix of {r.name}", brackets=True)
            lines += [f"![{alt}]({images[f'confusion:{r.name}']})", ""]
        lines += ["Most confused: " + md_text(_tables.confused_text(r)), ""]
        lines += _gallery.gallery_markdown(report, r)
        if images and f"training:{r.name}" in images:
            alt = md_text(f"training curves of {r.name}", brackets=True)
            lines += [f"![{alt}]({images[f'training:{r.name}']})", ""]
        for note in r.notes:
            lines += [f"- note: {md_text(note)}"]
        if r.notes:
            lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"
