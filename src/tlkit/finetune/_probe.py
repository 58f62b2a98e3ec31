"""The linear probe: a logistic regression on frozen features, and a head started from it.

A linear probe (standardised features, class-balanced logistic regression, its
strength chosen on validation balanced accuracy) is the cheapest honest model
of what a backbone's frozen features know. tlkit uses it twice: to choose the
features a head reads (:func:`tlkit.finetune.choose_pooling`) and, with
``head_start="probe"`` on a schedule, as the head's first weights (the first
step of LP-FT, Kumar et al. 2022: a head that starts fitted instead of at
random does not send large, random gradients into the layers below it).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlkit.errors import ScheduleError

__all__ = ["C_GRID", "LinearProbe", "fit_probe", "row_space", "start_head"]

#: Inverse regularisation strengths the probe tries (on standardised features).
C_GRID = (0.001, 0.01, 0.1)


@dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: ``softmax(((x - mean) / scale) @ coef + intercept)``.

    Attributes
    ----------
    mean, scale : ndarray of shape (d,)
        The standardisation of the training features (a constant column has scale 1).
    coef : ndarray of shape (d, k)
        Weights of the standardised features, one column per class.
    intercept : ndarray of shape (k,)
    C : float
        The strength kept (the best on validation).
    score : float
        Its balanced accuracy on the validation features.
    seconds : float
        Time the fits took.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    C: float
    score: float
    seconds: float

    @classmethod
    def from_sklearn(
        cls,
        scaler: Any,
        clf: Any,
        *,
        score: float,
        seconds: float = 0.0,
        num_classes: int | None = None,
        to_columns: Any = None,
    ) -> LinearProbe:
        """The probe of a fitted ``StandardScaler`` and ``LogisticRegression``.

        ``to_columns`` maps the regression's weights back to the scaler's columns
        when it was fitted on other coordinates (:func:`row_space`'s). Two classes
        get two columns (the one logit difference split between them), and
        ``num_classes`` a column for every class index below it.
        """
        coef = np.asarray(clf.coef_, np.float64).T
        coef, intercept = (coef if to_columns is None else to_columns(coef)), clf.intercept_
        if coef.shape[1] == 1:  # two classes: one logit difference, split between the two
            coef = np.concatenate([-coef / 2, coef / 2], axis=1)
            intercept = np.concatenate([-intercept / 2, intercept / 2])
        classes = np.asarray(clf.classes_)
        k = int(classes.max()) + 1 if num_classes is None else num_classes
        if not np.array_equal(classes, np.arange(k)):  # a class without training images
            coef, intercept = _all_classes(coef, intercept, classes, k)
        return cls(
            mean=scaler.mean_, scale=scaler.scale_, coef=coef, intercept=intercept,
            C=float(clf.C), score=score, seconds=seconds,
        )  # fmt: skip

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of feature rows ``x`` (n, d)."""
        logits = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef
        logits += self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int | None = None,
) -> LinearProbe:
    """The best-on-validation standardised, class-balanced logistic regression.

    Fits one for each strength of :data:`C_GRID` (in the training rows' span,
    :func:`row_space`, when there are fewer rows than columns) and keeps the one
    with the highest validation balanced accuracy (a tie keeps the stronger
    regularisation, the first tried). ``num_classes`` gives the probe a column for
    every class index below it, even one without training images (never predicted).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 5)); y = (x[:, 0] > 0).astype(int)
    >>> probe = fit_probe(x, y, x, y)
    >>> probe.score > 0.9, probe.probabilities(x).shape
    (True, (40, 2))
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    scaler = StandardScaler().fit(x_train)
    xs = scaler.transform(x_train)
    xt, xv, to_columns = _row_space(xs, scaler.transform(x_val))
    best: tuple[float, float, Any] | None = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000, tol=1e-3)
        with warnings.catch_warnings():  # a probe's last digits do not move a choice
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(xt, y_train)
        score = float(balanced_accuracy_score(y_val, clf.predict(xv)))
        if best is None or score > best[0]:
            best = (score, c, clf)
    assert best is not None
    score, _, clf = best
    return LinearProbe.from_sklearn(
        scaler, clf, score=score, seconds=time.perf_counter() - start,
        num_classes=num_classes, to_columns=to_columns,
    )  # fmt: skip


def _all_classes(
    coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Columns for every class index below ``k``; a class the probe never saw is never predicted."""
    full_coef = np.zeros((coef.shape[0], k))
    full_bias = np.full(k, -1e4)
    full_coef[:, classes] = coef
    full_bias[classes] = intercept
    return full_coef, full_bias


def row_space(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets in coordinates of the training rows' span, when there are fewer rows than columns.

    An L2-penalised linear model's weights lie in the span of the training rows
    (a part orthogonal to it adds to the penalty and changes no training
    score), so with the thin SVD ``X = U S V^T`` the model fitted on ``X V = U S``
    and applied to ``X_val V`` gives the same predictions as on the raw columns,
    in ``n`` columns instead of ``d``: 10,208 block features of 1,837 images
    become 1,837, and the probe runs 1.7-2x as fast (``python
    benchmarks/pooling_probe.py``: 14 s against 23 s). ``V`` is never
    formed: ``X V = U S`` and ``X_val V = X_val X^T U / S`` from the
    eigen-decomposition of ``X X^T``.
    """
    xt, xv, _ = _row_space(x_train, x_val)
    return xt, xv


def _row_space(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """:func:`row_space`, and the map of weights on its coordinates back to the columns.

    Weights ``w`` on the coordinates ``X V`` are the weights ``V w = X^T (U / S) w``
    on the columns.
    """
    n, d = x_train.shape
    if n >= d:
        return x_train, x_val, lambda w: np.asarray(w, np.float64)
    xt = np.asarray(x_train, np.float64)
    eig, u = np.linalg.eigh(xt @ xt.T)
    keep = eig > eig.max() * 1e-10  # standardised columns leave rank n - 1 at most
    s = np.sqrt(eig[keep])
    u = u[:, keep]
    back = u / s
    return u * s, (np.asarray(x_val, np.float64) @ xt.T) @ back, lambda w: xt.T @ (back @ w)


def start_head(layers: list[Any], probe: LinearProbe) -> None:
    """Set a linear head's weights so that it computes ``probe`` (what ``head_start="probe"`` does).

    ``layers`` are FineTuner's head layers: an optional standardising
    BatchNormalization (``head_standardize``, every block's features), dropout
    (the identity in inference) and the ``classifier`` Dense layer. The
    standardisation goes into the BatchNormalization's moving statistics when
    there is one, else it is folded into the classifier.
    """
    names = {layer.name: layer for layer in layers}
    if "head_hidden" in names:
        raise ScheduleError(
            "head_start='probe' starts a linear head from a logistic regression; this head has "
            "a hidden layer (head_units): leave head_units=None or use head_start='random'"
        )
    dense = names["classifier"]
    coef, bias = probe.coef, probe.intercept
    if "head_standardize" in names:
        bn = names["head_standardize"]
        variance = np.maximum(probe.scale**2 - bn.epsilon, 0.0)
        bn.moving_mean.assign(probe.mean.astype("float32"))
        bn.moving_variance.assign(variance.astype("float32"))
        # a column whose variance is under the layer's epsilon is divided by sqrt(epsilon),
        # not by its scale: the classifier's row takes up the difference
        coef = coef * (np.sqrt(variance + bn.epsilon) / probe.scale)[:, None]
    else:
        coef = coef / probe.scale[:, None]
        bias = bias - probe.mean @ coef
    dense.kernel.assign(coef.astype("float32"))
    dense.bias.assign(bias.astype("float32"))
