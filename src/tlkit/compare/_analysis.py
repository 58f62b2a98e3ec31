"""The statistics of a comparison: the baseline row, each row's metrics and intervals, McNemar pairs.

:func:`analyse` runs them all on the rows the comparator collected and builds the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier

from tlkit._calibration import reliability_bins
from tlkit.compare._cost import machine
from tlkit.compare._format import BASELINE_NAME, CI_KEYS, history_note
from tlkit.compare._gallery import ImageFiles, mistake_gallery
from tlkit.compare._inputs import Entry
from tlkit.compare._report import ComparisonReport, ModelResult, PairwiseResult
from tlkit.compare._stats import (
    BootstrapCI,
    bootstrap_values,
    holm,
    mcnemar_exact,
    percentile_interval,
)
from tlkit.compare._verdict import comparison_warnings, verdict
from tlkit.metrics import CI_METRICS, metrics_report

__all__ = ["analyse", "baseline_entry", "pairwise", "result"]


def baseline_entry(
    y_true: np.ndarray, class_names: Sequence[str], baseline_labels: np.ndarray | None
) -> tuple[Entry, dict[str, Any]]:
    """The majority-class baseline (scikit-learn's ``DummyClassifier(strategy="prior")``)."""
    source = "test set" if baseline_labels is None else "baseline_labels"
    fit_on = y_true if baseline_labels is None else baseline_labels
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((fit_on.size, 1)), fit_on)
    x = np.zeros((y_true.size, 1))
    pred = dummy.predict(x).astype(np.int64)
    prob = np.zeros((y_true.size, len(class_names)))
    prob[:, dummy.classes_.astype(int)] = dummy.predict_proba(x)
    cls = int(pred[0])
    info = {
        "strategy": "majority class",
        "class_index": cls,
        "class_name": class_names[cls],
        "source": source,
    }
    entry = Entry(
        name=BASELINE_NAME,
        kind="baseline",
        y_pred=pred,
        y_prob=prob,
        output=f"always {class_names[cls]!r}; probabilities: the class frequencies of the {source}",
    )
    return entry, info


def result(
    e: Entry,
    y_true: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: int | None,
    n_boot: int,
    confidence: float,
    seed: int | None,
    files: ImageFiles | None = None,
) -> ModelResult:
    """Every metric of one row, with stratified bootstrap intervals (paired: same seed for all).

    A model's row (not the baseline's) gets its gallery of mistakes, with images from ``files``.
    """
    m = metrics_report(y_true, e.y_pred, e.y_prob, class_names, top_k=top_k)
    labels = np.arange(len(class_names))
    ci: dict[str, BootstrapCI] = {}
    if n_boot:
        fns = [partial(CI_METRICS[k], labels=labels) for k in CI_KEYS]
        values = bootstrap_values(y_true, e.y_pred, fns, n_boot, seed=seed, confusion_only=True)
        for j, k in enumerate(CI_KEYS):
            low, high = percentile_interval(values[:, j], confidence)
            ci[k] = BootstrapCI(float(m["metrics"][k]), low, high, confidence, n_boot)
    return ModelResult(
        name=e.name,
        kind=e.kind,
        y_pred=e.y_pred,
        y_prob=e.y_prob,
        metrics=m["metrics"],
        ci=ci,
        top_k=m["top_k"],
        per_class=m["per_class"],
        averages=m["averages"],
        classification_report=m["classification_report"],
        confusion=m["confusion"],
        confusion_normalized=m["confusion_normalized"],
        most_confused=m["most_confused"],
        never_predicted=tuple(class_names[i] for i in m["never_predicted"]),
        cost=e.cost,
        history=e.history,
        output=e.output,
        notes=tuple(e.notes) + tuple(m["notes"]) + _history_notes(e.history),
        reliability=None if e.y_prob is None else reliability_bins(y_true, e.y_prob),
        gallery=(
            None
            if e.kind == "baseline"
            else mistake_gallery(y_true, e.y_pred, e.y_prob, class_names, files)
        ),
    )


def _history_notes(history: dict[str, list[float]] | None) -> tuple[str, ...]:
    note = history_note(history)
    return (note,) if note else ()


def pairwise(
    y_true: np.ndarray, models: Sequence[ModelResult], *, correction: str | None, alpha: float
) -> list[PairwiseResult]:
    """McNemar's exact test between every pair of models, Holm-adjusted when asked."""
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    tests = [mcnemar_exact(y_true, a.y_pred, b.y_pred) for a, b in pairs]
    raw = np.array([t.p_value for t in tests], dtype=float)
    adjusted = holm(raw) if correction == "holm" else raw
    return [
        PairwiseResult(a.name, b.name, t, float(p), bool(p < alpha))
        for (a, b), t, p in zip(pairs, tests, adjusted, strict=True)
    ]


def analyse(
    entries: Sequence[Entry],
    y_true: np.ndarray,
    class_names: Sequence[str],
    *,
    baseline_labels: np.ndarray | None,
    n_boot: int,
    confidence: float,
    seed: int | None,
    alpha: float,
    correction: str | None,
    min_support: int,
    top_k: int | None,
    latency_runs: int,
    files: ImageFiles | None = None,
) -> ComparisonReport:
    """Baseline, metrics with intervals, McNemar tests, warnings and verdict: the report."""
    baseline, baseline_info = baseline_entry(y_true, class_names, baseline_labels)
    results = [
        result(
            e,
            y_true,
            class_names,
            top_k=top_k,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            files=files,
        )
        for e in [baseline, *entries]
    ]
    base, models = results[0], results[1:]
    pairs = pairwise(y_true, models, correction=correction, alpha=alpha)
    warnings = comparison_warnings(
        base,
        models,
        pairs,
        y_true=y_true,
        class_names=class_names,
        confidence=confidence,
        correction=correction,
        min_support=min_support,
    )
    text = verdict(
        base,
        models,
        pairs,
        baseline_info["class_name"],
        confidence=confidence,
        correction=correction,
    )
    settings = {
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,  # "random_state" in schema 1
        "stratified": True,
        "ci_method": "percentile",
        "alpha": alpha,
        "correction": correction,
        "min_support": min_support,
        "top_k": base.top_k,
        "latency_runs": latency_runs,
    }
    return ComparisonReport(
        class_names=class_names,
        y_true=y_true,
        baseline=base,
        models=models,
        pairwise=pairs,
        warnings=warnings,
        settings=settings,
        baseline_info=baseline_info,
        machine=machine(),
        verdict=text,
    )
