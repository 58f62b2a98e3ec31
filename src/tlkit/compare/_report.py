"""ComparisonReport: the results of a comparison, as Markdown, JSON, HTML and PNG files."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlkit.compare._metrics import METRIC_LABELS
from tlkit.compare._stats import BootstrapCI, McNemarResult

__all__ = ["SCHEMA", "ComparisonReport", "Cost", "ModelResult", "PairwiseResult"]

#: Identifier and version of the JSON layout written by :meth:`ComparisonReport.to_json`.
SCHEMA = "tlkit.comparison/1"

#: Name of the majority-class baseline row.
BASELINE_NAME = "majority-class baseline"

#: Metrics that get bootstrap intervals, in report order.
CI_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass(frozen=True)
class Cost:
    """What a model costs to keep and to run.

    Attributes
    ----------
    params : int or None
        Number of parameters (``model.count_params()``).
    keras_bytes : int or None
        Size of the model saved as a ``.keras`` file.
    tflite_bytes : int or None
        Size of the exported ``.tflite`` file, when one was given.
    latency_ms_batch1, latency_ms_batch32 : float or None
        Mean milliseconds per image when predicting batches of 1 and of 32
        images on the machine that ran the comparison (median of several timed
        runs after a warm-up run).
    train_time_s : float or None
        Training time in seconds, from a FineTuner's ``train_time_s``.
    predict_time_s : float or None
        Seconds spent in the model predicting the whole test set (the first
        batch includes tracing; input decoding not included).
    """

    params: int | None = None
    keras_bytes: int | None = None
    tflite_bytes: int | None = None
    latency_ms_batch1: float | None = None
    latency_ms_batch32: float | None = None
    train_time_s: float | None = None
    predict_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the cost as a JSON-ready dict."""
        return {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class ModelResult:
    """Everything measured for one model (or for the baseline).

    Attributes
    ----------
    name : str
    kind : {"baseline", "keras", "exported", "predictions"}
        Where the predictions came from.
    y_pred : numpy.ndarray of int
        Predicted class indices, in test-set order.
    y_prob : numpy.ndarray of float or None
        Class probabilities, shape ``(n, K)``.
    metrics : dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``weighted_f1``,
        ``mcc``, ``cohen_kappa``, ``top_k_accuracy``, ``log_loss``,
        ``roc_auc_ovr``; ``None`` where not computed or undefined.
    ci : dict of BootstrapCI
        Intervals of ``accuracy``, ``balanced_accuracy`` and ``macro_f1``
        (empty with ``n_boot=0``).
    top_k : int
        ``k`` of ``top_k_accuracy``.
    per_class : list of dict
        ``class``, ``precision``, ``recall``, ``f1``, ``support`` per class.
    averages : dict
        scikit-learn's ``"macro avg"`` and ``"weighted avg"`` rows.
    classification_report : str
        :func:`sklearn.metrics.classification_report`'s text.
    confusion, confusion_normalized : numpy.ndarray
        Confusion matrix (rows: true class, columns: predicted class) in counts
        and as shares of each true class.
    most_confused : list of dict
        Off-diagonal cells, largest first: ``true``, ``predicted``, ``count``,
        ``share_of_true``.
    never_predicted : tuple of str
        Classes the model never predicts.
    cost : Cost
    history : dict or None
        Training history: metric name -> one value per epoch.
    output : str or None
        How the model's outputs were read (probabilities, logits, ...).
    notes : tuple of str
        Undefined metrics and costs that could not be measured, with why.
    """

    name: str
    kind: str
    y_pred: np.ndarray
    y_prob: np.ndarray | None
    metrics: dict[str, float | None]
    ci: dict[str, BootstrapCI]
    top_k: int
    per_class: list[dict[str, Any]]
    averages: dict[str, dict[str, float]]
    classification_report: str
    confusion: np.ndarray
    confusion_normalized: np.ndarray
    most_confused: list[dict[str, Any]]
    never_predicted: tuple[str, ...]
    cost: Cost = field(default_factory=Cost)
    history: dict[str, list[float]] | None = None
    output: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self, *, include_predictions: bool = True) -> dict[str, Any]:
        """Return the result as a JSON-ready dict (the ``models`` entries of the schema)."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "metrics": {k: _clean(v) for k, v in self.metrics.items()},
            "ci": {k: [_clean(c.low), _clean(c.high)] for k, c in self.ci.items()},
            "top_k": self.top_k,
            "per_class": [{k: _clean(v) for k, v in row.items()} for row in self.per_class],
            "averages": {
                k: {m: _clean(v) for m, v in row.items()} for k, row in self.averages.items()
            },
            "classification_report": self.classification_report,
            "confusion_matrix": self.confusion.astype(int).tolist(),
            "confusion_matrix_normalized": [
                [_clean(float(v)) for v in row] for row in self.confusion_normalized
            ],
            "most_confused": [dict(m) for m in self.most_confused],
            "never_predicted": list(self.never_predicted),
            "cost": self.cost.to_dict(),
            "output": self.output,
            "history": (
                {k: [_clean(v) for v in vals] for k, vals in self.history.items()}
                if self.history
                else None
            ),
            "notes": list(self.notes),
        }
        if include_predictions:
            d["y_pred"] = self.y_pred.astype(int).tolist()
        return d


@dataclass(frozen=True)
class PairwiseResult:
    """McNemar's exact test between two models, with the multiple-comparison adjustment.

    Attributes
    ----------
    model_a, model_b : str
    test : McNemarResult
        Discordant counts and the exact p-value.
    p_adjusted : float
        p-value after the comparator's ``correction`` over all pairs (Holm's by
        default; equal to ``test.p_value`` with one pair or ``correction=None``).
    significant : bool
        ``p_adjusted < alpha``.
    """

    model_a: str
    model_b: str
    test: McNemarResult
    p_adjusted: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as a JSON-ready dict (the ``pairwise`` entries of the schema)."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "a_right_b_wrong": self.test.a_right_b_wrong,
            "a_wrong_b_right": self.test.a_wrong_b_right,
            "p_value": _clean(self.test.p_value),
            "p_adjusted": _clean(self.p_adjusted),
            "significant": self.significant,
        }


class ComparisonReport:
    """The result of :meth:`ModelComparator.run`: metrics, intervals, tests, costs, warnings.

    Render it with :meth:`to_markdown`, :meth:`to_json` or :meth:`to_html`, or
    write all of them with the plots with :meth:`save`. ``report["name"]`` is
    the :class:`ModelResult` of one model, ``report.baseline`` the
    majority-class baseline's.

    Attributes
    ----------
    class_names : tuple of str
    y_true : numpy.ndarray of int
        Test labels, in test-set order.
    baseline : ModelResult
    models : dict of str to ModelResult
        The compared models, in the order they were added.
    pairwise : tuple of PairwiseResult
    warnings : tuple of str
        What must not be missed, most important first.
    verdict : str
        One paragraph, printed after the warnings: which model is better on
        accuracy, balanced accuracy and macro-F1 (with their intervals),
        whether the accuracy difference is significant (McNemar's exact test,
        Holm-adjusted when there are several pairs), and which models do not
        beat the majority-class baseline.
    settings : dict
        The comparator settings (``n_boot``, ``confidence``, ``random_state``, ...).
    baseline_info : dict
        ``class_index``, ``class_name`` and ``source`` of the baseline's class.
    machine : dict
        Where latencies were measured.

    Examples
    --------
    >>> from tlkit.compare import ModelComparator
    >>> y_true = [0] * 80 + [1] * 20 + [2] * 8
    >>> report = (
    ...     ModelComparator(y_true, ["healthy", "rust", "scab"], n_boot=100)
    ...     .add_predictions("MobileNet", [0] * 108)
    ...     .run()
    ... )
    >>> round(report["MobileNet"].metrics["accuracy"], 3)
    0.741
    >>> print(report.warnings[0])
    model 'MobileNet': balanced accuracy 0.333, 95% CI [0.333, 0.333], does not clear the majority-class baseline (0.333)
    >>> print(report.verdict.split(": ")[0])
    MobileNet predicts 'healthy' for every image, exactly like the majority-class baseline
    """

    def __init__(
        self,
        *,
        class_names: Sequence[str],
        y_true: np.ndarray,
        baseline: ModelResult,
        models: Sequence[ModelResult],
        pairwise: Sequence[PairwiseResult],
        warnings: Sequence[str],
        settings: Mapping[str, Any],
        baseline_info: Mapping[str, Any],
        machine: Mapping[str, Any],
        verdict: str = "",
    ) -> None:
        self.class_names = tuple(class_names)
        self.y_true = np.asarray(y_true)
        self.baseline = baseline
        self.models = {m.name: m for m in models}
        self.pairwise = tuple(pairwise)
        self.warnings = tuple(warnings)
        self.settings = dict(settings)
        self.baseline_info = dict(baseline_info)
        self.machine = dict(machine)
        self.verdict = str(verdict)

    # -- access -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> ModelResult:
        if name == self.baseline.name:
            return self.baseline
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(
                f"no model named {name!r}; models: {', '.join(map(repr, self.models))}"
            ) from None

    @property
    def rows(self) -> list[ModelResult]:
        """The baseline followed by every model."""
        return [self.baseline, *self.models.values()]

    @property
    def supports(self) -> np.ndarray:
        """Number of test examples per class."""
        return np.bincount(self.y_true, minlength=len(self.class_names))

    def __repr__(self) -> str:
        return (
            f"ComparisonReport(models={list(self.models)}, n_test={self.y_true.size}, "
            f"classes={len(self.class_names)}, warnings={len(self.warnings)})"
        )

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self, *, include_predictions: bool = True) -> dict[str, Any]:
        """Return the report as a JSON-ready dict; see :meth:`to_json` for the schema."""
        from tlkit._version import __version__

        supports = self.supports
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "tlkit_version": __version__,
            "n_test": int(self.y_true.size),
            "classes": [
                {"index": i, "name": c, "support": int(supports[i])}
                for i, c in enumerate(self.class_names)
            ],
            "settings": {k: _clean(v) for k, v in self.settings.items()},
            "baseline": dict(self.baseline_info),
            "warnings": list(self.warnings),
            "models": [r.to_dict(include_predictions=include_predictions) for r in self.rows],
            "pairwise": [p.to_dict() for p in self.pairwise],
            "machine": dict(self.machine),
        }
        if include_predictions:
            d["y_true"] = self.y_true.astype(int).tolist()
        d["verdict"] = self.verdict  # added within schema 1: after the existing keys
        return d

    def to_json(self, *, indent: int | None = 2, include_predictions: bool = True) -> str:
        """Return the report as JSON (schema ``"tlkit.comparison/1"``).

        Top-level keys: ``schema``, ``tlkit_version``, ``n_test``, ``classes``
        (``index``, ``name``, ``support``), ``settings``, ``baseline``
        (``class_index``, ``class_name``, ``source``), ``warnings`` (list of
        str), ``models`` (the baseline first; see :meth:`ModelResult.to_dict`),
        ``pairwise`` (see :meth:`PairwiseResult.to_dict`), ``machine``,
        ``y_true`` and ``verdict`` (the paragraph printed after the
        warnings). Undefined numbers are ``null``. The schema string changes
        when a key is renamed or removed; new keys may be added within a
        version. The "Comparing models" guide documents every key.

        Parameters
        ----------
        indent : int or None
            Passed to :func:`json.dumps`.
        include_predictions : bool
            Include ``y_true`` and each model's ``y_pred`` (default ``True``).

        Returns
        -------
        str
        """
        return json.dumps(
            self.to_dict(include_predictions=include_predictions),
            indent=indent,
            ensure_ascii=False,
            allow_nan=False,
        )

    # -- Markdown -----------------------------------------------------------------------------

    def to_markdown(self) -> str:
        """Return the report as GitHub-flavoured Markdown, warnings first.

        Returns
        -------
        str
        """
        return self._markdown(images=None)

    def _markdown(self, images: Mapping[str, str] | None) -> str:
        lines = ["# Model comparison", ""]
        lines += _warnings_md(self.warnings)
        if self.verdict:
            lines += [f"**Verdict.** {_md_escape(self.verdict)}", ""]
        lines += ["## Test set", "", self._test_set_text(), ""]
        lines += ["## Metrics", ""]
        lines += [self._ci_text(), ""]
        head, body = self.metrics_table()
        lines += _md_table(head, body)
        lines += [""]
        if images and "metrics" in images:
            lines += [f"![metrics with intervals]({images['metrics']})", ""]
        lines += ["## Cost", ""]
        head, body = self.cost_table()
        lines += _md_table(head, body)
        lines += ["", self._machine_text(), ""]
        lines += ["## Pairwise McNemar exact tests", ""]
        if self.pairwise:
            head, body = self.pairwise_table()
            lines += _md_table(head, body)
            lines += ["", self._pairwise_text(), ""]
        else:
            lines += ["One model: nothing to test.", ""]
        if images and "per_class_f1" in images:
            lines += ["## Per-class F1", "", f"![per-class F1]({images['per_class_f1']})", ""]
        for r in self.models.values():
            lines += [f"## {_md_escape(r.name)}", ""]
            if r.output:
                lines += [f"Outputs: {r.output}.", ""]
            lines += ["scikit-learn classification report:", "", "```text"]
            lines += [r.classification_report.rstrip("\n"), "```", ""]
            lines += [
                "Confusion matrix (rows: true class, columns: predicted class; "
                "count and share of the true class):",
                "",
            ]
            head, body = self.confusion_table(r)
            lines += _md_table(head, body)
            lines += [""]
            if images and f"confusion:{r.name}" in images:
                lines += [f"![confusion matrix of {r.name}]({images[f'confusion:{r.name}']})", ""]
            lines += ["Most confused: " + self._confused_text(r), ""]
            if images and f"training:{r.name}" in images:
                lines += [f"![training curves of {r.name}]({images[f'training:{r.name}']})", ""]
            for note in r.notes:
                lines += [f"- note: {_md_escape(note)}"]
            if r.notes:
                lines += [""]
        return "\n".join(lines).rstrip("\n") + "\n"

    # -- tables shared by the renderers -------------------------------------------------------

    def _test_set_text(self) -> str:
        sup = self.supports
        classes = ", ".join(f"{c} {int(n)}" for c, n in zip(self.class_names, sup, strict=True))
        b = self.baseline_info
        src = (
            "the most frequent class in the test set"
            if b["source"] == "test set"
            else "the most frequent class in baseline_labels"
        )
        return (
            f"{self.y_true.size} examples in {len(self.class_names)} classes ({classes}). "
            f"Baseline: always predict {b['class_name']!r}, {src}."
        )

    def _ci_text(self) -> str:
        s = self.settings
        if not s["n_boot"]:
            return "No intervals (n_boot=0)."
        return (
            f"Brackets: {s['confidence']:.0%} bootstrap percentile intervals from "
            f"{s['n_boot']} stratified resamples of the test set (random_state="
            f"{s['random_state']})."
        )

    def _machine_text(self) -> str:
        m = self.machine
        if not any(r.kind in ("keras", "exported") for r in self.models.values()):
            return "No model was run here: cost columns show what was passed to add_predictions()."
        return (
            "Latency: mean milliseconds per image at batch 1 and batch 32, median of "
            f"{self.settings['latency_runs']} runs after a warm-up, measured on "
            f"{m.get('platform', '?')} ({m.get('cpu_count', '?')} CPUs"
            + (f", {m['accelerator']}" if m.get("accelerator") else "")
            + ")."
        )

    def _pairwise_text(self) -> str:
        s = self.settings
        corr = "Holm-adjusted over all pairs" if s["correction"] == "holm" else "not adjusted"
        return (
            f"Exact two-sided binomial test of the discordant counts; p-values {corr}; "
            f"significant when the adjusted p < {s['alpha']}."
        )

    def _confused_text(self, r: ModelResult) -> str:
        if not r.most_confused:
            return "none."
        return "; ".join(
            f"{m['true']} → {m['predicted']}: {m['count']} ({m['share_of_true']:.0%} of {m['true']})"
            for m in r.most_confused
        )

    def metrics_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the metrics table (strings, as rendered)."""
        k = self.baseline.top_k
        head = ["model"] + [METRIC_LABELS[m].replace("top-k", f"top-{k}") for m in METRIC_LABELS]
        body = []
        for r in self.rows:
            row = [self._row_name(r)]
            for m in METRIC_LABELS:
                v = r.metrics.get(m)
                cell = _fmt(v)
                if m in r.ci and v is not None:
                    c = r.ci[m]
                    cell += f" [{_fmt(c.low)}, {_fmt(c.high)}]"
                row.append(cell)
            body.append(row)
        return head, body

    def _row_name(self, r: ModelResult) -> str:
        if r.kind == "baseline":
            return f"{r.name} (always {self.baseline_info['class_name']!r})"
        return r.name

    def cost_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the cost table (strings, as rendered)."""
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
        for r in self.models.values():
            c = r.cost
            body.append(
                [
                    r.name,
                    f"{c.params:,}" if c.params is not None else "—",
                    _fmt_bytes(c.keras_bytes),
                    _fmt_bytes(c.tflite_bytes),
                    _fmt_ms(c.latency_ms_batch1),
                    _fmt_ms(c.latency_ms_batch32),
                    _fmt_s(c.train_time_s),
                    _fmt_s(c.predict_time_s),
                ]
            )
        return head, body

    def pairwise_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the McNemar table (strings, as rendered)."""
        head = [
            "model A",
            "model B",
            "A right, B wrong",
            "A wrong, B right",
            "p (exact)",
            "p (adjusted)",
            f"significant at {self.settings['alpha']}",
        ]
        body = [
            [
                p.model_a,
                p.model_b,
                str(p.test.a_right_b_wrong),
                str(p.test.a_wrong_b_right),
                _fmt_p(p.test.p_value),
                _fmt_p(p.p_adjusted),
                "yes" if p.significant else "no",
            ]
            for p in self.pairwise
        ]
        return head, body

    def confusion_table(self, r: ModelResult) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of one model's confusion matrix (count and row share)."""
        sup = self.supports
        head = ["true \\ predicted", *self.class_names]
        body = [
            [f"{c} ({int(sup[i])})"]
            + [
                f"{int(r.confusion[i, j])} ({r.confusion_normalized[i, j]:.0%})"
                for j in range(len(self.class_names))
            ]
            for i, c in enumerate(self.class_names)
        ]
        return head, body

    # -- HTML and files -----------------------------------------------------------------------

    def to_html(self) -> str:
        """Return a self-contained HTML page: warnings first, tables, plots embedded as PNG.

        Returns
        -------
        str
        """
        from tlkit.compare._html import render_html

        return render_html(self, self._figures())

    def _repr_html_(self) -> str:  # pragma: no cover - notebooks
        return self.to_html()

    def _figures(self) -> dict[str, tuple[str, bytes]]:
        """Render every plot: key -> (file name, PNG bytes)."""
        from tlkit.compare import _plots

        out: dict[str, tuple[str, bytes]] = {}
        slugs = _unique_slugs(list(self.models))
        out["metrics"] = ("metrics.png", _plots.metrics_png(self))
        out["per_class_f1"] = ("per_class_f1.png", _plots.per_class_f1_png(self))
        for name, r in self.models.items():
            out[f"confusion:{name}"] = (
                f"confusion_{slugs[name]}.png",
                _plots.confusion_png(r, self.class_names),
            )
            if r.history:
                out[f"training:{name}"] = (
                    f"training_{slugs[name]}.png",
                    _plots.training_png(r.name, r.history),
                )
        return out

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the report and its plots into a folder.

        Files: ``report.html`` (self-contained), ``report.md`` (linking the
        PNGs), ``report.json``, ``metrics.png`` (metrics with intervals),
        ``per_class_f1.png``, ``confusion_<model>.png`` per model and
        ``training_<model>.png`` per model with a training history. Model names
        are reduced to letters, digits, ``.``, ``_`` and ``-`` in file names.

        Parameters
        ----------
        directory : str or os.PathLike
            Created if missing; files already there are overwritten.

        Returns
        -------
        list of pathlib.Path
            The files written.

        Examples
        --------
        >>> import tempfile
        >>> from tlkit.compare import ModelComparator
        >>> report = ModelComparator([0, 0, 1, 1], ["a", "b"], n_boot=0).add_predictions(
        ...     "m", [0, 1, 1, 1]).run()
        >>> sorted(p.name for p in report.save(tempfile.mkdtemp()))[:3]
        ['confusion_m.png', 'metrics.png', 'per_class_f1.png']
        """
        from tlkit.compare._html import render_html

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        figures = self._figures()
        written = []
        for fname, png in figures.values():
            path = out / fname
            path.write_bytes(png)
            written.append(path)
        images = {key: fname for key, (fname, _) in figures.items()}
        for fname, text in (
            ("report.md", self._markdown(images)),
            ("report.json", self.to_json() + "\n"),
            ("report.html", render_html(self, figures)),
        ):
            path = out / fname
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


# -- formatting helpers -------------------------------------------------------------------------


def _clean(v: Any) -> Any:
    """Make a value JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.3f}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3g} ms"


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 60:
        return f"{v:.3g} s"
    minutes, seconds = divmod(round(v), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]
    return lines


def _warnings_md(warnings: Sequence[str]) -> list[str]:
    if not warnings:
        return ["## Warnings", "", "None.", ""]
    lines = [f"## ⚠ Warnings ({len(warnings)})", ""]
    lines += [f"{i}. **{_md_escape(w)}**" for i, w in enumerate(warnings, 1)]
    return [*lines, ""]


def _unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """File-name-safe, unique versions of model names."""
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
