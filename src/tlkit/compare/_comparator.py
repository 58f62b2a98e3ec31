"""ModelComparator: predict once per model, then compare against a baseline, honestly."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from sklearn.dummy import DummyClassifier

from tlkit.compare._metrics import CI_METRICS, classification_metrics
from tlkit.compare._report import (
    BASELINE_NAME,
    CI_KEYS,
    ComparisonReport,
    Cost,
    ModelResult,
    PairwiseResult,
    _fmt_p,
)
from tlkit.compare._stats import (
    BootstrapCI,
    bootstrap_values,
    holm,
    mcnemar_exact,
    percentile_interval,
)

__all__ = ["ModelComparator"]

_PROB_ATOL = 1e-3
_CORRECTIONS = ("holm", None)


@dataclass
class _Entry:
    name: str
    kind: str
    y_pred: np.ndarray
    y_prob: np.ndarray | None
    cost: Cost = field(default_factory=Cost)
    history: dict[str, list[float]] | None = None
    output: str | None = None
    notes: list[str] = field(default_factory=list)


class ModelComparator:
    """Compare classifiers on one test set: baseline, intervals, significance, cost.

    Each model predicts on the test set once (:meth:`add`); predictions from
    anything else come in through :meth:`add_predictions`. :meth:`run` returns
    a :class:`ComparisonReport` with, per model, scikit-learn's classification
    report, the confusion matrix, accuracy, balanced accuracy, macro- and
    weighted-F1, MCC, Cohen's kappa, and (with probabilities) top-k accuracy,
    log loss and one-vs-rest ROC-AUC; a majority-class baseline row; stratified
    bootstrap intervals; McNemar's exact test between every pair of models; the
    cost of each model; and warnings about anything that makes a result
    meaningless, listed first.

    Parameters
    ----------
    test_data : tf.data.Dataset, SplitPart, array-like or tuple
        The test set, in a fixed order:

        * a ``tf.data.Dataset`` yielding ``(images, labels)`` batches (labels
          as class indices or one-hot; an unbatched dataset is batched);
        * a :class:`~tlkit.data.SplitPart` such as ``split.test``: its images
          are loaded with ``part.to_dataset(image_size=..., batch_size=...,
          shuffle=False)`` at each model's input size;
        * a tuple ``(images, labels)`` of arrays (images ``(n, H, W, C)``);
        * a 1-D array of labels: only :meth:`add_predictions` can be used.
    class_names : sequence of str, optional
        Names of the ``K`` classes, label ``i`` is ``class_names[i]``. Taken
        from ``test_data.class_names`` when it has them; required otherwise.
    baseline_labels : array-like of int, optional
        Labels to pick the baseline's majority class from, e.g. the training
        labels (``split.train.labels``). Default: the test labels (standard,
        but the baseline then knows the test set's class frequencies).
    n_boot : int
        Bootstrap resamples for the intervals (default 1000; ``0``: none).
        Each resample calls scikit-learn three times per model, about 2 ms.
    confidence : float
        Interval coverage (default 0.95).
    random_state : int or None
        Seed of the resampling; the same seed gives the same intervals.
    alpha : float
        Significance level of the McNemar tests (default 0.05).
    correction : {"holm", None}
        Adjustment of the McNemar p-values for the number of pairs.
    min_support : int
        Test classes with fewer examples are flagged "too few to judge" (default 10).
    top_k : int, optional
        ``k`` of the top-k accuracy (default ``min(5, K - 1)``; reported when
        probabilities exist and ``1 < k < K``).
    batch_size : int
        Batch size when predicting from a SplitPart or arrays (default 32).
    latency_runs : int
        Timed runs per batch size when measuring latency (default 5; the median
        is reported).

    See Also
    --------
    tlkit.compare.mcnemar_exact, tlkit.compare.bootstrap_ci

    Notes
    -----
    :meth:`add` accepts a ``keras.Model`` or any object following the
    *FineTuner protocol*: a ``model`` attribute holding a ``keras.Model``, and
    optionally ``history`` (a dict of metric name to per-epoch values, or a
    ``keras.callbacks.History``), ``train_time_s`` (float seconds),
    ``class_names`` (checked against the comparator's) and ``tflite_path``
    (an exported ``.tflite`` file, whose size is reported).

    Models receive the images as the test data yields them (a SplitPart gives
    ``float32`` pixels in ``[0, 255]``), so each model must include its own
    preprocessing.

    Examples
    --------
    The study this project comes from, whose test set held 80, 20 and 8
    images, and whose MobileNet predicted the first class for every one:

    >>> y_true = [0] * 80 + [1] * 20 + [2] * 8
    >>> report = (
    ...     ModelComparator(y_true, ["healthy", "rust", "scab"], n_boot=200)
    ...     .add_predictions("MobileNet", [0] * 108)
    ...     .run()
    ... )
    >>> m = report["MobileNet"].metrics
    >>> round(m["accuracy"], 3), round(m["balanced_accuracy"], 3), round(m["macro_f1"], 3)
    (0.741, 0.333, 0.284)
    >>> for w in report.warnings:
    ...     print(w)  # doctest: +NORMALIZE_WHITESPACE
    model 'MobileNet': balanced accuracy 0.333, 95% CI [0.333, 0.333], does not clear the
    majority-class baseline (0.333)
    model 'MobileNet': accuracy 0.741 is no higher than the majority-class baseline's 0.741
    model 'MobileNet' never predicts classes 'rust', 'scab'
    test class 'scab' has 8 examples: too few to judge
    """

    def __init__(
        self,
        test_data: Any,
        class_names: Sequence[str] | None = None,
        *,
        baseline_labels: Any = None,
        n_boot: int = 1000,
        confidence: float = 0.95,
        random_state: int | None = 0,
        alpha: float = 0.05,
        correction: str | None = "holm",
        min_support: int = 10,
        top_k: int | None = None,
        batch_size: int = 32,
        latency_runs: int = 5,
    ) -> None:
        if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 0:
            raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
        if not 0.0 < float(confidence) < 1.0:
            raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"alpha must be in (0, 1), e.g. 0.05; got {alpha!r}")
        if correction not in _CORRECTIONS:
            raise ValueError(f"correction must be 'holm' or None, got {correction!r}")
        if not isinstance(min_support, (int, np.integer)) or min_support < 0:
            raise ValueError(f"min_support must be an integer >= 0, got {min_support!r}")
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"top_k must be an integer >= 1 or None, got {top_k!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(latency_runs, (int, np.integer)) or latency_runs < 1:
            raise ValueError(f"latency_runs must be an integer >= 1, got {latency_runs!r}")
        self.n_boot = int(n_boot)
        self.confidence = float(confidence)
        self.random_state = random_state
        self.alpha = float(alpha)
        self.correction = correction
        self.min_support = int(min_support)
        self.top_k = None if top_k is None else int(top_k)
        self.batch_size = int(batch_size)
        self.latency_runs = int(latency_runs)

        self._kind, self._data, self._y_true = _classify_test_data(test_data)
        names = class_names
        own = getattr(test_data, "class_names", None) if self._kind == "part" else None
        if names is None:
            names = own
        if names is None:
            raise ValueError(
                "class_names is required unless test_data has .class_names (a SplitPart): "
                "pass the list of class names, label i being class_names[i]"
            )
        names = tuple(str(c) for c in names)
        if own is not None and tuple(str(c) for c in own) != names:
            raise ValueError(
                f"class_names {list(names)} differ from test_data.class_names {list(own)}"
            )
        if len(names) < 2:
            raise ValueError(f"class_names must name at least 2 classes, got {list(names)}")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names must be unique, got {list(names)}")
        self.class_names = names
        if self._y_true is not None:
            self._y_true = self._check_labels(self._y_true, "test_data labels")
        self._baseline_labels = (
            None
            if baseline_labels is None
            else self._check_labels(baseline_labels, "baseline_labels")
        )
        self._entries: dict[str, _Entry] = {}
        self._datasets: dict[tuple[int, int], Any] = {}

    def __repr__(self) -> str:
        return (
            f"ModelComparator(test_data={self._kind}, classes={len(self.class_names)}, "
            f"models={list(self._entries)})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.class_names)

    @property
    def y_true(self) -> np.ndarray:
        """Test labels in test-set order (read from the data on first use)."""
        if self._y_true is None:
            labels = [y for _, y in self._batches(None, labels_only=True)]
            self._y_true = self._check_labels(
                np.concatenate(labels) if labels else np.zeros(0, np.int64), "test_data labels"
            )
        return self._y_true

    @property
    def model_names(self) -> list[str]:
        """Names of the models added so far."""
        return list(self._entries)

    # -- adding models ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        model: Any,
        *,
        image_size: int | tuple[int, int] | None = None,
        tflite_path: str | os.PathLike[str] | None = None,
        measure_cost: bool = True,
    ) -> ModelComparator:
        """Predict the test set with a model, timing it, and keep the predictions.

        Parameters
        ----------
        name : str
            Row name in the report; unique.
        model : keras.Model or FineTuner
            A ``keras.Model`` with one image input and one output of ``K``
            probabilities or logits (or one sigmoid unit when ``K == 2``), or an
            object with a ``model`` attribute holding one (see the Notes of
            :class:`ModelComparator`).
        image_size : int or (int, int), optional
            Size to load a SplitPart's images at; default: the model's input
            size. Ignored for other test data.
        tflite_path : str or os.PathLike, optional
            An exported ``.tflite`` file of this model; its size is reported.
        measure_cost : bool
            Measure the ``.keras`` size and the latencies (default ``True``).

        Returns
        -------
        ModelComparator
            ``self``, for chaining.

        Examples
        --------
        >>> comparator.add("MobileNetV2", finetuner).add("CNN", cnn)  # doctest: +SKIP
        """
        self._check_name(name)
        keras_model, extras = _unwrap_model(model)
        self._check_model_class_names(name, extras.get("class_names"))
        if self._kind == "labels":
            raise ValueError(
                f"add({name!r}, ...): the comparator was built from labels only, so there are no "
                "images to predict; build it from a tf.data.Dataset, a SplitPart or (images, "
                "labels) arrays, or pass predictions with add_predictions()"
            )
        size = self._image_size(name, keras_model, image_size)
        # Check everything cheap before the prediction pass.
        history = _as_history(extras.get("history"))
        train_time = _optional_float(extras.get("train_time_s"), "train_time_s")
        tflite_bytes = None
        tfl = tflite_path if tflite_path is not None else extras.get("tflite_path")
        if tfl is not None:
            path = Path(tfl)
            if not path.is_file():
                raise FileNotFoundError(
                    f"tflite_path {str(path)!r} of model {name!r} is not a file"
                )
            tflite_bytes = path.stat().st_size

        raw, sample, seconds = self._predict_in_order(f"add({name!r}, ...)", keras_model, size)
        y_prob, output = _as_probabilities(name, raw, self.num_classes)
        notes: list[str] = []
        cost = Cost(
            params=_count_params(keras_model),
            tflite_bytes=tflite_bytes,
            train_time_s=train_time,
            predict_time_s=seconds,
        )
        if measure_cost:
            size_bytes, why = _keras_size(keras_model)
            if why:
                notes.append(f".keras size not measured: {why}")
            lat1, lat32 = _latencies(keras_model, sample, self.latency_runs)
            cost = _replace(
                cost, keras_bytes=size_bytes, latency_ms_batch1=lat1, latency_ms_batch32=lat32
            )
        self._entries[name] = _Entry(
            name=name,
            kind="keras",
            y_pred=np.argmax(y_prob, axis=1).astype(np.int64),
            y_prob=y_prob,
            cost=cost,
            history=history,
            output=output,
            notes=notes,
        )
        return self

    def add_predictions(
        self,
        name: str,
        y_pred: Any = None,
        y_prob: Any = None,
        *,
        params: int | None = None,
        size_bytes: int | None = None,
        tflite_bytes: int | None = None,
        latency_ms_batch1: float | None = None,
        latency_ms_batch32: float | None = None,
        train_time_s: float | None = None,
        history: Any = None,
    ) -> ModelComparator:
        """Add a model by its predictions on the test set (any framework, any source).

        Parameters
        ----------
        name : str
            Row name in the report; unique.
        y_pred : array-like of int, shape (n,), optional
            Predicted class indices in test-set order. Default: the argmax of ``y_prob``.
        y_prob : array-like of float, shape (n, K), optional
            Class probabilities (rows summing to 1); for ``K == 2`` also shape
            ``(n,)``, the probability of class 1. Enables top-k accuracy, log
            loss and ROC-AUC.
        params, size_bytes, tflite_bytes : int, optional
            Parameter count and sizes on disk (``.keras`` or other, TFLite), for
            the cost table.
        latency_ms_batch1, latency_ms_batch32 : float, optional
            Mean milliseconds per image at batch 1 and 32.
        train_time_s : float, optional
            Training time in seconds.
        history : dict or keras History, optional
            Metric name -> one value per epoch, for the training-curve plot.

        Returns
        -------
        ModelComparator
            ``self``, for chaining.

        Examples
        --------
        >>> c = ModelComparator([0, 1, 1, 0], ["cat", "dog"], n_boot=0)
        >>> c.add_predictions("svm", [0, 1, 0, 0]).add_predictions("rf", y_prob=[0.2, 0.9, 0.6, 0.4])
        ModelComparator(test_data=labels, classes=2, models=['svm', 'rf'])
        """
        self._check_name(name)
        n = self.y_true.size
        prob = None
        if y_prob is not None:
            prob = _check_probabilities(y_prob, n, self.num_classes)
        if y_pred is None:
            if prob is None:
                raise ValueError(f"add_predictions({name!r}): give y_pred, y_prob or both")
            pred = np.argmax(prob, axis=1).astype(np.int64)
        else:
            pred = self._check_labels(y_pred, "y_pred")
            if pred.size != n:
                raise ValueError(
                    f"y_pred of {name!r} has {pred.size} predictions but the test set has {n} labels"
                )
        cost = Cost(
            params=_optional_int(params, "params"),
            keras_bytes=_optional_int(size_bytes, "size_bytes"),
            tflite_bytes=_optional_int(tflite_bytes, "tflite_bytes"),
            latency_ms_batch1=_optional_float(latency_ms_batch1, "latency_ms_batch1"),
            latency_ms_batch32=_optional_float(latency_ms_batch32, "latency_ms_batch32"),
            train_time_s=_optional_float(train_time_s, "train_time_s"),
        )
        self._entries[name] = _Entry(
            name=name,
            kind="predictions",
            y_pred=pred,
            y_prob=prob,
            cost=cost,
            history=_as_history(history),
            output="probabilities" if prob is not None else "class indices",
        )
        return self

    def add_exported(
        self,
        name: str,
        exported: Any,
        *,
        measure_cost: bool = True,
    ) -> ModelComparator:
        """Add an exported model file (LiteRT, ONNX, SavedModel) as a row of its own.

        The file predicts the test set in its own runtime, so a float and an
        int8 export of one model appear side by side with the Keras model.

        Parameters
        ----------
        name : str
            Row name in the report; unique.
        exported : tlkit.export.ExportedModel
            Or any object with ``predict_on_batch(images) -> outputs``,
            ``input_size`` ``(height, width)``, and optionally ``size_bytes``,
            ``format`` and ``class_names`` (checked against the comparator's).
        measure_cost : bool
            Measure the latencies at batch 1 and 32 (default ``True``). The
            file size goes in the TFLite column for LiteRT files and in the
            row's notes for other formats.

        Returns
        -------
        ModelComparator
            ``self``, for chaining.

        Examples
        --------
        >>> from tlkit.export import ExportedModel
        >>> comparator.add("keras", tuner).add_exported(
        ...     "int8", ExportedModel("model_int8.tflite"))  # doctest: +SKIP
        """
        self._check_name(name)
        if not callable(getattr(exported, "predict_on_batch", None)) or not hasattr(
            exported, "input_size"
        ):
            raise TypeError(
                f"add_exported({name!r}, ...): expected a tlkit.export.ExportedModel (an object "
                f"with predict_on_batch() and input_size), got {type(exported).__name__}"
            )
        self._check_model_class_names(name, getattr(exported, "class_names", None))
        if self._kind == "labels":
            raise ValueError(
                f"add_exported({name!r}, ...): the comparator was built from labels only, so "
                "there are no images to predict"
            )
        h, w = exported.input_size
        size = (int(h), int(w)) if self._kind == "part" else None
        raw, sample, seconds = self._predict_in_order(
            f"add_exported({name!r}, ...)", exported, size
        )
        y_prob, output = _as_probabilities(name, raw, self.num_classes)
        fmt = getattr(exported, "format", None)
        nbytes = _optional_int(getattr(exported, "size_bytes", None), "size_bytes")
        notes = [
            f"exported {fmt or 'model'} file"
            + (f": {exported.path}" if hasattr(exported, "path") else "")
        ]
        if nbytes is not None and fmt != "litert":
            notes.append(f"{fmt} file size {nbytes:,} bytes")
        cost = Cost(
            tflite_bytes=nbytes if fmt == "litert" else None,
            predict_time_s=seconds,
        )
        if measure_cost:
            lat1, lat32 = _latencies(exported, sample, self.latency_runs)
            cost = _replace(cost, latency_ms_batch1=lat1, latency_ms_batch32=lat32)
        self._entries[name] = _Entry(
            name=name,
            kind="exported",
            y_pred=np.argmax(y_prob, axis=1).astype(np.int64),
            y_prob=y_prob,
            cost=cost,
            output=output,
            notes=notes,
        )
        return self

    # -- the comparison ----------------------------------------------------------------------

    def run(self) -> ComparisonReport:
        """Compute every metric, interval and test, and return the report.

        Returns
        -------
        ComparisonReport

        Raises
        ------
        ValueError
            When no model was added.
        """
        if not self._entries:
            raise ValueError("no model to compare: call add() or add_predictions() first")
        y_true = self.y_true
        baseline, baseline_info = self._baseline()
        rows = [baseline, *self._entries.values()]
        results = [self._result(e) for e in rows]
        base, models = results[0], results[1:]
        pairwise = self._pairwise(y_true, models)
        warnings = self._warnings(base, models, pairwise)
        verdict = self._verdict(base, models, pairwise, baseline_info["class_name"])
        settings = {
            "n_boot": self.n_boot,
            "confidence": self.confidence,
            "random_state": self.random_state,
            "stratified": True,
            "ci_method": "percentile",
            "alpha": self.alpha,
            "correction": self.correction,
            "min_support": self.min_support,
            "top_k": base.top_k,
            "latency_runs": self.latency_runs,
        }
        return ComparisonReport(
            class_names=self.class_names,
            y_true=y_true,
            baseline=base,
            models=models,
            pairwise=pairwise,
            warnings=warnings,
            settings=settings,
            baseline_info=baseline_info,
            machine=_machine(),
            verdict=verdict,
        )

    def _baseline(self) -> tuple[_Entry, dict[str, Any]]:
        y_true = self.y_true
        source = "test set" if self._baseline_labels is None else "baseline_labels"
        fit_on = y_true if self._baseline_labels is None else self._baseline_labels
        dummy = DummyClassifier(strategy="prior").fit(np.zeros((fit_on.size, 1)), fit_on)
        x = np.zeros((y_true.size, 1))
        pred = dummy.predict(x).astype(np.int64)
        prob = np.zeros((y_true.size, self.num_classes))
        prob[:, dummy.classes_.astype(int)] = dummy.predict_proba(x)
        cls = int(pred[0])
        info = {
            "strategy": "majority class",
            "class_index": cls,
            "class_name": self.class_names[cls],
            "source": source,
        }
        entry = _Entry(
            name=BASELINE_NAME,
            kind="baseline",
            y_pred=pred,
            y_prob=prob,
            output=f"always {self.class_names[cls]!r}; probabilities: the class frequencies of "
            f"the {source}",
        )
        return entry, info

    def _result(self, e: _Entry) -> ModelResult:
        y_true = self.y_true
        m = classification_metrics(y_true, e.y_pred, e.y_prob, self.class_names, top_k=self.top_k)
        labels = np.arange(self.num_classes)
        ci: dict[str, BootstrapCI] = {}
        if self.n_boot:
            fns = [partial(CI_METRICS[k], labels=labels) for k in CI_KEYS]
            values = bootstrap_values(
                y_true,
                e.y_pred,
                fns,
                self.n_boot,
                random_state=self.random_state,
                confusion_only=True,
            )
            for j, k in enumerate(CI_KEYS):
                low, high = percentile_interval(values[:, j], self.confidence)
                ci[k] = BootstrapCI(float(m["metrics"][k]), low, high, self.confidence, self.n_boot)
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
            never_predicted=tuple(self.class_names[i] for i in m["never_predicted"]),
            cost=e.cost,
            history=e.history,
            output=e.output,
            notes=tuple(e.notes) + tuple(m["notes"]),
        )

    def _pairwise(self, y_true: np.ndarray, models: list[ModelResult]) -> list[PairwiseResult]:
        pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
        tests = [mcnemar_exact(y_true, a.y_pred, b.y_pred) for a, b in pairs]
        raw = np.array([t.p_value for t in tests], dtype=float)
        adjusted = holm(raw) if self.correction == "holm" else raw
        return [
            PairwiseResult(a.name, b.name, t, float(p), bool(p < self.alpha))
            for (a, b), t, p in zip(pairs, tests, adjusted, strict=True)
        ]

    def _warnings(
        self, base: ModelResult, models: list[ModelResult], pairwise: list[PairwiseResult]
    ) -> list[str]:
        out: list[str] = []
        b_bal = base.metrics["balanced_accuracy"]
        b_acc = base.metrics["accuracy"]
        for r in models:
            bal = r.metrics["balanced_accuracy"]
            ci = r.ci.get("balanced_accuracy")
            if ci is not None:
                if ci.low <= b_bal:
                    out.append(
                        f"model {r.name!r}: balanced accuracy {bal:.3f}, {self.confidence:.0%} CI "
                        f"[{ci.low:.3f}, {ci.high:.3f}], does not clear the majority-class "
                        f"baseline ({b_bal:.3f})"
                    )
            elif bal <= b_bal:
                out.append(
                    f"model {r.name!r}: balanced accuracy {bal:.3f} (no interval: n_boot=0) does "
                    f"not clear the majority-class baseline ({b_bal:.3f})"
                )
            if r.metrics["accuracy"] <= b_acc:
                out.append(
                    f"model {r.name!r}: accuracy {r.metrics['accuracy']:.3f} is no higher than "
                    f"the majority-class baseline's {b_acc:.3f}"
                )
        for r in models:
            if r.never_predicted:
                word = "class" if len(r.never_predicted) == 1 else "classes"
                out.append(
                    f"model {r.name!r} never predicts {word} "
                    + ", ".join(repr(c) for c in r.never_predicted)
                )
        supports = np.bincount(self.y_true, minlength=self.num_classes)
        for c, n in zip(self.class_names, supports, strict=True):
            if n < self.min_support:
                out.append(f"test class {c!r} has {int(n)} examples: too few to judge")
        for p in pairwise:
            if not p.significant:
                adj = (
                    f", Holm-adjusted over {len(pairwise)} pairs {p.p_adjusted:.3g}"
                    if self.correction == "holm" and len(pairwise) > 1
                    else ""
                )
                out.append(
                    f"models {p.model_a!r} and {p.model_b!r}: the difference is not significant "
                    f"(McNemar exact p = {p.test.p_value:.3g}{adj}; {p.test.a_right_b_wrong} vs "
                    f"{p.test.a_wrong_b_right} images right for only one of them)"
                )
        return out

    def _verdict(
        self,
        base: ModelResult,
        models: list[ModelResult],
        pairwise: list[PairwiseResult],
        majority: str,
    ) -> str:
        """One paragraph: baseline first, then who is better on which metric, and significance."""
        b_acc = base.metrics["accuracy"]
        b_bal = base.metrics["balanced_accuracy"]
        conf = f"{self.confidence:.0%} CI "

        def value(r: ModelResult, key: str) -> str:
            c = r.ci.get(key)
            v = r.metrics[key]
            return f"{v:.3f} [{c.low:.3f}, {c.high:.3f}]" if c is not None else f"{v:.3f}"

        out: list[str] = []
        beat: list[str] = []
        for r in models:
            acc, bal = r.metrics["accuracy"], r.metrics["balanced_accuracy"]
            ci = r.ci.get("balanced_accuracy")
            clears = ci.low > b_bal if ci is not None else bal > b_bal
            below = "below" if acc < b_acc else "no higher than"
            if np.array_equal(r.y_pred, base.y_pred):
                out.append(
                    f"{r.name} predicts {majority!r} for every image, exactly like the "
                    f"majority-class baseline: its accuracy {acc:.3f} is the baseline's, not skill."
                )
            elif not clears:
                where = f", {conf}[{ci.low:.3f}, {ci.high:.3f}]," if ci is not None else ""
                out.append(
                    f"{r.name} does not beat the majority-class baseline: its balanced accuracy "
                    f"{bal:.3f}{where} does not clear the baseline's {b_bal:.3f}"
                    + (
                        f", and its accuracy {acc:.3f} is {below} the baseline's {b_acc:.3f}."
                        if acc <= b_acc
                        else "."
                    )
                )
            elif acc <= b_acc:
                out.append(
                    f"{r.name} clears the majority-class baseline on balanced accuracy "
                    f"({value(r, 'balanced_accuracy')} vs {b_bal:.3f}), but its accuracy "
                    f"{acc:.3f} is {below} the baseline's {b_acc:.3f}."
                )
            else:
                beat.append(r.name)
        if beat:
            who = ", ".join(beat[:-1]) + " and " + beat[-1] if len(beat) > 1 else beat[0]
            out.append(
                f"{who} {'beats' if len(beat) == 1 else 'beat'} the majority-class baseline on "
                f"balanced accuracy (interval above {b_bal:.3f}) and on accuracy (above "
                f"{b_acc:.3f})."
            )

        if len(models) == 1:
            r = models[0]
            out.append(
                f"{r.name} scores accuracy {value(r, 'accuracy')}, balanced accuracy "
                f"{value(r, 'balanced_accuracy')} and macro-F1 {value(r, 'macro_f1')}; "
                "with one model there is no other to test it against."
            )
            return " ".join(out)

        tested = " (McNemar's test covers accuracy only; the balanced-accuracy and macro-F1 "
        tested += "differences rest on their intervals alone.)"
        labels = {
            "accuracy": "accuracy",
            "balanced_accuracy": "balanced accuracy",
            "macro_f1": "macro-F1",
        }
        for key, label in labels.items():
            ranked = sorted(models, key=lambda r: -r.metrics[key])  # stable: ties keep add order
            top = ranked[0].metrics[key]
            leaders = [r for r in ranked if np.isclose(r.metrics[key], top)]
            rest = ranked[len(leaders) :]
            if not rest:
                out.append(f"On {label} the models tie at {top:.3f}.")
                continue
            if len(leaders) == 1:
                lead = f"{leaders[0].name} is {'better' if len(models) == 2 else 'best'}"
            else:
                lead = " and ".join(r.name for r in leaders) + " tie for best"
            others = ", ".join(f"{r.name} {value(r, key)}" for r in rest)
            sentence = f"On {label} {lead}, {value(leaders[0], key)} vs {others}"
            if key == "accuracy":
                sentence += self._significance(leaders[0], pairwise)
            out.append(sentence + ".")
        return " ".join(out) + tested

    def _significance(self, leader: ModelResult, pairwise: list[PairwiseResult]) -> str:
        """McNemar's verdict on the accuracy leader against every other model."""
        several = self.correction == "holm" and len(pairwise) > 1
        parts, shown = [], []
        for p in pairwise:
            if leader.name not in (p.model_a, p.model_b):
                continue
            other = p.model_b if p.model_a == leader.name else p.model_a
            t = p.test
            lead_only, other_only = (
                (t.a_right_b_wrong, t.a_wrong_b_right)
                if p.model_a == leader.name
                else (t.a_wrong_b_right, t.a_right_b_wrong)
            )
            pv = f"McNemar exact p = {_fmt_p(t.p_value)}"
            if several:
                pv += f", Holm-adjusted over {len(pairwise)} pairs {_fmt_p(p.p_adjusted)}"
            word = "significant" if p.significant else "not significant"
            parts.append(
                f"the difference from {other} is {word} ({pv}; {lead_only} vs {other_only} "
                "images right for only one of them)"
            )
            shown.append(p.significant)
        text = "; ".join(parts)
        if shown and not any(shown):
            text += ": no model is shown more accurate than another"
        elif shown and all(shown):
            text += f": {leader.name} is the most accurate model here"
        return (", but " if shown and not all(shown) else "; ") + text

    # -- validation ----------------------------------------------------------------------------

    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name == BASELINE_NAME:
            raise ValueError(f"name {name!r} is reserved for the baseline row; choose another")
        if name in self._entries:
            raise ValueError(f"a model named {name!r} was already added; names must be unique")

    def _check_model_class_names(self, name: str, names: Any) -> None:
        if names is None:
            return
        names = tuple(str(c) for c in names)
        if names != self.class_names:
            raise ValueError(
                f"model {name!r} was trained with class_names {list(names)} but the comparator's "
                f"are {list(self.class_names)}: its outputs would be read in the wrong order"
            )

    def _check_labels(self, labels: Any, what: str) -> np.ndarray:
        arr = np.asarray(labels)
        if arr.ndim == 2 and arr.shape[1] == self.num_classes and what != "y_pred":
            arr = np.argmax(arr, axis=1)  # one-hot rows
        if arr.ndim != 1:
            raise ValueError(
                f"{what} must be a 1-D array of class indices"
                + (f" (or one-hot rows of {self.num_classes})" if what != "y_pred" else "")
                + f", got shape {arr.shape}"
            )
        if arr.size == 0:
            raise ValueError(f"{what} is empty: the test set needs examples")
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.issubdtype(arr.dtype, np.number) or not np.all(np.mod(arr, 1) == 0):
                raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = arr[(arr < 0) | (arr >= self.num_classes)]
        if bad.size:
            raise ValueError(
                f"{what} holds label {int(bad[0])}, outside 0..{self.num_classes - 1} "
                f"({self.num_classes} class_names: {list(self.class_names)})"
            )
        return arr

    # -- images and predictions ------------------------------------------------------------------

    def _image_size(
        self, name: str, model: Any, image_size: int | tuple[int, int] | None
    ) -> tuple[int, int] | None:
        if self._kind != "part":
            return None
        if image_size is not None:
            if isinstance(image_size, (int, np.integer)):
                return int(image_size), int(image_size)
            h, w = image_size
            return int(h), int(w)
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, list) or shape is None or len(shape) != 4 or None in shape[1:3]:
            raise ValueError(
                f"model {name!r} has no fixed image input size (input_shape {shape}); pass "
                "image_size=(height, width) to add()"
            )
        return int(shape[1]), int(shape[2])

    def _dataset(self, size: tuple[int, int] | None) -> Any:
        if self._kind == "dataset":
            ds = self._data
            spec = ds.element_spec
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise ValueError(
                    "test_data must yield (images, labels) pairs; it yields "
                    f"{type(spec).__name__} elements"
                )
            if spec[0].shape.rank == 3:  # unbatched images
                ds = ds.batch(self.batch_size)
            return ds
        key = size or (0, 0)
        if key not in self._datasets:
            self._datasets[key] = self._data.to_dataset(
                image_size=size, batch_size=self.batch_size, shuffle=False
            )
        return self._datasets[key]

    def _batches(
        self, size: tuple[int, int] | None, *, labels_only: bool = False
    ) -> Iterator[tuple[Any, np.ndarray]]:
        if self._kind == "arrays":
            x, y = self._data
            for i in range(0, len(y), self.batch_size):
                yield x[i : i + self.batch_size], self._batch_labels(y[i : i + self.batch_size])
            return
        ds = self._dataset(size)
        if labels_only:
            ds = ds.map(lambda *e: e[1])
            for y in ds.as_numpy_iterator():
                yield None, self._batch_labels(y)
            return
        for element in ds.as_numpy_iterator():
            yield element[0], self._batch_labels(element[1])

    def _batch_labels(self, y: Any) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        elif y.ndim == 2:
            if y.shape[1] != self.num_classes:
                raise ValueError(
                    f"test_data yields label batches of shape {y.shape}: one-hot labels need "
                    f"{self.num_classes} columns, one per class name"
                )
            y = np.argmax(y, axis=1)
        elif y.ndim == 0:
            y = y.reshape(1)
        return y

    def _predict_in_order(
        self, call: str, model: Any, size: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Predict the test set; check its labels come in the order of the first pass."""
        raw, labels, sample, seconds = self._predict(model, size)
        labels = self._check_labels(labels, "test_data labels")
        if self._y_true is None:
            self._y_true = labels
        elif not np.array_equal(labels, self._y_true):
            raise ValueError(
                f"{call}: test_data yielded its labels in a different order than on "
                "the first pass (is it shuffled, e.g. .shuffle() with "
                "reshuffle_each_iteration=True?); predictions would not line up with the labels. "
                "Pass a test set in a fixed order."
            )
        return raw, sample, seconds

    def _predict(
        self, model: Any, size: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        outputs, labels = [], []
        sample: list[np.ndarray] = []
        seconds = 0.0
        for x, y in self._batches(size):
            x = np.asarray(x)
            if len(sample) < 32:
                sample.extend(x[: 32 - len(sample)])
            t0 = time.perf_counter()
            out = model.predict_on_batch(x)
            seconds += time.perf_counter() - t0
            if isinstance(out, (list, tuple, dict)):
                raise ValueError("the model has several outputs; compare models with one output")
            outputs.append(np.asarray(out))
            labels.append(y)
        if not outputs:
            raise ValueError("test_data holds no examples")
        return np.concatenate(outputs), np.concatenate(labels), np.stack(sample), seconds


# -- helpers ------------------------------------------------------------------------------------


def _classify_test_data(data: Any) -> tuple[str, Any, np.ndarray | None]:
    """Return (kind, data, labels or None) for the accepted test-data forms."""
    if hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator"):
        import tensorflow as tf

        if int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError("test_data is an infinite dataset (.repeat()?); pass a finite one")
        return "dataset", data, None
    if hasattr(data, "to_dataset") and hasattr(data, "labels"):
        return "part", data, np.asarray(data.labels)
    if isinstance(data, tuple) and len(data) == 2 and np.ndim(data[0]) == 4:
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"test_data (images, labels) have {len(x)} images but {len(y)} labels")
        return "arrays", (x, y), np.asarray(y)
    if isinstance(data, (str, bytes, os.PathLike)):
        raise TypeError(
            "test_data must be a tf.data.Dataset, a SplitPart, (images, labels) arrays or an "
            f"array of labels, got the path {data!r}; load it first, e.g. split.test"
        )
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "test_data must be a tf.data.Dataset, a SplitPart, (images, labels) arrays or an "
            f"array of labels, got {type(data).__name__}"
        ) from exc
    if arr.dtype == object or arr.ndim not in (1, 2):
        raise TypeError(
            "test_data must be a tf.data.Dataset, a SplitPart, (images, labels) arrays or a "
            f"1-D array of labels, got {type(data).__name__} of shape {arr.shape}"
        )
    return "labels", None, arr


def _unwrap_model(obj: Any) -> tuple[Any, dict[str, Any]]:
    """Return (keras model, FineTuner extras) or raise TypeError."""
    model = _as_keras_model(obj)
    if model is not None:
        return model, {}
    inner = getattr(obj, "model", None)
    model = _as_keras_model(inner)
    if model is not None:
        extras = {
            k: getattr(obj, k, None)
            for k in ("history", "train_time_s", "class_names", "tflite_path")
        }
        return model, extras
    raise TypeError(
        "model must be a keras.Model or an object whose .model is one (a tlkit FineTuner), got "
        f"{type(obj).__name__}; for predictions from anything else use "
        "add_predictions(name, y_pred, y_prob)"
    )


def _as_keras_model(obj: Any) -> Any:
    keras = sys.modules.get("keras")  # a keras model exists only if keras was imported
    if obj is not None and keras is not None and isinstance(obj, keras.Model):
        return obj
    return None


def _as_probabilities(name: str, raw: np.ndarray, k: int) -> tuple[np.ndarray, str]:
    """Read a model's outputs as probabilities; say how they were read."""
    out = np.asarray(raw, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim == 1:
        if k != 2:
            raise ValueError(
                f"model {name!r} has one output unit but there are {k} classes; it needs {k}"
            )
        if np.all((out >= 0) & (out <= 1)):
            return np.stack([1 - out, out], axis=1), "sigmoid probability of class 1"
        p = expit(out)
        return np.stack([1 - p, p], axis=1), "one logit (sigmoid applied)"
    if out.ndim != 2 or out.shape[1] != k:
        raise ValueError(
            f"model {name!r} outputs shape (batch, {', '.join(map(str, raw.shape[1:]))}), "
            f"expected (batch, {k}): one value per class"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(f"model {name!r} outputs NaN or infinite values")
    if np.all((out >= -1e-6) & (out <= 1 + 1e-6)) and np.allclose(
        out.sum(axis=1), 1, atol=_PROB_ATOL
    ):
        out = np.clip(out, 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True), "probabilities"
    return softmax(out, axis=1), "logits (softmax applied)"


def _check_probabilities(y_prob: Any, n: int, k: int) -> np.ndarray:
    p = np.asarray(y_prob, dtype=np.float64)
    if p.ndim == 1 and k == 2:
        p = np.stack([1 - p, p], axis=1)
    if p.ndim != 2 or p.shape != (n, k):
        raise ValueError(
            f"y_prob must have shape ({n}, {k}) (test examples, classes), got {p.shape}"
            + (
                "; with 2 classes shape (n,), the probability of class 1, works too"
                if k == 2
                else ""
            )
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("y_prob holds NaN or infinite values")
    if np.any(p < -1e-9) or np.any(p > 1 + 1e-9):
        raise ValueError(
            "y_prob must hold probabilities in [0, 1]; for logits use "
            "scipy.special.softmax(logits, axis=1) first"
        )
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > _PROB_ATOL)
    if bad.size:
        raise ValueError(
            f"y_prob rows must sum to 1; row {int(bad[0])} sums to {sums[bad[0]]:.4g} "
            f"({bad.size} rows off). Pass probabilities, e.g. scipy.special.softmax(logits, axis=1)"
        )
    return np.clip(p, 0.0, 1.0) / sums[:, None]


def _as_history(h: Any) -> dict[str, list[float]] | None:
    if h is None:
        return None
    if hasattr(h, "history") and isinstance(h.history, dict):  # keras.callbacks.History
        h = h.history
    if not isinstance(h, dict):
        raise TypeError(
            f"history must be a dict of metric name -> per-epoch values or a keras History, "
            f"got {type(h).__name__}"
        )
    out = {}
    for k, v in h.items():
        vals = np.asarray(v, dtype=float).ravel()
        if vals.size:
            out[str(k)] = [float(x) for x in vals]
    return out or None


def _count_params(model: Any) -> int | None:
    try:
        return int(model.count_params())
    except Exception:  # unbuilt models cannot count
        return None


def _keras_size(model: Any) -> tuple[int | None, str | None]:
    with tempfile.TemporaryDirectory(prefix="tlkit-size-") as d:
        path = Path(d) / "model.keras"
        try:
            model.save(path)
        except Exception as exc:  # custom layers without get_config, lambdas, ...
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return path.stat().st_size, None


def _latencies(model: Any, sample: np.ndarray, runs: int) -> tuple[float, float]:
    """Mean ms per image at batch 1 and 32: median of timed runs after a warm-up."""
    out = []
    for bs in (1, 32):
        x = sample[np.arange(bs) % len(sample)]
        model.predict_on_batch(x)  # warm-up: tracing and allocation
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - t0)
        out.append(float(np.median(times)) / bs * 1000.0)
    return out[0], out[1]


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(terse=True),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        info["tensorflow"] = getattr(tf, "__version__", None)
        try:
            gpus = tf.config.list_logical_devices("GPU")
        except Exception:  # pragma: no cover
            gpus = []
        info["accelerator"] = ", ".join(g.name for g in gpus) or None
    return info


def _replace(cost: Cost, **changes: Any) -> Cost:
    return dataclasses.replace(cost, **changes)


def _optional_int(v: Any, name: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"{name} must be an integer >= 0 or None, got {v!r}")
    return int(v)


def _optional_float(v: Any, name: str) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds or milliseconds, got {v!r}") from None
    if not np.isfinite(f) or f < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    return f
