"""Labels and formatting shared by the report, its renderers and its plots: one place for each.

Examples
--------
>>> fmt_bytes(2_600_000), fmt_s(312.5), fmt_p(0.0002)
('2.6 MB', '5 min 12 s', '2.0e-04')
>>> unique_slugs(["cnn v2", "cnn/v2", "Net|1"])
{'cnn v2': 'cnn_v2', 'cnn/v2': 'cnn_v2-2', 'Net|1': 'Net_1'}
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tlkit._escape import md_cell

__all__ = [
    "BASELINE_NAME",
    "CI_KEYS",
    "METRIC_LABELS",
    "SCHEMA",
    "clean",
    "fmt",
    "fmt_bytes",
    "fmt_ms",
    "fmt_p",
    "fmt_s",
    "md_table",
    "unique_slugs",
]

#: Identifier and version of the JSON layout written by ``ComparisonReport.to_json``.
SCHEMA = "tlkit.comparison/1"

#: Name of the majority-class baseline row.
BASELINE_NAME = "majority-class baseline"

#: Metrics that get bootstrap intervals, in report order.
CI_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")

#: Display names of the scalar metrics, in report order.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
    "weighted_f1": "weighted-F1",
    "mcc": "MCC",
    "cohen_kappa": "Cohen's kappa",
    "top_k_accuracy": "top-k accuracy",
    "log_loss": "log loss",
    "roc_auc_ovr": "ROC-AUC (OvR)",
}


def clean(v: Any) -> Any:
    """Make a value JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def fmt(v: float | None, digits: int = 3) -> str:
    """A metric with ``digits`` decimals; ``—`` when undefined."""
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def fmt_p(p: float) -> str:
    """A p-value: three decimals, or scientific notation below 0.001."""
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}"


def fmt_bytes(n: int | None) -> str:
    """A size in B, kB, MB or GB (powers of 1000)."""
    if n is None:
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def fmt_ms(v: float | None) -> str:
    """Milliseconds, three significant digits."""
    if v is None:
        return "—"
    return f"{v:.3g} ms"


def fmt_s(v: float | None) -> str:
    """A duration: seconds below a minute, else minutes and seconds, or hours and minutes."""
    if v is None:
        return "—"
    if v < 60:
        return f"{v:.3g} s"
    minutes, seconds = divmod(round(v), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def md_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table, first column left-aligned.

    Every cell goes through :func:`tlkit._escape.md_cell`: names stay literal text and a
    row keeps its columns whatever they hold.
    """
    lines = ["| " + " | ".join(md_cell(h) for h in head) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in body]
    return lines


def unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """File-name-safe, unique (also ignoring case) versions of model names."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
        slug, i = base, 2
        while slug.lower() in used:
            slug, i = f"{base}-{i}", i + 1
        used.add(slug.lower())
        out[name] = slug
    return out
