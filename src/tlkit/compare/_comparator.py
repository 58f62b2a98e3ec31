"""ModelComparator: predict once per model, then compare against a baseline, honestly.

The class orchestrates; the jobs live in their own modules: :mod:`._testset` (the
test-set forms and the prediction pass), :mod:`._inputs` (the model forms and their data),
:mod:`._cost` (size and latency), :mod:`._analysis` (metrics, intervals, tests),
:mod:`._verdict` (the warnings and the verdict: what the report says first).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._calibration import MAX_TEMPERATURE, MIN_TEMPERATURE, apply_temperature
from tlkit._validation import (
    check_bool,
    check_choice,
    check_fraction,
    check_image_size,
    check_int,
    check_number,
    check_seed,
)
from tlkit.compare import _analysis, _cost
from tlkit.compare._format import BASELINE_NAME
from tlkit.compare._inputs import (
    Entry,
    as_history,
    check_class_names,
    check_exported,
    check_labels,
    check_model_name,
    predictions_entry,
    resolve_class_names,
    unwrap_model,
)
from tlkit.compare._report import ComparisonReport
from tlkit.compare._testset import TestSet, as_probabilities
from tlkit.errors import ComparisonError
from tlkit.protocols import TrainedClassifier

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from tlkit.augment import Views

__all__ = ["ModelComparator"]

_CORRECTIONS = ("holm", None)


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
          shuffle=False)`` at each model's input size, and its files give
          each model's gallery of mistakes (``report[name].gallery``);
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
    seed : int or None
        Seed of the resampling (``>= 0``; default 0); the same seed gives the
        same intervals. ``None`` draws a fresh one. The report records it
        under ``settings["seed"]``.
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

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        An argument value out of range (a ``ValueError``), e.g. ``seed=-1``;
        the message names the argument.
    tlkit.errors.ComparisonError
        Data that cannot be used (a ``ValueError``): labels outside the class
        names, class names that differ from the test data's, a test set in no
        fixed order, ...
    tlkit.errors.ArgumentTypeError
        An argument of the wrong type (a ``TypeError``), e.g. ``n_boot=True``.

    See Also
    --------
    tlkit.compare.mcnemar_exact, tlkit.compare.bootstrap_ci,
    tlkit.protocols.TrainedClassifier

    Notes
    -----
    :meth:`add` accepts a ``keras.Model`` or a
    :class:`tlkit.protocols.TrainedClassifier` (such as a
    :class:`~tlkit.finetune.FineTuner`): its ``model`` is predicted with, its
    ``history``, ``train_time_s``, ``class_names`` (checked against the
    comparator's) and ``tflite_path`` (whose size is reported) go in the
    report. An object with only ``model`` works too.

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
        seed: int | None = 0,
        alpha: float = 0.05,
        correction: str | None = "holm",
        min_support: int = 10,
        top_k: int | None = None,
        batch_size: int = 32,
        latency_runs: int = 5,
    ) -> None:
        self.seed = check_seed("seed", seed, allow_none=True)
        self.n_boot = check_int("n_boot", n_boot, minimum=0)
        self.confidence = check_fraction("confidence", confidence)
        self.alpha = check_fraction("alpha", alpha)
        self.correction = check_choice("correction", correction, _CORRECTIONS)
        self.min_support = check_int("min_support", min_support, minimum=0)
        self.top_k = check_int("top_k", top_k, minimum=1, allow_none=True)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.latency_runs = check_int("latency_runs", latency_runs, minimum=1)

        self._test = TestSet(test_data, batch_size=self.batch_size)
        own = getattr(test_data, "class_names", None) if self._test.kind == "part" else None
        names = resolve_class_names(class_names, own)
        self.class_names = names
        self._test.set_class_names(names)
        self._baseline_labels = (
            None
            if baseline_labels is None
            else self._check_labels(baseline_labels, "baseline_labels")
        )
        self._entries: dict[str, Entry] = {}

    def __repr__(self) -> str:
        return (
            f"ModelComparator(test_data={self._test.kind}, classes={len(self.class_names)}, "
            f"models={list(self._entries)})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.class_names)

    @property
    def y_true(self) -> np.ndarray:
        """Test labels in test-set order (read from the data on first use)."""
        return self._test.y_true

    @property
    def model_names(self) -> list[str]:
        """Names of the models added so far."""
        return list(self._entries)

    # -- adding models ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        model: keras.Model | TrainedClassifier,
        *,
        image_size: int | tuple[int, int] | None = None,
        tflite_path: str | os.PathLike[str] | None = None,
        measure_cost: bool = True,
        tta: Views | str | Sequence[str] | None = None,
    ) -> ModelComparator:
        """Predict the test set with a model, timing it, and keep the predictions.

        Parameters
        ----------
        name : str
            Row name in the report; unique.
        model : keras.Model or tlkit.protocols.TrainedClassifier
            A ``keras.Model`` with one image input and one output of ``K``
            probabilities or logits (or one sigmoid unit when ``K == 2``), or a
            :class:`~tlkit.protocols.TrainedClassifier` (such as a
            :class:`~tlkit.finetune.FineTuner`) whose ``model`` is one; an
            object with only ``model`` works too. A FineTuner calibrated with
            :meth:`~tlkit.finetune.FineTuner.calibrate` is scored with its
            temperature applied (the row's notes say so).
        image_size : int or (int, int), optional
            Size to load a SplitPart's images at; default: the model's input
            size. Ignored for other test data.
        tflite_path : str or os.PathLike, optional
            An exported ``.tflite`` file of this model; its size is reported.
        measure_cost : bool
            Measure the ``.keras`` size and the latencies (default ``True``).
        tta : Views, view-set name or list of view names, optional
            Test-time augmentation: score the mean of the model's outputs over
            these views of each test image (e.g. ``"flip"``, ``"dihedral"``; see
            :class:`tlkit.augment.Views`). The report says so in the row's
            notes, and ``predict_time_s`` covers every view; the latency
            columns time one plain forward pass (what an exported model does).
            Compare a model with and without TTA by adding it twice.

        Returns
        -------
        ModelComparator
            ``self``, for chaining.

        Examples
        --------
        A tiny Keras model on six images (a FineTuner is added the same way):

        >>> import keras
        >>> import numpy as np
        >>> images = np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2, activation="softmax")])
        >>> c = ModelComparator((images, [0, 1, 0, 1, 0, 1]), ["cat", "dog"], n_boot=0)
        >>> c.add("tiny", model, measure_cost=False)
        ModelComparator(test_data=arrays, classes=2, models=['tiny'])
        >>> c.run()["tiny"].cost.params
        386
        """
        self._check_name(name)
        measure_cost = check_bool("measure_cost", measure_cost)
        image_size = check_image_size("image_size", image_size, allow_none=True)
        views = None
        if tta is not None:
            from tlkit.augment import Views  # TensorFlow: imported when TTA is asked for

            views = Views.coerce(tta)
        keras_model, extras = unwrap_model(model)
        check_class_names(name, extras.get("class_names"), self.class_names)
        if not self._test.has_images:
            raise ComparisonError(
                f"add({name!r}, ...): the comparator was built from labels only, so there are no "
                "images to predict; build it from a tf.data.Dataset, a SplitPart or (images, "
                "labels) arrays, or pass predictions with add_predictions()"
            )
        size = self._test.image_size(name, keras_model, image_size)
        # Check everything cheap before the prediction pass.
        history = as_history(extras.get("history"))
        train_time = check_number(
            "train_time_s", extras.get("train_time_s"), low=0, allow_none=True
        )
        tfl = tflite_path if tflite_path is not None else extras.get("tflite_path")
        tflite_size_bytes = _cost.tflite_size(name, tfl)
        temperature = check_number(
            f"the temperature of model {name!r}",
            extras.get("temperature"),
            low=MIN_TEMPERATURE,
            high=MAX_TEMPERATURE,
            allow_none=True,
            error=ComparisonError,  # the model's state, not an argument
        )

        predictor = keras_model if views is None else _MeanOverViews(keras_model, views)
        raw, sample, seconds = self._test.predict_in_order(f"add({name!r}, ...)", predictor, size)
        y_prob, output = as_probabilities(name, raw, self.num_classes)
        if temperature is not None:
            y_prob = apply_temperature(y_prob, temperature)
        cost, notes = _cost.keras_cost(
            keras_model,
            sample,
            predict_time_s=seconds,
            tflite_size_bytes=tflite_size_bytes,
            train_time_s=train_time,
            measure=measure_cost,
            runs=self.latency_runs,
        )
        if views is not None:
            notes = [
                f"scored with test-time augmentation: the mean output over {len(views)} views "
                f"({', '.join(views.names)}) of each test image; predict_time_s covers every "
                "view, the latencies one plain pass",
                *notes,
            ]
        if temperature is not None:
            notes = [
                f"probabilities calibrated with the model's temperature T={temperature:.4g} "
                "(FineTuner.calibrate): softmax(log(p) / T)",
                *notes,
            ]
        y_pred = np.argmax(y_prob, axis=1).astype(np.int64)
        self._entries[name] = Entry(name, "keras", y_pred, y_prob, cost, history, output, notes)
        return self

    def add_predictions(
        self,
        name: str,
        y_pred: Any = None,
        y_prob: Any = None,
        *,
        params: int | None = None,
        size_bytes: int | None = None,
        tflite_size_bytes: int | None = None,
        latency_ms: float | None = None,
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
        params, size_bytes, tflite_size_bytes : int, optional
            Parameter count and sizes on disk (``.keras`` or other, TFLite), for
            the cost table.
        latency_ms, latency_ms_batch32 : float, optional
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
        self._entries[name] = predictions_entry(
            name,
            y_pred,
            y_prob,
            y_true=self.y_true,
            class_names=self.class_names,
            history=history,
            params=params,
            size_bytes=size_bytes,
            tflite_size_bytes=tflite_size_bytes,
            latency_ms=latency_ms,
            latency_ms_batch32=latency_ms_batch32,
            train_time_s=train_time_s,
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
            ``image_size`` ``(height, width)``, and optionally ``size_bytes``,
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
        Side by side with the Keras model it was exported from (skipped here: it
        needs a trained FineTuner and its exported file):

        >>> from tlkit.export import ExportedModel
        >>> comparator.add("keras", tuner).add_exported(
        ...     "int8", ExportedModel("model_int8.tflite"))  # doctest: +SKIP
        """
        self._check_name(name)
        measure_cost = check_bool("measure_cost", measure_cost)
        h, w = check_exported(name, exported)
        check_class_names(name, getattr(exported, "class_names", None), self.class_names)
        if not self._test.has_images:
            raise ComparisonError(
                f"add_exported({name!r}, ...): the comparator was built from labels only, so "
                "there are no images to predict"
            )
        size = (h, w) if self._test.kind == "part" else None
        raw, sample, seconds = self._test.predict_in_order(
            f"add_exported({name!r}, ...)", exported, size
        )
        y_prob, output = as_probabilities(name, raw, self.num_classes)
        cost, notes = _cost.exported_cost(
            exported, sample, predict_time_s=seconds, measure=measure_cost, runs=self.latency_runs
        )
        y_pred = np.argmax(y_prob, axis=1).astype(np.int64)
        self._entries[name] = Entry(name, "exported", y_pred, y_prob, cost, None, output, notes)
        return self

    # -- the comparison ----------------------------------------------------------------------

    def run(self) -> ComparisonReport:
        """Compute every metric, interval and test, and return the report.

        Returns
        -------
        ComparisonReport

        Raises
        ------
        tlkit.errors.ComparisonError
            When no model was added.
        """
        if not self._entries:
            raise ComparisonError("no model to compare: call add() or add_predictions() first")
        return _analysis.analyse(
            list(self._entries.values()),
            self.y_true,
            self.class_names,
            baseline_labels=self._baseline_labels,
            n_boot=self.n_boot,
            confidence=self.confidence,
            seed=self.seed,
            alpha=self.alpha,
            correction=self.correction,
            min_support=self.min_support,
            top_k=self.top_k,
            latency_runs=self.latency_runs,
            files=self._test.image_files(),
        )

    # -- checks ----------------------------------------------------------------------------------

    def _check_name(self, name: Any) -> None:
        check_model_name(name, self._entries, BASELINE_NAME)

    def _check_labels(self, labels: Any, what: str) -> np.ndarray:
        return check_labels(labels, what, self.class_names)


class _MeanOverViews:
    """A model whose ``predict_on_batch`` is the mean of the model's outputs over views."""

    def __init__(self, model: Any, views: Views) -> None:
        self.model, self.views = model, views
        self.input_shape = getattr(model, "input_shape", None)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        outs = [
            np.asarray(self.model.predict_on_batch(v), np.float64) for v in self.views.all_views(x)
        ]
        return np.mean(outs, axis=0)
