"""ComparisonReport and its rows: the results of a comparison, as data and as JSON.

Rendering lives elsewhere and reads these objects: :mod:`._render` (the tables and
sentences, Markdown, HTML, and the files written) and :mod:`._plots`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._calibration import Reliability
from tlkit.compare import _render
from tlkit.compare._format import BASELINE_NAME, CI_KEYS, SCHEMA
from tlkit.compare._format import clean as _clean
from tlkit.compare._gallery import MistakeGallery
from tlkit.compare._stats import BootstrapCI, McNemarResult

__all__ = [
    "BASELINE_NAME",
    "CI_KEYS",
    "SCHEMA",
    "ComparisonReport",
    "Cost",
    "ModelResult",
    "PairwiseResult",
]


@dataclass(frozen=True)
class Cost:
    """What a model costs to keep and to run.

    Attributes
    ----------
    params : int or None
        Number of parameters (``model.count_params()``).
    size_bytes : int or None
        Size of the model's own file: the model saved as a ``.keras`` file, or
        the ``size_bytes`` passed to :meth:`~tlkit.ModelComparator.add_predictions`.
    tflite_size_bytes : int or None
        Size of the exported ``.tflite`` file, when one was given.
    latency_ms : float or None
        Mean milliseconds per image when predicting one image at a time (batch 1)
        on the machine that ran the comparison (median of several timed runs
        after a warm-up run).
    latency_ms_batch32 : float or None
        The same per image when predicting batches of 32 images.

    The names are those of :class:`tlkit.export.ExportReport`: ``size_bytes`` is the
    file the row is about, a prefix names another file (``tflite_size_bytes``).
    train_time_s : float or None
        Training time in seconds: the ``train_time_s`` of a
        :class:`~tlkit.protocols.TrainedClassifier` such as a FineTuner.
    predict_time_s : float or None
        Seconds spent in the model predicting the whole test set (the first
        batch includes tracing; input decoding not included).
    """

    params: int | None = None
    size_bytes: int | None = None
    tflite_size_bytes: int | None = None
    latency_ms: float | None = None
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
    reliability : Reliability or None
        Calibration of the probabilities: per confidence bin the count, mean
        confidence and accuracy, and the expected calibration error
        (:func:`~tlkit.compare.expected_calibration_error`); ``None`` when the
        model gave class labels only.
    gallery : MistakeGallery or None
        What the model gets wrong: its most confidently wrong test images and most
        confused class pairs, with the images' paths when the test data is a
        SplitPart (``None`` for the baseline).
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
    reliability: Reliability | None = None
    gallery: MistakeGallery | None = None

    @property
    def ece(self) -> float | None:
        """Expected calibration error (15 bins), or ``None`` without probabilities."""
        return None if self.reliability is None else self.reliability.ece

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
            # added within schema 1: after the existing keys
            "ece": _clean(self.ece),
            "reliability": (
                None
                if self.reliability is None
                else {
                    "n_bins": self.reliability.n_bins,
                    "bins": [{k: _clean(v) for k, v in b.items()} for b in self.reliability.bins()],
                }
            ),
        }
        if include_predictions:
            d["y_pred"] = self.y_pred.astype(int).tolist()
        # added within schema 1: after the existing keys
        d["gallery"] = self.gallery.to_dict() if self.gallery is not None else None
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
        The comparator settings (``n_boot``, ``confidence``, ``seed``, ...).
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
        """Return the report as JSON (schema ``"tlkit.comparison/3"``).

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

    # -- rendering (the renderers read this object; they do not import this module) ---------

    def to_markdown(self) -> str:
        """Return the report as GitHub-flavoured Markdown, warnings first.

        Returns
        -------
        str
        """
        return _render.render_markdown(self)

    def metrics_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the metrics table (strings, as rendered)."""
        return _render.metrics_table(self)

    def cost_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the cost table (strings, as rendered)."""
        return _render.cost_table(self)

    def pairwise_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the McNemar table (strings, as rendered)."""
        return _render.pairwise_table(self)

    def confusion_table(self, r: ModelResult) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of one model's confusion matrix (count and row share)."""
        return _render.confusion_table(self, r)

    def calibration_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the calibration table (ECE per model, as rendered)."""
        return _render.calibration_table(self)

    def to_html(self) -> str:
        """Return a self-contained HTML page: warnings first, tables, plots embedded as PNG.

        Each model's section ends with what it gets wrong (:class:`MistakeGallery`): with a
        SplitPart as test data, thumbnails of its most confidently wrong images and of its
        most confused pairs, embedded as JPEG ``data:`` URIs (at most
        ``MAX_GALLERY_BYTES`` = 2 MB per page). The image files are read
        each time the page is made; one that cannot be read gets a placeholder.

        Returns
        -------
        str
        """
        return _render.render_html(self, _render.figures(self))

    def _repr_html_(self) -> str:  # pragma: no cover - notebooks
        return self.to_html()

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the report and its plots into a folder.

        Files: ``report.html`` (self-contained), ``report.md`` (linking the
        PNGs), ``report.json``, ``metrics.png`` (metrics with intervals),
        ``per_class_f1.png``, ``reliability.png`` (the reliability diagram of
        every model with probabilities, when there is one),
        ``confusion_<model>.png`` per model and
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
        return _render.save(self, directory)
