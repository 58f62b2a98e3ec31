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
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._escape import md_cell

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ModelResult

__all__ = [
    "BASELINE_NAME",
    "CI_KEYS",
    "MAX_HISTORY_EXTRA_PANELS",
    "MAX_HISTORY_POINTS",
    "SCHEMA",
    "STANDARD_HISTORY",
    "ci_metric",
    "clean",
    "fmt",
    "fmt_bytes",
    "fmt_ms",
    "fmt_p",
    "fmt_s",
    "history_note",
    "history_plan",
    "md_table",
    "unique_slugs",
]

#: Identifier and version of the JSON layout written by ``ComparisonReport.to_json``.
SCHEMA = "tlkit.comparison/3"

#: Name of the majority-class baseline row.
BASELINE_NAME = "majority-class baseline"

#: Metrics that get bootstrap intervals, in report order.
CI_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


def ci_metric(r: ModelResult, key: str) -> float:
    """A metric of :data:`CI_KEYS` of a model: every model has them (never None)."""
    v = r.metrics[key]
    if v is None:  # pragma: no cover - CI_METRICS always give a float
        raise ValueError(f"model {r.name!r} has no {key}")
    return v


#: Metrics whose training curves are always drawn (each with its ``val_`` pair).
STANDARD_HISTORY = ("loss", "accuracy")

#: Panels of training curves drawn per model besides :data:`STANDARD_HISTORY`, in history
#: order; the other metrics are left out of the plot, and a note in the report names them
#: (report.json keeps every value). Default 4. A model file can carry any number of history
#: keys, and each panel costs drawing time: 600 keys took minutes.
MAX_HISTORY_EXTRA_PANELS = 4

#: Points drawn per training curve (default 500): a longer history is thinned evenly, its
#: first and last epochs kept, and the report says so.
MAX_HISTORY_POINTS = 500


def history_plan(history: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Which metrics of a training history get a panel, and which are left out.

    A panel shows a metric and its ``val_`` pair; ``learning_rate`` has none unless it is all
    there is. :data:`STANDARD_HISTORY` always get one, then at most
    :data:`MAX_HISTORY_EXTRA_PANELS` others, in the order of the history.

    Examples
    --------
    >>> history_plan({"loss": [1], "val_loss": [1], "learning_rate": [1], "auc": [1]})
    (['loss', 'auc'], [])
    >>> shown, left = history_plan({f"m{i}": [1] for i in range(9)} | {"loss": [1]})
    >>> shown, left
    (['m0', 'm1', 'm2', 'm3', 'loss'], ['m4', 'm5', 'm6', 'm7', 'm8'])
    """
    bases: list[str] = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    bases = [b for b in bases if b != "learning_rate"] or bases
    extra = [b for b in bases if b not in STANDARD_HISTORY]
    keep = set(STANDARD_HISTORY) | set(extra[:MAX_HISTORY_EXTRA_PANELS])
    return [b for b in bases if b in keep], [b for b in bases if b not in keep]


def history_note(history: dict[str, Any] | None) -> str | None:
    """What the training-curve plot leaves out of ``history``, as a report note (None: nothing)."""
    if not history:
        return None
    parts = []
    _, left = history_plan(history)
    if left:
        named = ", ".join(repr(b) for b in left[:5])
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        parts.append(
            f"{len(left)} metric(s) left out ({named}{more}): at most "
            f"{MAX_HISTORY_EXTRA_PANELS} besides {' and '.join(STANDARD_HISTORY)}"
        )
    longest = max((len(v) for v in history.values()), default=0)
    if longest > MAX_HISTORY_POINTS:
        parts.append(f"curves thinned to {MAX_HISTORY_POINTS} of {longest} epochs")
    if not parts:
        return None
    return "training-curve plot: " + "; ".join(parts) + " (report.json has every value)"


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
