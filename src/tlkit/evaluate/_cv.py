"""Cross-validation: a new model per fold, out-of-fold predictions for every image."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._validation import (
    check_bool,
    check_holdout_share,
    check_int,
    check_number,
    check_seed,
    type_name,
)
from tlkit.compare import BootstrapCI, ModelComparator, bootstrap_ci
from tlkit.data import DEFAULT_INNER_VAL, SkippedFile, Split, make_folds
from tlkit.errors import ArgumentTypeError, ComparisonError
from tlkit.evaluate._model import (
    ModelFactory,
    check_fit_kwargs,
    check_make_model,
    fit_and_predict,
    metric_labels,
    say,
)
from tlkit.metrics import CI_METRICS, metrics_report

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare import ComparisonReport
    from tlkit.data import Folds

__all__ = ["CVResult", "compare_cv", "cross_validate"]

#: Bootstrap resamples for the pooled intervals (``n_boot=`` changes it; ``0``: none).
DEFAULT_N_BOOT = 1000


@dataclass(frozen=True, eq=False)
class CVResult:
    """What :func:`cross_validate` returns: out-of-fold predictions, per-fold and pooled metrics.

    Attributes
    ----------
    root : pathlib.Path
        Folder the paths are relative to.
    class_names : tuple of str
    paths : tuple of str
        Every image (relative paths, sorted); the rows of the arrays below.
    y_true : numpy.ndarray of int, shape (n,)
    probabilities : numpy.ndarray of float, shape (repeats, n, K)
        Out-of-fold class probabilities: each image predicted by the model
        that did not see it, once per repeat.
    fold : numpy.ndarray of int, shape (repeats, n)
        The fold that tested each image.
    folds, repeats, seed : int
    fold_results : tuple of dict
        Per fold: ``repeat``, ``fold``, ``n_train``, ``n_val``, ``n_test``,
        ``train_time_s`` and ``metrics`` (name -> value, on that fold's test images).
    skipped : tuple of SkippedFile
        Files in no fold, with the reason.
    warnings : tuple of str
    params : dict
        The settings (folds, seed, inner validation share, fit_kwargs, ...).
    n_boot : int
        Bootstrap resamples of the pooled intervals.
    confidence : float
    """

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    y_true: np.ndarray
    probabilities: np.ndarray
    fold: np.ndarray
    folds: int
    repeats: int
    seed: int
    fold_results: tuple[dict[str, Any], ...]
    skipped: tuple[SkippedFile, ...] = ()
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    n_boot: int = DEFAULT_N_BOOT
    confidence: float = 0.95

    def __repr__(self) -> str:
        m = self.pooled_metrics
        return (
            f"CVResult(n={len(self.paths)}, classes={len(self.class_names)}, folds={self.folds}, "
            f"repeats={self.repeats}, accuracy={m['accuracy']:.3f}, "
            f"balanced_accuracy={m['balanced_accuracy']:.3f})"
        )

    @property
    def oof_probabilities(self) -> np.ndarray:
        """Out-of-fold probabilities ``(n, K)``, averaged over the repeats."""
        return self.probabilities.mean(axis=0)

    @property
    def oof_predictions(self) -> np.ndarray:
        """Out-of-fold predicted class indices ``(n,)`` (argmax of :attr:`oof_probabilities`)."""
        return np.argmax(self.oof_probabilities, axis=1).astype(np.int64)

    @property
    def train_time_s(self) -> float:
        """Training seconds of every fold together."""
        return float(sum(r["train_time_s"] for r in self.fold_results))

    @cached_property
    def _pooled(self) -> dict[str, Any]:
        return metrics_report(
            self.y_true, self.oof_predictions, self.oof_probabilities, self.class_names
        )

    @property
    def pooled_metrics(self) -> dict[str, float | None]:
        """Every metric of :class:`~tlkit.compare.ModelComparator` on the pooled predictions."""
        return dict(self._pooled["metrics"])

    @cached_property
    def intervals(self) -> dict[str, BootstrapCI]:
        """Stratified bootstrap intervals of accuracy, balanced accuracy and macro-F1 (pooled)."""
        labels = metric_labels(self.class_names)
        return {
            name: bootstrap_ci(
                self.y_true,
                self.oof_predictions,
                name,
                n_boot=self.n_boot,
                confidence=self.confidence,
                seed=self.seed,
                labels=labels,
            )
            for name in CI_METRICS
        }

    def fold_summary(self) -> dict[str, dict[str, float]]:
        """Mean, standard deviation, min and max over the folds of each interval metric."""
        out = {}
        for name in CI_METRICS:
            vals = np.asarray(
                [r["metrics"][name] for r in self.fold_results if r["metrics"][name] is not None],
                dtype=float,
            )
            out[name] = {
                "mean": float(vals.mean()) if vals.size else float("nan"),
                "std": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
                "min": float(vals.min()) if vals.size else float("nan"),
                "max": float(vals.max()) if vals.size else float("nan"),
            }
        return out

    # -- the comparison report ----------------------------------------------------------------

    def report(
        self,
        name: str = "cv",
        *,
        others: Mapping[str, CVResult] | None = None,
        n_boot: int | None = None,
        seed: int | None = None,
    ) -> ComparisonReport:
        """A :class:`~tlkit.compare.ComparisonReport` over the pooled out-of-fold predictions.

        Every image of the dataset is a test image, predicted by the model
        that did not train on it. With ``others`` (CV results over the same
        files, e.g. another backbone with the same seed), the models are
        compared image by image: paired bootstrap intervals and McNemar's test.

        Parameters
        ----------
        name : str
            Row name of this result.
        others : mapping of str to CVResult, optional
            More rows, by name.
        n_boot, seed : int, optional
            Bootstrap resamples and seed (default: this result's).

        Returns
        -------
        ComparisonReport
        """
        return compare_cv(
            {name: self, **dict(others or {})},
            n_boot=self.n_boot if n_boot is None else n_boot,
            seed=self.seed if seed is None else seed,
        )

    # -- output --------------------------------------------------------------------------------

    def to_dict(self, *, include_predictions: bool = True) -> dict[str, Any]:
        """JSON-ready: settings, per-fold and pooled metrics with intervals (and predictions)."""
        from tlkit.evaluate._render import cv_dict

        return cv_dict(self, include_predictions=include_predictions)

    def to_json(self, *, indent: int | None = 2, include_predictions: bool = True) -> str:
        """:meth:`to_dict` as JSON (schema ``"tlkit.cv/1"``; undefined numbers are ``null``)."""
        return json.dumps(
            self.to_dict(include_predictions=include_predictions),
            indent=indent,
            ensure_ascii=False,
            allow_nan=False,
        )

    def to_markdown(self) -> str:
        """A Markdown summary: pooled metrics with intervals, then the folds."""
        from tlkit.evaluate._render import cv_markdown

        return cv_markdown(self)

    def predictions_csv(self) -> str:
        """Out-of-fold predictions, one row per image and repeat.

        Columns: ``path``, ``label``, ``repeat``, ``fold``, ``predicted``,
        ``correct``, then ``p_<class>`` per class.
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            ["path", "label", "repeat", "fold", "predicted", "correct"]
            + [f"p_{c}" for c in self.class_names]
        )
        for r in range(self.repeats):
            pred = np.argmax(self.probabilities[r], axis=1)
            for i, path in enumerate(self.paths):
                w.writerow(
                    [
                        path,
                        self.class_names[self.y_true[i]],
                        r,
                        int(self.fold[r, i]),
                        self.class_names[pred[i]],
                        int(pred[i] == self.y_true[i]),
                        *(f"{p:.6f}" for p in self.probabilities[r, i]),
                    ]
                )
        return buf.getvalue()

    def save(self, directory: str | os.PathLike[str], name: str = "cv") -> list[Path]:
        """Write the comparison report (:meth:`report`), ``cv.json``, ``cv.md`` and ``oof_predictions.csv``.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        out = Path(directory)
        written = self.report(name).save(out)
        for fname, text in (
            ("cv.json", self.to_json() + "\n"),
            ("cv.md", self.to_markdown()),
            ("oof_predictions.csv", self.predictions_csv()),
        ):
            path = out / fname
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def compare_cv(
    results: Mapping[str, CVResult], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> ComparisonReport:
    """Compare cross-validation results on the pooled out-of-fold predictions of the same images.

    Parameters
    ----------
    results : mapping of str to CVResult
        Row name -> result; every result must cover the same files with the
        same labels (same dataset; the same ``seed`` also gives the same folds).
    n_boot, seed : int
        Bootstrap resamples and seed of the comparison.

    Returns
    -------
    ComparisonReport
        A warning notes results whose folds differ (trained on other subsets).

    Raises
    ------
    tlkit.errors.ComparisonError
        Results over different files, labels or classes.
    """
    if not isinstance(results, Mapping) or not results:
        raise ArgumentTypeError(
            f"results must be a non-empty dict of name -> CVResult, got {type_name(results)}"
        )
    items = list(results.items())
    first_name, first = items[0]
    for name, r in items:
        if not isinstance(r, CVResult):
            raise ArgumentTypeError(f"results[{name!r}] must be a CVResult, got {type_name(r)}")
        if r.class_names != first.class_names or r.paths != first.paths:
            raise ComparisonError(
                f"CV results {first_name!r} and {name!r} cover different images or classes "
                f"({len(first.paths)} vs {len(r.paths)} images); compare results of the same "
                "dataset"
            )
        if not np.array_equal(r.y_true, first.y_true):
            raise ComparisonError(
                f"CV results {first_name!r} and {name!r} label images differently"
            )
    comparator = ModelComparator(first.y_true, first.class_names, n_boot=n_boot, seed=seed)
    for name, r in items:
        comparator.add_predictions(
            name,
            r.oof_predictions,
            r.oof_probabilities,
            train_time_s=r.train_time_s,
        )
    report = comparator.run()
    differ = [n for n, r in items[1:] if not np.array_equal(r.fold, first.fold)]
    if differ:
        report.warnings = (
            *report.warnings,
            f"CV results {', '.join(map(repr, differ))} used other folds than {first_name!r} "
            "(another seed, folds or groups): the images are the same, the training subsets "
            "are not",
        )
    report.settings["cross_validation"] = {
        n: {"folds": r.folds, "repeats": r.repeats, "seed": r.seed} for n, r in items
    }
    return report


def cross_validate(
    make_model: Callable[[], Any],
    data: str | os.PathLike[str] | Split,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    *,
    val: float | None = DEFAULT_INNER_VAL,
    fit_kwargs: Mapping[str, Any] | None = None,
    groups: str | Callable[[str], Hashable | None] | None = None,
    groups_on: str = "name",
    near_duplicates: str | None = None,
    on_conflict: str = "error",
    allow_small_classes: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    confidence: float = 0.95,
    verbose: bool = True,
) -> CVResult:
    """K-fold cross-validation with stratified, leak-free folds: every image predicted once.

    The folds follow the splitter's rules (:func:`tlkit.data.make_folds`):
    stratified by class, identical files, ``groups=`` matches and
    near-duplicates never straddle two folds, every file accounted for. For
    each fold a new model (``make_model()``) trains on the other folds, picks
    its best epoch on an inner validation carve-out of them, and predicts the
    held-out fold.

    Parameters
    ----------
    make_model : callable
        Returns a new, unfitted model each call: a
        :class:`~tlkit.finetune.FineTuner`, or anything with
        ``fit(train, val, **fit_kwargs)`` and ``predict(part)`` returning
        ``(n, K)`` probabilities (:class:`~tlkit.evaluate.Estimator`).
    data : str, os.PathLike or Split
        A folder-per-class dataset, or a :class:`~tlkit.data.Split` whose
        three parts are pooled.
    folds, repeats, seed : int
        ``K`` (2 to 100); repeat ``r`` assigns folds with seed ``seed + r``.
    val : float or None
        Share of the training folds carved out (stratified, group-safe) as
        ``fit``'s validation data (default 0.15); ``None`` passes no
        validation data.
    fit_kwargs : dict, optional
        Passed to every ``fit``, e.g. ``{"epochs": 5}`` (a per-fold budget).
    groups, groups_on, near_duplicates, on_conflict, allow_small_classes
        As for :func:`tlkit.data.make_folds`.
    n_boot : int
        Bootstrap resamples of the pooled intervals (default 1000).
    confidence : float
        Interval coverage (default 0.95).
    verbose : bool
        Progress lines on stderr.

    Returns
    -------
    CVResult

    Raises
    ------
    tlkit.errors.EvaluationError
        ``make_model`` returned a model already trained or seen, or
        ``predict`` returned no probabilities of the right shape.
    """
    factory = ModelFactory(check_make_model(make_model))
    kwargs = check_fit_kwargs(fit_kwargs)
    share = check_holdout_share("val", val)
    n_boot = check_int("n_boot", n_boot, minimum=0)
    confidence = check_number(
        "confidence", confidence, low=0, high=1, low_open=True, high_open=True
    )
    verbose = check_bool("verbose", verbose)
    seed = check_seed("seed", seed)
    fs = make_folds(
        data,
        folds,
        repeats,
        seed,
        groups=groups,
        groups_on=groups_on,
        near_duplicates=near_duplicates,
        on_conflict=on_conflict,
        allow_small_classes=allow_small_classes,
        progress=False if not verbose else None,
    )
    samples = fs.samples
    index = {s.path: i for i, s in enumerate(samples)}
    k = fs.num_classes
    probs = np.full((fs.repeats, len(samples), k), np.nan)
    fold_of = np.full((fs.repeats, len(samples)), -1, dtype=np.int64)
    results: list[dict[str, Any]] = []
    for split in fs.splits(val=share):
        p, result = _one_fold(factory, split, fs, kwargs, verbose)
        r, f = result["repeat"], result["fold"]
        rows = [index[s.path] for s in split.test]
        probs[r, rows] = p
        fold_of[r, rows] = f
        results.append(result)
    params = {
        **fs.params,
        "inner_val": share,
        "fit_kwargs": {key: repr(v) for key, v in kwargs.items()},
        "model": getattr(make_model, "__qualname__", type(make_model).__name__),
    }
    return CVResult(
        root=fs.root,
        class_names=fs.class_names,
        paths=tuple(s.path for s in samples),
        y_true=np.asarray([s.label for s in samples], dtype=np.int64),
        probabilities=probs,
        fold=fold_of,
        folds=fs.folds,
        repeats=fs.repeats,
        seed=seed,
        fold_results=tuple(results),
        skipped=fs.skipped,
        warnings=fs.warnings,
        params=params,
        n_boot=n_boot,
        confidence=confidence,
    )


def _one_fold(
    factory: ModelFactory, split: Split, fs: Folds, kwargs: dict[str, Any], verbose: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Train and test one fold: its test images' probabilities and its row of ``fold_results``."""
    r, f = split.params["repeat"], split.params["fold"]
    what = f"fold {f + 1}/{fs.folds}" + (f" of repeat {r + 1}" if fs.repeats > 1 else "")
    say(
        verbose,
        f"tlkit cv: {what}: training on {len(split.train)} images "
        f"({len(split.val)} for validation), testing on {len(split.test)}",
    )
    model = factory(what)
    p, seconds = fit_and_predict(
        model, split.train, split.val, split.test, fs.num_classes, kwargs, what
    )
    del model
    y = split.test.labels.astype(np.int64)
    m = metrics_report(y, np.argmax(p, axis=1), p, fs.class_names)["metrics"]
    say(verbose, f"tlkit cv: {what}: balanced accuracy {m['balanced_accuracy']:.3f}")
    result = {
        "repeat": r,
        "fold": f,
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_test": len(split.test),
        "train_time_s": seconds,
        "metrics": m,
    }
    return p, result
