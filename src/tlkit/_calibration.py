"""Calibration: expected calibration error, reliability bins, and temperature scaling.

The pure computations behind the comparison report's calibration table
(:mod:`tlkit.compare`) and :meth:`tlkit.finetune.FineTuner.calibrate`, on numpy
arrays of labels and class probabilities. Layer 0: it imports numpy, SciPy (only
when a temperature is fitted) and tlkit's errors and argument checks, nothing else
of tlkit.

Definitions (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):

* the *confidence* of a prediction is its top-label probability ``max_k p_k``;
* the ``M`` equal-width bins are ``B_m = ((m - 1) / M, m / M]``, ``m = 1 .. M``
  (:data:`N_BINS` = 15), each prediction in the bin of its confidence;
* the expected calibration error is
  ``ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|``, where ``acc(B_m)`` is the share
  of the bin's predictions that are right and ``conf(B_m)`` their mean confidence;
* temperature scaling replaces ``p`` by ``softmax(log(p) / T)`` with one ``T > 0``
  fitted on labelled validation data by minimising the negative log-likelihood;
  ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens them, and the
  predicted class never changes.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 1, 1, 0])
>>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
>>> round(expected_calibration_error(y, p), 3)
0.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlkit._validation import check_int, check_number, type_name
from tlkit.errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "N_BINS",
    "Reliability",
    "apply_temperature",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_bins",
]

#: Number of equal-width confidence bins of the expected calibration error (Guo et al. 2017).
N_BINS = 15
#: Smallest temperature :func:`fit_temperature` returns and a model file may carry.
MIN_TEMPERATURE = 0.01
#: Largest temperature :func:`fit_temperature` returns and a model file may carry.
MAX_TEMPERATURE = 100.0
#: Probabilities are clipped to at least this before their logarithm is taken.
EPS = 1e-12


@dataclass(frozen=True)
class Reliability:
    """The reliability diagram of a set of predictions, and their expected calibration error.

    Attributes
    ----------
    ece : float
        Expected calibration error, in ``[0, 1]``.
    n_predictions : int
        Number of predictions.
    counts : tuple of int
        Predictions per bin (``n_bins`` of them, lowest confidence first).
    confidence : tuple of float or None
        Mean confidence of each bin's predictions (``None`` for an empty bin).
    accuracy : tuple of float or None
        Share of each bin's predictions that are right (``None`` for an empty bin).
    """

    ece: float
    n_predictions: int
    counts: tuple[int, ...]
    confidence: tuple[float | None, ...]
    accuracy: tuple[float | None, ...]

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return len(self.counts)

    @property
    def edges(self) -> np.ndarray:
        """The ``n_bins + 1`` bin edges, ``0, 1/M, ..., 1``."""
        return _edges(self.n_bins)

    @property
    def mean_confidence(self) -> float | None:
        """Mean top-label confidence over every prediction (``None`` without predictions)."""
        return self._mean(self.confidence)

    @property
    def mean_accuracy(self) -> float | None:
        """Share of every prediction that is right (``None`` without predictions)."""
        return self._mean(self.accuracy)

    def _mean(self, per_bin: tuple[float | None, ...]) -> float | None:
        if not self.n_predictions:
            return None
        total = sum(c * (v or 0.0) for c, v in zip(self.counts, per_bin, strict=True))
        return float(total / self.n_predictions)

    def bins(self) -> list[dict[str, Any]]:
        """One dict per bin: ``low``, ``high``, ``count``, ``confidence``, ``accuracy``."""
        e = self.edges
        return [
            {
                "low": float(e[i]),
                "high": float(e[i + 1]),
                "count": c,
                "confidence": conf,
                "accuracy": acc,
            }
            for i, (c, conf, acc) in enumerate(
                zip(self.counts, self.confidence, self.accuracy, strict=True)
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        """The reliability data as a JSON-ready dict: ``ece``, ``n_bins``, ``bins``."""
        return {"ece": self.ece, "n_bins": self.n_bins, "bins": self.bins()}


def _edges(n_bins: int) -> np.ndarray:
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def _arrays(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked labels ``(n,)`` and probabilities ``(n, K)``."""
    for name, value in (("y_true", y_true), ("y_prob", y_prob)):
        if isinstance(value, (str, bytes)) or value is None:
            raise ArgumentTypeError(f"{name} must be array-like, got {type_name(value)}")
    try:
        prob = np.asarray(y_prob, dtype=np.float64)
        labels = np.asarray(y_true)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"y_true and y_prob must be numeric arrays ({exc})") from None
    if prob.ndim != 2 or prob.shape[1] < 2:
        raise InvalidArgumentError(
            f"y_prob must have shape (n, K) with K >= 2 classes, got shape {prob.shape}"
        )
    if labels.ndim != 1 or labels.size != prob.shape[0]:
        raise InvalidArgumentError(
            f"y_true must have shape ({prob.shape[0]},) like y_prob's rows, got {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels.astype(np.float64))) or np.any(labels != np.round(labels)):
            raise InvalidArgumentError("y_true must hold class indices (integers)")
    labels = labels.astype(np.int64)
    k = prob.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise InvalidArgumentError(
            f"y_true holds class index {int(labels.max() if labels.max() >= k else labels.min())}"
            f" but y_prob has {k} classes (0 .. {k - 1})"
        )
    if not np.all(np.isfinite(prob)) or np.any(prob < 0):
        raise InvalidArgumentError("y_prob must hold finite probabilities >= 0")
    return labels, prob


def reliability_bins(y_true: Any, y_prob: Any, *, n_bins: int = N_BINS) -> Reliability:
    """Bin predictions by their top-label confidence: the data of a reliability diagram and the ECE.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True class indices.
    y_prob : array-like of float, shape (n, K)
        Predicted class probabilities (rows summing to 1).
    n_bins : int
        Number of equal-width bins over ``(0, 1]`` (default :data:`N_BINS`, 15).

    Returns
    -------
    Reliability
        Per bin the count, mean confidence and accuracy, and
        ``ece = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|``; an empty input has ECE 0.

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        Shapes that do not match, labels outside ``0 .. K-1``, probabilities
        that are negative or not finite, ``n_bins < 1``.

    Examples
    --------
    >>> r = reliability_bins([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]],
    ...                 n_bins=5)
    >>> r.counts, r.accuracy[2:], round(r.ece, 3)
    ((0, 0, 1, 2, 1), (0.0, 1.0, 1.0), 0.3)
    """
    n_bins = check_int("n_bins", n_bins, minimum=1)
    labels, prob = _arrays(y_true, y_prob)
    n = labels.size
    if n == 0:
        empty: tuple[None, ...] = (None,) * n_bins
        return Reliability(0.0, 0, (0,) * n_bins, empty, empty)
    conf = prob.max(axis=1)
    right = (np.argmax(prob, axis=1) == labels).astype(np.float64)
    # bin m (0-based) holds confidences in (m / M, (m + 1) / M]; 0 goes to the first bin.
    # Edges as m / M (correctly rounded), so that e.g. 0.8 is the top of (11/15, 12/15].
    idx = np.clip(np.searchsorted(_edges(n_bins), conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    right_sum = np.bincount(idx, weights=right, minlength=n_bins)
    mean_conf = [float(s / c) if c else None for s, c in zip(conf_sum, counts, strict=True)]
    acc = [float(s / c) if c else None for s, c in zip(right_sum, counts, strict=True)]
    gap = np.abs(right_sum - conf_sum)  # = count * |acc - conf| per bin
    ece = float(min(1.0, max(0.0, gap.sum() / n)))
    return Reliability(ece, int(n), tuple(int(c) for c in counts), tuple(mean_conf), tuple(acc))


def expected_calibration_error(y_true: Any, y_prob: Any, *, n_bins: int = N_BINS) -> float:
    """Expected calibration error of class probabilities (top label, equal-width bins).

    ``ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|`` over ``n_bins`` equal-width
    bins ``B_m = ((m - 1) / M, m / M]`` of the top-label confidence ``max_k p_k``,
    where ``acc(B_m)`` is the share of the bin's predictions that are right and
    ``conf(B_m)`` their mean confidence (Guo et al. 2017). ``0``: on average each
    confidence is the accuracy it promises; ``0.1``: confidences are off by about
    ten points.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True class indices.
    y_prob : array-like of float, shape (n, K)
        Predicted class probabilities.
    n_bins : int
        Number of bins (default :data:`N_BINS`, 15).

    Returns
    -------
    float
        In ``[0, 1]``.

    Examples
    --------
    Two predictions at confidence 0.9 and 0.8, both right; two at 0.6 and 0.7, one right:

    >>> y = [0, 1, 1, 0]
    >>> p = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]
    >>> round(expected_calibration_error(y, p), 3)  # (0.1 + 0.2 + 0.6 + 0.3) / 4
    0.3
    """
    return reliability_bins(y_true, y_prob, n_bins=n_bins).ece


def _log_prob(y_prob: np.ndarray) -> np.ndarray:
    return np.log(np.clip(y_prob, EPS, 1.0))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_temperature(temperature: Any) -> float:
    return check_number("temperature", temperature, low=MIN_TEMPERATURE, high=MAX_TEMPERATURE)


def apply_temperature(y_prob: Any, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities: ``softmax(log(p) / T)`` row by row.

    ``p`` is clipped to at least ``1e-12`` before its logarithm. The order of the
    classes in each row, so the predicted class, does not change.

    Parameters
    ----------
    y_prob : array-like of float, shape (n, K)
        Class probabilities.
    temperature : float
        ``T`` in ``[MIN_TEMPERATURE, MAX_TEMPERATURE]`` (0.01 to 100).

    Returns
    -------
    numpy.ndarray of float64, shape (n, K)

    Examples
    --------
    >>> apply_temperature([[0.8, 0.2]], 2.0).round(3)  # sqrt(0.8) : sqrt(0.2) = 2 : 1
    array([[0.667, 0.333]])
    """
    t = _check_temperature(temperature)
    prob = np.asarray(y_prob, dtype=np.float64)
    if prob.ndim != 2:
        raise InvalidArgumentError(f"y_prob must have shape (n, K), got shape {prob.shape}")
    if prob.shape[0] == 0:
        return prob.copy()
    return _softmax(_log_prob(prob) / t)


def negative_log_likelihood(y_true: Any, y_prob: Any) -> float:
    """Mean ``-log p[true class]`` (probabilities clipped to at least ``1e-12``).

    Examples
    --------
    >>> round(negative_log_likelihood([0, 1], [[0.5, 0.5], [0.2, 0.8]]), 4)
    0.4581
    """
    labels, prob = _arrays(y_true, y_prob)
    if labels.size == 0:
        return 0.0
    return float(-np.mean(_log_prob(prob)[np.arange(labels.size), labels]))


def _nll_of_log(log_p: np.ndarray, labels: np.ndarray, t: float) -> float:
    z = log_p / t
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(labels.size), labels]))


def fit_temperature(y_true: Any, y_prob: Any) -> float:
    """The temperature ``T`` that minimises the negative log-likelihood of ``softmax(log(p) / T)``.

    A one-dimensional bounded minimisation over ``log T`` in
    ``[log MIN_TEMPERATURE, log MAX_TEMPERATURE]``
    (:func:`scipy.optimize.minimize_scalar`, method ``"bounded"``). The
    likelihood is convex in ``1 / T``, so the minimum found is the only one; on
    data every prediction gets right with room to spare it lies at the lower
    bound (sharpening never stops paying).

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True class indices of labelled validation data (not the test set).
    y_prob : array-like of float, shape (n, K)
        The model's probabilities on that data.

    Returns
    -------
    float
        ``T`` in ``[MIN_TEMPERATURE, MAX_TEMPERATURE]``.

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        No examples, or arrays that do not fit (see :func:`reliability_bins`).

    Examples
    --------
    An over-confident model (confidence 0.99, right 3 times in 4) is softened:

    >>> y = [0, 0, 0, 1]
    >>> p = [[0.99, 0.01]] * 4
    >>> t = fit_temperature(y, p)
    >>> t > 1, round(float(apply_temperature(p, t)[0, 0]), 2)
    (True, 0.75)
    """
    from scipy.optimize import minimize_scalar

    labels, prob = _arrays(y_true, y_prob)
    if labels.size == 0:
        raise InvalidArgumentError("fit_temperature needs at least one labelled example")
    log_p = _log_prob(prob)
    res = minimize_scalar(
        lambda s: _nll_of_log(log_p, labels, math.exp(s)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    t = float(math.exp(float(res.x)))
    # Brent's bounded method never evaluates the end points: keep T = 1 when it is no worse.
    if _nll_of_log(log_p, labels, 1.0) <= _nll_of_log(log_p, labels, t):
        t = 1.0
    return min(MAX_TEMPERATURE, max(MIN_TEMPERATURE, t))
