"""Markdown rendering of a comparison report (GitHub-flavoured, warnings first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tlkit.compare import _tables
from tlkit.compare._format import md_escape, md_table

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport

__all__ = ["render_markdown"]


def _warnings_md(warnings: Sequence[str]) -> list[str]:
    if not warnings:
        return ["## Warnings", "", "None.", ""]
    lines = [f"## ⚠ Warnings ({len(warnings)})", ""]
    lines += [f"{i}. **{md_escape(w)}**" for i, w in enumerate(warnings, 1)]
    return [*lines, ""]


def render_markdown(report: ComparisonReport, images: Mapping[str, str] | None = None) -> str:
    """Return the report as Markdown; ``images`` maps plot keys to the PNG files to link."""
    lines = ["# Model comparison", ""]
    lines += _warnings_md(report.warnings)
    if report.verdict:
        lines += [f"**Verdict.** {md_escape(report.verdict)}", ""]
    lines += ["## Test set", "", _tables.testset_text(report), ""]
    lines += ["## Metrics", ""]
    lines += [_tables.ci_text(report), ""]
    lines += md_table(*_tables.metrics_table(report))
    lines += [""]
    if images and "metrics" in images:
        lines += [f"![metrics with intervals]({images['metrics']})", ""]
    lines += ["## Cost", ""]
    lines += md_table(*_tables.cost_table(report))
    lines += ["", _tables.machine_text(report), ""]
    lines += ["## Pairwise McNemar exact tests", ""]
    if report.pairwise:
        lines += md_table(*_tables.pairwise_table(report))
        lines += ["", _tables.pairwise_text(report), ""]
    else:
        lines += ["One model: nothing to test.", ""]
    if images and "per_class_f1" in images:
        lines += ["## Per-class F1", "", f"![per-class F1]({images['per_class_f1']})", ""]
    for r in report.models.values():
        lines += [f"## {md_escape(r.name)}", ""]
        if r.output:
            lines += [f"Outputs: {r.output}.", ""]
        lines += ["scikit-learn classification report:", "", "```text"]
        lines += [r.classification_report.rstrip("\n"), "```", ""]
        lines += [
            "Confusion matrix (rows: true class, columns: predicted class; "
            "count and share of the true class):",
            "",
        ]
        lines += md_table(*_tables.confusion_table(report, r))
        lines += [""]
        if images and f"confusion:{r.name}" in images:
            lines += [f"![confusion matrix of {r.name}]({images[f'confusion:{r.name}']})", ""]
        lines += ["Most confused: " + _tables.confused_text(r), ""]
        if images and f"training:{r.name}" in images:
            lines += [f"![training curves of {r.name}]({images[f'training:{r.name}']})", ""]
        for note in r.notes:
            lines += [f"- note: {md_escape(note)}"]
        if r.notes:
            lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"
