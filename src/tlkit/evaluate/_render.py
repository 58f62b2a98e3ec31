"""Rendering CV results and learning curves: JSON-ready dicts, Markdown, HTML and a plot.

User text (class names, file paths, messages) is escaped where it is shown:
:func:`html.escape` in HTML, :func:`md_text` in Markdown, and ``$`` (which
would start mathtext) in plot labels.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit.metrics import CI_METRICS, METRIC_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.evaluate._curve import LearningCurve
    from tlkit.evaluate._cv import CVResult

__all__ = ["curve_html", "curve_markdown", "curve_png", "cv_dict", "cv_markdown", "md_text"]

CV_SCHEMA = "tlkit.cv/1"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!])")


def md_text(text: Any) -> str:
    """Text shown literally in Markdown (and in a table cell): specials escaped, one line.

    Examples
    --------
    >>> md_text("a|b <img> *x*")
    'a\\\\|b \\\\<img\\\\> \\\\*x\\\\*'
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


def _fmt(v: Any, digits: int = 3) -> str:
    return "—" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# -- cross-validation --------------------------------------------------------------------------


def cv_dict(r: CVResult, *, include_predictions: bool = True) -> dict[str, Any]:
    """The JSON-ready form of a :class:`~tlkit.evaluate.CVResult`."""
    from tlkit._version import __version__

    d: dict[str, Any] = {
        "schema": CV_SCHEMA,
        "tlkit_version": __version__,
        "root": str(r.root),
        "class_names": list(r.class_names),
        "n": len(r.paths),
        "folds": r.folds,
        "repeats": r.repeats,
        "seed": r.seed,
        "params": _clean(r.params),
        "skipped": [{"path": s.path, "reason": s.reason} for s in r.skipped],
        "warnings": list(r.warnings),
        "pooled": {
            "metrics": _clean(r.pooled_metrics),
            "intervals": {
                k: _clean({"estimate": ci.estimate, "low": ci.low, "high": ci.high})
                for k, ci in r.intervals.items()
            },
            "confidence": r.confidence,
            "n_boot": r.n_boot,
        },
        "fold_summary": _clean(r.fold_summary()),
        "fold_results": _clean(list(r.fold_results)),
        "train_time_s": _clean(r.train_time_s),
    }
    if include_predictions:
        probs = r.oof_probabilities
        d["predictions"] = [
            {
                "path": p,
                "label": r.class_names[int(r.y_true[i])],
                "fold": [int(f) for f in r.fold[:, i]],
                "probabilities": [round(float(x), 6) for x in probs[i]],
            }
            for i, p in enumerate(r.paths)
        ]
    return d


def cv_markdown(r: CVResult) -> str:
    """A Markdown summary of a CV result: pooled metrics with intervals, then per fold."""
    reps = f", {r.repeats} repeats" if r.repeats > 1 else ""
    lines = [
        f"## Cross-validation: {r.folds} folds{reps}, seed {r.seed}",
        "",
        f"{len(r.paths)} images in {len(r.class_names)} classes, each predicted by a model that "
        f"did not train on it; {len(r.skipped)} file(s) skipped.",
        "",
    ]
    lines += [f"- warning: {md_text(w)}" for w in r.warnings]
    if r.warnings:
        lines.append("")
    summary = r.fold_summary()
    conf = f"{r.confidence:.0%} CI"
    rows = []
    for k in CI_METRICS:
        ci = r.intervals[k]
        s = summary[k]
        rows.append(
            [
                METRIC_LABELS[k],
                _fmt(ci.estimate),
                f"[{_fmt(ci.low)}, {_fmt(ci.high)}]",
                f"{_fmt(s['mean'])} ± {_fmt(s['std'])}",
            ]
        )
    lines += _table(["metric", "pooled", conf, "per fold (mean ± sd)"], rows)
    lines += ["", "### Folds", ""]
    rows = [
        [
            str(f["repeat"]),
            str(f["fold"]),
            str(f["n_train"]),
            str(f["n_val"]),
            str(f["n_test"]),
            *(_fmt(f["metrics"][k]) for k in CI_METRICS),
            f"{f['train_time_s']:.1f} s",
        ]
        for f in r.fold_results
    ]
    head = ["repeat", "fold", "train", "val", "test", *(METRIC_LABELS[k] for k in CI_METRICS)]
    lines += _table([*head, "training time"], rows)
    return "\n".join(lines) + "\n"


# -- learning curves ---------------------------------------------------------------------------


def _curve_rows(c: LearningCurve) -> tuple[list[str], list[list[str]]]:
    head = ["training images", "fraction", METRIC_LABELS[c.metric], f"{c.confidence:.0%} CI"]
    head.append("fitted")
    rows = []
    for p in c.points:
        ci = p.intervals.get(c.metric)
        rows.append(
            [
                str(p.n_train),
                f"{p.fraction:g}",
                _fmt(p.metrics.get(c.metric)),
                "—" if ci is None else f"[{_fmt(ci.low)}, {_fmt(ci.high)}]",
                _fmt(c.fit.predict(p.n_train)) if c.fit.ok else "—",
            ]
        )
    return head, rows


def _fit_text(c: LearningCurve) -> str:
    f = c.fit
    if not f.ok:
        return f"power-law fit failed: {f.reason}"
    text = (
        f"fit: {c.metric}(n) = {f.a:.3f} - {f.b:.3g} * n^(-{f.c:.3f}) "
        f"(RMSE {f.rmse:.3f} over {len(f.n)} points)"
    )
    return text + (f"; {f.reason}" if f.reason else "")


def curve_markdown(c: LearningCurve, image: str | None = None) -> str:
    """A Markdown section for a learning curve."""
    lines = [
        "## Learning curve",
        "",
        md_text(c.sentence),
        "",
        f"Scored on the same {c.n_scored} {c.scored_on} images at every point; "
        f"{md_text(_fit_text(c))}.",
        "",
    ]
    if image:
        lines += [f"![{METRIC_LABELS[c.metric]} against training images]({image})", ""]
    head, rows = _curve_rows(c)
    lines += _table(head, rows)
    lines += [""] + [f"- warning: {md_text(w)}" for w in c.warnings]
    return "\n".join(lines).rstrip() + "\n"


def curve_html(c: LearningCurve) -> str:
    """A self-contained HTML section for a learning curve (escaped text, embedded PNG)."""
    e = html.escape
    png = base64.b64encode(curve_png(c)).decode("ascii")
    head, rows = _curve_rows(c)
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in row) + "</tr>" for row in rows)
        + "</tbody></table>"
    )
    warn = "".join(f"<li>{e(w)}</li>" for w in c.warnings)
    classes = ", ".join(e(n) for n in c.class_names)
    return (
        '<section class="tlkit-learning-curve">\n<h2>Learning curve</h2>\n'
        f"<p><strong>{e(c.sentence)}</strong></p>\n"
        f"<p>Scored on the same {c.n_scored} {e(c.scored_on)} images at every point "
        f"(classes: {classes}); {e(_fit_text(c))}.</p>\n"
        f'<img src="data:image/png;base64,{png}" '
        f'alt="{e(METRIC_LABELS[c.metric])} against training images">\n'
        f"{table}\n" + (f"<ul>{warn}</ul>\n" if warn else "") + "</section>"
    )


def curve_png(c: LearningCurve) -> bytes:
    """The metric against training images: points with interval bars, the fit, its extrapolation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ns = np.asarray(c.n_train, dtype=float)
    ys = np.asarray(c.values, dtype=float)
    lows = np.asarray([p.intervals[c.metric].low for p in c.points], dtype=float)
    highs = np.asarray([p.intervals[c.metric].high for p in c.points], dtype=float)
    err = np.vstack([np.clip(ys - lows, 0, None), np.clip(highs - ys, 0, None)])
    err = np.where(np.isfinite(err), err, 0.0)
    label = METRIC_LABELS[c.metric]
    ax.errorbar(
        ns, ys, yerr=err, fmt="o", color="#1f77b4", capsize=4,
        label=f"{label} on {c.n_scored} {c.scored_on} images ({c.confidence:.0%} CI)",
    )  # fmt: skip
    if c.fit.ok:
        top = float(ns.max())
        inside = np.linspace(float(ns.min()), top, 100)
        beyond = np.linspace(top, 2 * top, 50)
        ax.plot(inside, c.fit.predict(inside), color="#ff7f0e", label="power-law fit")
        ax.plot(
            beyond, c.fit.predict(beyond), color="#ff7f0e", linestyle="--",
            label="extrapolation (twice the data)",
        )  # fmt: skip
        ax.plot([2 * top], [c.fit.predict(2 * top)], marker="o", color="#ff7f0e", fillstyle="none")
    ax.set_xlabel("training images")
    ax.set_ylabel(label)
    ax.set_title(f"Learning curve: {label}".replace("$", r"\$"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()
