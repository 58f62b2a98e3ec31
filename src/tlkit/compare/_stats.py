"""Statistics: stratified bootstrap intervals, McNemar's exact test, Holm's correction."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import sklearn
from scipy.stats import binomtest

from tlkit._validation import check_bool, check_fraction, check_int, check_seed, type_name
from tlkit.errors import ArgumentTypeError, ComparisonError, InvalidArgumentError

__all__ = [
    "BootstrapCI",
    "McNemarResult",
    "bootstrap_ci",
    "bootstrap_indices",
    "bootstrap_values",
    "holm",
    "mcnemar_exact",
]


@dataclass(frozen=True)
class BootstrapCI:
    """A bootstrap percentile confidence interval.

    Attributes
    ----------
    estimate : float
        The metric on the whole test set.
    low, high : float
        Interval bounds (percentiles of the bootstrap distribution).
    confidence : float
        Coverage the interval aims at, e.g. ``0.95``.
    n_boot : int
        Number of resamples.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int

    def __contains__(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)

    def to_list(self) -> list[float]:
        """Return ``[low, high]``."""
        return [self.low, self.high]


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test of two classifiers on the same test set.

    Attributes
    ----------
    a_right_b_wrong : int
        Test images model A classifies correctly and model B does not.
    a_wrong_b_right : int
        Test images model B classifies correctly and model A does not.
    p_value : float
        Two-sided exact binomial p-value of the discordant counts (1.0 when there
        are none).
    """

    a_right_b_wrong: int
    a_wrong_b_right: int
    p_value: float

    @property
    def discordant(self) -> int:
        """Number of images on which exactly one of the two models is right."""
        return self.a_right_b_wrong + self.a_wrong_b_right


def _as_labels(y: object, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ComparisonError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.mod(arr, 1) == 0):
            raise ComparisonError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    return arr.astype(np.int64, copy=False)


def mcnemar_exact(y_true: object, y_pred_a: object, y_pred_b: object) -> McNemarResult:
    """Compare two classifiers on the same test set with McNemar's exact test.

    Only the images on which exactly one model is right carry information.
    Under the null hypothesis (both models have the same error rate) each such
    image is equally likely to favour either model, so the p-value is
    :func:`scipy.stats.binomtest` of ``b`` successes in ``b + c`` trials with
    ``p = 0.5``, two-sided. With no discordant image the p-value is 1.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True class indices.
    y_pred_a, y_pred_b : array-like of int, shape (n,)
        Predicted class indices of models A and B, in the same order.

    Returns
    -------
    McNemarResult

    Examples
    --------
    >>> r = mcnemar_exact([0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [1, 0, 0, 0, 0])
    >>> r.a_right_b_wrong, r.a_wrong_b_right, round(r.p_value, 3)
    (3, 0, 0.25)
    """
    yt = _as_labels(y_true, "y_true")
    a = _as_labels(y_pred_a, "y_pred_a")
    b = _as_labels(y_pred_b, "y_pred_b")
    for name, arr in (("y_pred_a", a), ("y_pred_b", b)):
        if arr.shape != yt.shape:
            raise ComparisonError(
                f"{name} has {arr.size} predictions but y_true has {yt.size} labels"
            )
    right_a = a == yt
    right_b = b == yt
    n_ab = int(np.sum(right_a & ~right_b))
    n_ba = int(np.sum(~right_a & right_b))
    if n_ab + n_ba == 0:
        p = 1.0
    else:
        p = float(binomtest(n_ab, n_ab + n_ba, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(n_ab, n_ba, p)


def holm(p_values: object) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple comparisons.

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i`` (``i``
    from 0), the results are made non-decreasing in that order and capped at 1.
    Rejecting where the adjusted value is below ``alpha`` controls the
    family-wise error rate at ``alpha``.

    Parameters
    ----------
    p_values : array-like of float, shape (m,)

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, in the input order.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ComparisonError(f"p_values must be 1-D, got shape {p.shape}")
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(scaled, 1.0)
    return out


def bootstrap_indices(
    y_true: object,
    n_boot: int = 1000,
    *,
    seed: int | None = 0,
    stratified: bool = True,
) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` index arrays that resample the test set with replacement.

    Stratified resampling draws, for each true class, as many indices as the
    class has examples, from that class only: every resample keeps the class
    supports of the test set, so an interval reflects how well the model does
    on each class, not how many examples of each class the test set happened to
    hold. The same ``y_true``, ``n_boot`` and ``seed`` give the same
    resamples, so intervals of several models are paired.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
    n_boot : int
        Number of resamples, ``>= 0``.
    seed : int or None
        Seed (``>= 0``) of a :func:`numpy.random.default_rng` generator;
        ``None`` draws a fresh one.
    stratified : bool
        Resample within each true class (default) or from the whole test set.

    Yields
    ------
    numpy.ndarray of int, shape (n,)

    Examples
    --------
    >>> idx = next(bootstrap_indices([0, 0, 0, 1], 5, seed=0))
    >>> sorted(int(i) for i in idx)[-1]  # class 1's only example is always drawn once
    3
    """
    seed = check_seed("seed", seed, allow_none=True)
    yt = _as_labels(y_true, "y_true")
    n_boot = check_int("n_boot", n_boot, minimum=0)
    stratified = check_bool("stratified", stratified)
    return _indices(yt, n_boot, seed, stratified)


def _indices(
    yt: np.ndarray, n_boot: int, seed: int | None, stratified: bool
) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(yt == c) for c in np.unique(yt)] if stratified else [np.arange(yt.size)]
    )
    for _ in range(int(n_boot)):
        yield np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Return the ``confidence`` percentile interval of bootstrap values (NaNs dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(v, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_values(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metrics: Sequence[Callable[[np.ndarray, np.ndarray], float]],
    n_boot: int,
    *,
    seed: int | None = 0,
    stratified: bool = True,
    confusion_only: bool = False,
) -> np.ndarray:
    """Evaluate metrics on each bootstrap resample: an array of shape ``(n_boot, len(metrics))``.

    With ``confusion_only=True`` the metrics must depend on the resample only
    through its confusion matrix (true for accuracy, balanced accuracy and F1
    scores with fixed labels). Each metric is then evaluated once per distinct
    confusion matrix and the value reused for identical resamples: the same
    numbers as evaluating every resample, much faster for constant or
    near-perfect predictions (the baseline row always is).
    """
    values = np.empty((int(n_boot), len(metrics)))
    cache: dict[bytes, list[float]] = {}
    k = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    codes = y_true * k + y_pred
    # The arrays were checked once; scikit-learn's per-call argument checks are most of the cost.
    with sklearn.config_context(skip_parameter_validation=True):
        for b, idx in enumerate(_indices(y_true, n_boot, seed, stratified)):
            key = np.bincount(codes[idx], minlength=k * k).tobytes() if confusion_only else None
            row = cache.get(key) if key is not None else None
            if row is None:
                yt, yp = y_true[idx], y_pred[idx]
                row = [float(f(yt, yp)) for f in metrics]
                if key is not None:
                    cache[key] = row
            values[b] = row
    return values


def bootstrap_ci(
    y_true: object,
    y_pred: object,
    metric: Callable[[np.ndarray, np.ndarray], float] | str,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    stratified: bool = True,
    labels: object = None,
) -> BootstrapCI:
    """Bootstrap percentile confidence interval of a classification metric.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,)
        True and predicted class indices.
    metric : callable or str
        ``metric(y_true, y_pred) -> float`` (e.g.
        :func:`sklearn.metrics.balanced_accuracy_score`), or one of
        ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"``, the
        scikit-learn metrics :class:`~tlkit.compare.ModelComparator` reports
        intervals for. It is evaluated once on the whole test set and once
        per resample.
    n_boot : int
        Number of resamples (default 1000).
    confidence : float
        Interval coverage in ``(0, 1)`` (default 0.95).
    seed : int or None
        Seed of the resampling (``>= 0``); the same seed gives the same
        interval. ``None`` draws a fresh one.
    stratified : bool
        Resample within each true class, keeping the class supports (default).
    labels : array-like of int, optional
        All class indices, for the named metrics (``"macro_f1"`` averages over
        them). Default: ``0`` to the largest label seen.

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        An option out of range, e.g. ``n_boot=-1`` (a ``ValueError``).
    tlkit.errors.ComparisonError
        Labels that cannot be used (a ``ValueError``).
    tlkit.errors.ArgumentTypeError
        An argument of the wrong type, e.g. ``n_boot=True`` (a ``TypeError``).

    Returns
    -------
    BootstrapCI

    Examples
    --------
    >>> y_true = [0] * 8 + [1] * 4
    >>> y_pred = [0] * 7 + [1] + [1] * 3 + [0]
    >>> ci = bootstrap_ci(y_true, y_pred, "accuracy", n_boot=200, seed=0)
    >>> round(ci.estimate, 3), ci.low <= ci.estimate <= ci.high
    (0.833, True)
    """
    from tlkit.metrics import CI_METRICS

    seed = check_seed("seed", seed, allow_none=True)
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    if yp.shape != yt.shape:
        raise ComparisonError(f"y_pred has {yp.size} predictions but y_true has {yt.size} labels")
    if yt.size == 0:
        raise ComparisonError("y_true is empty")
    confidence = check_fraction("confidence", confidence)
    n_boot = check_int("n_boot", n_boot, minimum=0)
    stratified = check_bool("stratified", stratified)
    fn: Callable[[np.ndarray, np.ndarray], float]
    if isinstance(metric, str):
        if metric not in CI_METRICS:
            raise InvalidArgumentError(
                f"metric must be a callable or one of {sorted(CI_METRICS)}, got {metric!r}"
            )
        if labels is None:
            labels = np.arange(int(max(yt.max(), yp.max())) + 1)
        labels = np.asarray(labels)
        named = CI_METRICS[metric]

        def fn(a: np.ndarray, b: np.ndarray) -> float:
            return named(a, b, labels)
    elif callable(metric):
        fn = metric
    else:
        raise ArgumentTypeError(
            f"metric must be a callable or a metric name, got {type_name(metric)}"
        )
    estimate = float(fn(yt, yp))
    values = bootstrap_values(
        yt,
        yp,
        [fn],
        n_boot,
        seed=seed,
        stratified=stratified,
        confusion_only=isinstance(metric, str),
    )[:, 0]
    low, high = percentile_interval(values, confidence) if n_boot else (float("nan"),) * 2
    return BootstrapCI(estimate, low, high, confidence, int(n_boot))
