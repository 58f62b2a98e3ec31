"""Plots of a comparison, drawn with matplotlib's object API (Agg canvas, no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tlkit.compare import _format
from tlkit.compare._format import CI_KEYS, history_plan
from tlkit.metrics import METRIC_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport, ModelResult

__all__ = ["confusion_png", "metrics_png", "per_class_f1_png", "reliability_png", "training_png"]

_DPI = 110
_BASELINE_COLOR = "#9e9e9e"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" metadata: the same report gives byte-identical PNGs across matplotlib versions.
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()


def _text(s: str) -> str:
    """User text shown literally: a ``$`` would otherwise start matplotlib's mathtext."""
    return str(s).replace("$", r"\$")


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def confusion_png(result: ModelResult, class_names: Sequence[str]) -> bytes:
    """Confusion matrix: colour is the share of the true class, text the count and share."""
    k = len(class_names)
    side = max(3.8, 0.75 * k + 2.4)
    fig = _new_figure(side + 0.9, side)
    ax = fig.add_subplot()
    norm = result.confusion_normalized
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fontsize = 10 if k <= 6 else 8 if k <= 12 else 6
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{int(result.confusion[i, j])}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    supports = result.confusion.sum(axis=1)
    # Tilt the column names when they would collide: many classes, or long names.
    tilt = k > 4 or sum(len(_text(c)) for c in class_names) > 8 * k
    ax.set_xticks(
        range(k),
        [_text(c) for c in class_names],
        rotation=45 if tilt else 0,
        ha="right" if tilt else "center",
    )
    ax.set_yticks(
        range(k), [f"{_text(c)} (n={int(n)})" for c, n in zip(class_names, supports, strict=True)]
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{_text(result.name)}: confusion matrix")
    return _png(fig)


def metrics_png(report: ComparisonReport) -> bytes:
    """Accuracy, balanced accuracy and macro-F1 per model, with their bootstrap intervals."""
    rows = report.rows
    n = len(rows)
    width = 0.8 / n
    fig = _new_figure(max(6.0, 1.1 * n + 4.0), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(CI_KEYS))
    for i, r in enumerate(rows):
        est = np.array([np.nan if r.metrics[m] is None else r.metrics[m] for m in CI_KEYS], float)
        err = np.zeros((2, len(CI_KEYS)))
        for j, m in enumerate(CI_KEYS):
            if m in r.ci and np.isfinite(r.ci[m].low):
                err[0, j] = max(0.0, est[j] - r.ci[m].low)
                err[1, j] = max(0.0, r.ci[m].high - est[j])
        baseline = r.kind == "baseline"
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            est,
            width,
            yerr=err,
            capsize=4,
            label=_text(r.name),
            color=_BASELINE_COLOR if baseline else _color(i - 1),
            hatch="//" if baseline else None,
            edgecolor="white" if baseline else None,
        )
    base_bal = report.baseline.metrics["balanced_accuracy"]
    if base_bal is not None:
        ax.axhline(base_bal, color="#444444", lw=1, ls="--", label="baseline balanced accuracy")
    ax.set_xticks(x, [METRIC_LABELS[m] for m in CI_KEYS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score on the test set")
    ci = report.settings.get("confidence", 0.95)
    ax.set_title(
        f"Metrics with {ci:.0%} bootstrap intervals" if report.settings.get("n_boot") else "Metrics"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def per_class_f1_png(report: ComparisonReport) -> bytes:
    """F1 of each class for each model; classes too small to judge have red labels."""
    models = list(report.models.values())
    k = len(report.class_names)
    supports = report.supports
    n = max(1, len(models))
    width = 0.8 / n
    fig = _new_figure(max(6.0, 0.9 * k * max(1, n) / 2 + 4.0), 4.2)
    ax = fig.add_subplot()
    x = np.arange(k)
    for i, r in enumerate(models):
        f1 = [row["f1"] for row in r.per_class]
        ax.bar(x - 0.4 + width * (i + 0.5), f1, width, label=_text(r.name), color=_color(i))
    ax.set_xticks(
        x, [f"{_text(c)}\n(n={int(s)})" for c, s in zip(report.class_names, supports, strict=True)]
    )
    min_support = report.settings.get("min_support", 0)
    for tick, s in zip(ax.get_xticklabels(), supports, strict=True):
        if s < min_support:
            tick.set_color("#c62828")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 on the test set")
    ax.set_title("Per-class F1")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def reliability_png(report: ComparisonReport) -> bytes | None:
    """Reliability diagrams: one panel per model with probabilities (None when there is none).

    Per confidence bin, a bar at the accuracy of the predictions in it; the diagonal is
    perfect calibration, bars below it are over-confident. Bin sizes are written on the bars.
    """
    models = [r for r in report.models.values() if r.reliability is not None]
    if not models:
        return None
    ncols = min(3, len(models))
    nrows = -(-len(models) // ncols)
    fig = _new_figure(3.6 * ncols, 3.5 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, (ax, r) in enumerate(zip(axes, models, strict=False)):
        rel = r.reliability
        assert rel is not None
        edges = rel.edges
        width = edges[1] - edges[0]
        centers = edges[:-1] + width / 2
        acc = np.array([np.nan if a is None else a for a in rel.accuracy], float)
        conf = np.array([np.nan if c is None else c for c in rel.confidence], float)
        ax.plot([0, 1], [0, 1], color="#444444", lw=1, ls="--", label="perfect calibration")
        ax.bar(centers, np.nan_to_num(acc), width * 0.9, color=_color(i), label="accuracy")
        ax.plot(conf, conf, "o", ms=3, color="#222222", label="mean confidence")
        for x, a, n in zip(centers, acc, rel.counts, strict=True):
            if n:
                ax.text(x, min(1.0, a) + 0.02, str(n), ha="center", va="bottom", fontsize=6)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("confidence (top-label probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{_text(r.name)}: ECE {rel.ece:.3f}", fontsize=10)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    for ax in axes[len(models) :]:
        ax.set_visible(False)
    return _png(fig)


def _thin(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers and values, at most ``MAX_HISTORY_POINTS`` of them (first and last kept)."""
    epochs = np.arange(1, vals.size + 1)
    cap = max(2, _format.MAX_HISTORY_POINTS)
    if vals.size <= cap:
        return epochs, vals
    idx = np.unique(np.linspace(0, vals.size - 1, cap).round().astype(np.int64))
    return epochs[idx], vals[idx]


def training_png(name: str, history: dict[str, list[float]]) -> bytes:
    """Training curves: one panel per metric, training solid and validation dashed.

    At most the panels :func:`~tlkit.compare._format.history_plan` chooses, and at most
    ``MAX_HISTORY_POINTS`` points per curve (the report's notes say what was left out).
    """
    bases, _ = history_plan(history)
    ncols = min(3, len(bases))
    nrows = -(-len(bases) // ncols)
    fig = _new_figure(4.0 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, base in zip(axes, bases, strict=False):
        for key, style in ((base, "-"), (f"val_{base}", "--")):
            if key in history and len(history[key]):
                epochs, vals = _thin(np.asarray(history[key], dtype=float))
                ax.plot(
                    epochs,
                    vals,
                    style,
                    color=_PALETTE[0],
                    marker="o",
                    ms=3,
                    label=_text(key),
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(_text(base))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(bases) :]:
        ax.set_visible(False)
    fig.suptitle(f"{_text(name)}: training history")
    return _png(fig)
