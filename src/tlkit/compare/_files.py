"""Writing a comparison report to a folder: the plots, ``report.md``, ``report.json``, ``report.html``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tlkit._atomic import atomic_write_bytes, atomic_write_text
from tlkit.compare._format import unique_slugs
from tlkit.compare._html import render_html
from tlkit.compare._markdown import render_markdown

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport

__all__ = ["figures", "save"]


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
