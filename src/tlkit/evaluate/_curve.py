"""Learning curves: the metric against the number of training images, and whether more would help.

:func:`learning_curve` trains one model per training fraction and scores each on the same
held-out set; :func:`fit_power_law` fits a saturating power law to the points, and its
:class:`PowerLawFit` says what more data of the same kind would bring.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._validation import check_bool, check_choice, check_int, check_number, check_seed
from tlkit.compare import BootstrapCI, bootstrap_ci
from tlkit.data import Split, SplitPart, nested_subsets
from tlkit.errors import ArgumentTypeError, InvalidArgumentError
from tlkit.evaluate._model import (
    ModelFactory,
    check_fit_kwargs,
    check_make_model,
    fit_and_predict,
    metric_labels,
    say,
)
from tlkit.metrics import CI_METRICS, METRIC_LABELS, metrics_report

__all__ = [
    "DEFAULT_FRACTIONS",
    "MIN_GAIN",
    "LearningCurve",
    "PowerLawFit",
    "fit_power_law",
    "learning_curve",
]


#: Predicted gain at twice the data below which the curve counts as saturated (1 point).
MIN_GAIN = 0.01
#: Bounds of the exponent ``c``: a steeper curve is indistinguishable from a step.
C_BOUNDS = (0.0, 5.0)


@dataclass(frozen=True)
class PowerLawFit:
    """``metric(n) = a - b * n ** (-c)`` fitted to (training images, metric) points.

    Attributes
    ----------
    ok : bool
        Whether a curve was fitted; if not, ``reason`` says why and the
        parameters are ``nan``.
    a : float
        The ceiling the curve approaches with unlimited data of the same kind.
    b, c : float
        Scale and exponent of the shortfall (``b >= 0``, ``0 <= c <= 5``).
    n : tuple of int
        The training sizes fitted.
    rmse : float
        Root-mean-square distance of the points from the curve.
    reason : str
        Why the fit failed, or a caveat (a parameter at its bound); ``""`` otherwise.

    Examples
    --------
    >>> n = [40, 80, 120, 160, 200]
    >>> fit = fit_power_law(n, [0.9 - 2.0 * x**-0.7 for x in n])
    >>> round(fit.a, 3), round(fit.b, 2), round(fit.c, 2)
    (0.9, 2.0, 0.7)
    >>> round(fit.gain(200), 3)
    0.019
    """

    ok: bool
    a: float
    b: float
    c: float
    n: tuple[int, ...]
    rmse: float
    reason: str = ""

    def predict(self, n: Any) -> Any:
        """The fitted metric at ``n`` training images (``nan`` when the fit failed)."""
        x = np.asarray(n, dtype=np.float64)
        if not self.ok:
            return np.full_like(x, np.nan) if x.ndim else float("nan")
        y = self.a - self.b * np.power(x, -self.c)
        return y if x.ndim else float(y)

    def gain(self, n: int, factor: float = 2.0) -> float:
        """Predicted change of the metric from ``n`` to ``factor * n`` images (an extrapolation)."""
        return float(self.predict(factor * n) - self.predict(n))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``ok``, ``a``, ``b``, ``c``, ``n``, ``rmse``, ``reason`` (``nan`` as ``None``)."""

        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {
            "formula": "metric(n) = a - b * n^(-c)",
            "ok": self.ok,
            "a": clean(self.a),
            "b": clean(self.b),
            "c": clean(self.c),
            "n": list(self.n),
            "rmse": clean(self.rmse),
            "reason": self.reason,
        }


def _failed(n: Sequence[int], reason: str) -> PowerLawFit:
    nan = float("nan")
    return PowerLawFit(False, nan, nan, nan, tuple(int(x) for x in n), nan, reason)


def fit_power_law(n: Sequence[float], y: Sequence[float]) -> PowerLawFit:
    """Fit ``y = a - b * n ** (-c)`` with :func:`scipy.optimize.curve_fit` and bounds.

    Bounds: ``0 <= a <= 1`` (the metrics are shares), ``b >= 0`` (more data
    never hurts on the fitted curve), ``0 <= c <= 5``. The sizes are scaled by
    the largest one while fitting, for conditioning. A failure is returned,
    not raised: ``ok`` is ``False`` and ``reason`` says why (fewer than three
    distinct sizes, no convergence, ...).

    Parameters
    ----------
    n : sequence of number
        Training-set sizes, ``> 0``.
    y : sequence of float
        The metric at each size, in ``[0, 1]``.

    Returns
    -------
    PowerLawFit
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.asarray(n, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    sizes = tuple(round(float(s)) for s in x)
    keep = np.isfinite(x) & np.isfinite(v) & (x > 0)
    x, v = x[keep], v[keep]
    if np.unique(x).size < 3:
        return _failed(
            sizes,
            f"a power law has 3 parameters and needs at least 3 training sizes with a "
            f"defined metric, got {np.unique(x).size}",
        )
    top = float(x.max())

    def f(s: np.ndarray, a: float, g: float, c: float) -> np.ndarray:
        return a - g * np.power(s, -c)  # g = b * top ** -c: the shortfall at the largest size

    s = x / top
    a0 = float(min(1.0, max(v.max() + 0.02, 0.0)))
    g0 = float(min(1.0, max(a0 - v[np.argmax(x)], 1e-3)))
    try:
        with warnings.catch_warnings():
            # no covariance (a flat curve leaves c undetermined) is no failure: it is not used
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(
                f,
                s,
                v,
                p0=(a0, g0, 0.5),
                bounds=([0.0, 0.0, C_BOUNDS[0]], [1.0, 1.0, C_BOUNDS[1]]),
                maxfev=20000,
            )
    except (RuntimeError, ValueError) as exc:
        return _failed(sizes, f"scipy.optimize.curve_fit did not converge: {exc}")
    a, g, c = (float(p) for p in params)
    if not all(math.isfinite(p) for p in (a, g, c)):  # pragma: no cover - bounded fit
        return _failed(sizes, "the fitted parameters are not finite")
    rmse = float(np.sqrt(np.mean((f(s, a, g, c) - v) ** 2)))
    notes = []
    if a >= 1.0 - 1e-6:
        notes.append("the ceiling a reached its bound 1")
    if c >= C_BOUNDS[1] - 1e-6:
        notes.append(f"the exponent c reached its bound {C_BOUNDS[1]:g} (a step, not a curve)")
    if g <= 1e-9:
        notes.append("the points do not rise with more data (b = 0)")
    return PowerLawFit(True, a, g * top**c, c, sizes, rmse, "; ".join(notes))


#: Training fractions of :func:`learning_curve`.
DEFAULT_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
#: Most fractions one curve trains (one model each).
MAX_FRACTIONS = 20


@dataclass(frozen=True)
class CurvePoint:
    """One point of a learning curve: a model trained on ``n_train`` images, scored on the held-out set.

    Attributes
    ----------
    fraction : float
        Share of the training part.
    n_train : int
        Training images.
    class_counts : dict of str to int
        Training images per class.
    metrics : dict of str to float or None
        Every metric on the held-out images.
    intervals : dict of str to BootstrapCI
        Stratified bootstrap intervals of accuracy, balanced accuracy and
        macro-F1 (the same resamples at every point).
    train_time_s : float
    """

    fraction: float
    n_train: int
    class_counts: dict[str, int]
    metrics: dict[str, float | None]
    intervals: dict[str, BootstrapCI]
    train_time_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (undefined numbers as ``None``)."""
        return {
            "fraction": self.fraction,
            "n_train": self.n_train,
            "class_counts": dict(self.class_counts),
            "metrics": {k: _num(v) for k, v in self.metrics.items()},
            "intervals": {
                k: {"estimate": _num(ci.estimate), "low": _num(ci.low), "high": _num(ci.high)}
                for k, ci in self.intervals.items()
            },
            "train_time_s": _num(self.train_time_s),
        }


def _num(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True, eq=False)
class LearningCurve:
    """What :func:`learning_curve` returns: points, a power-law fit, and one sentence.

    Attributes
    ----------
    points : tuple of CurvePoint
        By increasing training size.
    metric : str
        The metric fitted and plotted (``"balanced_accuracy"``, ...).
    fit : PowerLawFit
        ``metric(n) = a - b * n ** (-c)``; ``fit.ok`` is ``False`` when it failed.
    scored_on : str
        ``"test"`` or ``"val"``: the held-out images every point is scored on.
    n_scored : int
        How many there are.
    class_names : tuple of str
    seed : int
    confidence : float
    min_gain : float
        Predicted gain at twice the data below which the curve counts as saturated.
    warnings : tuple of str
    params : dict
    """

    points: tuple[CurvePoint, ...]
    metric: str
    fit: PowerLawFit
    scored_on: str
    n_scored: int
    class_names: tuple[str, ...]
    seed: int
    confidence: float = 0.95
    min_gain: float = MIN_GAIN
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"LearningCurve(metric={self.metric!r}, n_train={list(self.n_train)}, "
            f"fit={'ok' if self.fit.ok else 'failed'})"
        )

    @property
    def n_train(self) -> tuple[int, ...]:
        """Training images of each point."""
        return tuple(p.n_train for p in self.points)

    @property
    def values(self) -> tuple[float, ...]:
        """The metric at each point (``nan`` where undefined)."""
        return tuple(_value(p.metrics.get(self.metric)) for p in self.points)

    @property
    def predicted_gain(self) -> float | None:
        """Fitted change of the metric at twice the largest training set (an extrapolation)."""
        return self.fit.gain(max(self.n_train)) if self.fit.ok else None

    @property
    def more_data_helps(self) -> bool | None:
        """Whether the fit predicts at least ``min_gain`` at twice the data (``None``: no fit)."""
        gain = self.predicted_gain
        return None if gain is None else gain >= self.min_gain

    @property
    def sentence(self) -> str:
        """One sentence: whether more photos are likely to help, and by how much at twice the data."""
        label = METRIC_LABELS.get(self.metric, self.metric).lower()
        ns, vs = self.n_train, self.values
        if not self.fit.ok:
            return (
                f"No saturating power law could be fitted ({self.fit.reason}); from the points "
                f"alone, {label} went from {vs[0]:.3f} with {ns[0]} training images to "
                f"{vs[-1]:.3f} with {ns[-1]}."
            )
        n = max(ns)
        now, later = float(self.fit.predict(n)), float(self.fit.predict(2 * n))
        gain = later - now
        widths = [
            (p.intervals[self.metric].high - p.intervals[self.metric].low) / 2
            for p in self.points
            if self.metric in p.intervals and np.isfinite(p.intervals[self.metric].high)
        ]
        noise = (
            f" (each point's {self.confidence:.0%} interval is about \u00b1{np.median(widths):.3f})"
            if widths
            else ""
        )
        caveat = "an extrapolation beyond the measured sizes, not a promise"
        if gain >= self.min_gain:
            return (
                f"More photos are likely to help: the fitted curve predicts {label} "
                f"{later:.3f} with {2 * n} training images, {gain:+.3f} over {now:.3f} with {n}"
                f"{noise}; this is {caveat}."
            )
        return (
            f"The curve has flattened: the fitted curve predicts {gain:+.3f} {label} at twice "
            f"the data ({2 * n} training images){noise}, {caveat}; more photos of the same kind "
            "are unlikely to help much."
        )

    # -- output -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, points, the fit, the sentence (schema ``"tlkit.learning_curve/1"``)."""
        return {
            "schema": "tlkit.learning_curve/1",
            "metric": self.metric,
            "scored_on": self.scored_on,
            "n_scored": self.n_scored,
            "class_names": list(self.class_names),
            "seed": self.seed,
            "confidence": self.confidence,
            "min_gain": self.min_gain,
            "points": [p.to_dict() for p in self.points],
            "fit": self.fit.to_dict(),
            "predicted_gain_at_twice_the_data": _num(self.predicted_gain),
            "more_data_helps": self.more_data_helps,
            "sentence": self.sentence,
            "warnings": list(self.warnings),
            "params": dict(self.params),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    def to_markdown(self, image: str | None = None) -> str:
        """A Markdown section: the sentence, the table of points, the plot if ``image`` is given."""
        from tlkit.evaluate._render import curve_markdown

        return curve_markdown(self, image)

    def to_html(self) -> str:
        """A self-contained HTML section (the plot embedded as a PNG data URI), names escaped."""
        from tlkit.evaluate._render import curve_html

        return curve_html(self)

    def plot_png(self) -> bytes:
        """The plot as PNG bytes: the metric against training images with intervals and the fit."""
        from tlkit.evaluate._render import curve_png

        return curve_png(self)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`plot_png` to ``path``; returns it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.plot_png())
        return path

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write ``learning_curve.png``, ``.json``, ``.md`` and ``.html`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = [self.plot(out / "learning_curve.png")]
        for fname, text in (
            ("learning_curve.json", self.to_json() + "\n"),
            ("learning_curve.md", self.to_markdown("learning_curve.png")),
            ("learning_curve.html", _page(self.to_html())),
        ):
            path = out / fname
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Learning curve</title></head><body>\n" + body + "\n</body></html>\n"
    )


def _value(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _check_fractions(fractions: Any) -> tuple[float, ...]:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence):
        raise ArgumentTypeError(
            f"fractions must be a sequence of numbers in (0, 1], got {type(fractions).__name__}"
        )
    vals = [
        check_number(f"fractions[{i}]", f, low=0, high=1, low_open=True)
        for i, f in enumerate(fractions)
    ]
    if not 1 <= len(vals) <= MAX_FRACTIONS or len(set(vals)) != len(vals):
        raise InvalidArgumentError(
            f"fractions must be 1 to {MAX_FRACTIONS} distinct numbers in (0, 1], got {fractions!r}"
        )
    return tuple(sorted(vals))


def learning_curve(
    make_model: Callable[[], Any],
    split: Split,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    *,
    on: str = "test",
    metric: str = "balanced_accuracy",
    fit_kwargs: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    min_gain: float = MIN_GAIN,
    verbose: bool = True,
) -> LearningCurve:
    """Train on nested fractions of ``split.train``, score each on the same held-out images.

    The fractions are nested (each training subset contains the smaller
    ones), stratified by class and leak-free (a group of identical files or
    ``groups=`` matches is wholly in or out), cut with the splitter's rules.
    Each point's metric gets a stratified bootstrap interval over the
    held-out images. A saturating power law ``metric(n) = a - b * n^(-c)``
    is fitted to the points (:func:`fit_power_law`), and
    :attr:`LearningCurve.sentence` says whether more photos are likely to
    help and the predicted gain at twice the data, as an extrapolation.

    Parameters
    ----------
    make_model : callable
        Returns a new, unfitted model each call (see :func:`cross_validate`).
    split : Split
        Its ``train`` part is subsampled; its ``test`` (or ``val``) part scores.
    fractions : sequence of float
        Shares of ``split.train`` in ``(0, 1]`` (default 0.2, 0.4, ..., 1.0).
    seed : int
        Seed of the subsampling.
    on : {"test", "val"}
        The held-out images. With ``"test"``, ``split.val`` (if not empty) is
        ``fit``'s validation data; with ``"val"``, ``fit`` gets none.
    metric : {"balanced_accuracy", "accuracy", "macro_f1"}
        The metric fitted and plotted (all three are recorded).
    fit_kwargs : dict, optional
        Passed to every ``fit``.
    n_boot, confidence : int, float
        Bootstrap resamples (default 1000) and coverage (0.95) of the intervals.
    min_gain : float
        A predicted gain at twice the data below this counts as saturated
        (default ``MIN_GAIN`` = 0.01).
    verbose : bool
        Progress lines on stderr.

    Returns
    -------
    LearningCurve
    """
    factory = ModelFactory(check_make_model(make_model))
    if not isinstance(split, Split):
        raise ArgumentTypeError(f"split must be a tlkit Split, got {type(split).__name__}")
    fracs = _check_fractions(fractions)
    seed = check_seed("seed", seed)
    on = check_choice("on", on, ("test", "val"))
    metric = check_choice("metric", metric, tuple(CI_METRICS))
    kwargs = check_fit_kwargs(fit_kwargs)
    n_boot = check_int("n_boot", n_boot, minimum=0)
    confidence = check_number(
        "confidence", confidence, low=0, high=1, low_open=True, high_open=True
    )
    min_gain = check_number("min_gain", min_gain, low=0)
    verbose = check_bool("verbose", verbose)
    held: SplitPart = split.test if on == "test" else split.val
    if len(held) == 0:
        raise InvalidArgumentError(f"split.{on} is empty: nothing to score the curve on")
    if len(split.train) == 0:
        raise InvalidArgumentError("split.train is empty: nothing to train on")
    val = split.val if on == "test" and len(split.val) else None
    names = tuple(split.class_names)
    k = len(names)
    subsets = nested_subsets(split.train.samples, k, fracs, seed)
    y = held.labels.astype(np.int64)
    warn: list[str] = []
    points = []
    for f, subset in zip(fracs, subsets, strict=True):
        part = SplitPart("train", split.root, names, subset)
        counts = part.class_counts()
        absent = [c for c, n in counts.items() if n == 0]
        if absent:
            warn.append(f"fraction {f:g} has no training image of {', '.join(map(repr, absent))}")
        points.append(
            _train_point(
                factory, f, part, counts, val, held, y, kwargs,
                n_boot=n_boot, confidence=confidence, seed=seed, metric=metric, verbose=verbose,
            )
        )  # fmt: skip
    ns = [p.n_train for p in points]
    fit = fit_power_law(ns, [_value(p.metrics[metric]) for p in points])
    if len(set(ns)) < len(ns):
        warn.append("some fractions gave the same number of training images")
    return LearningCurve(
        points=tuple(points),
        metric=metric,
        fit=fit,
        scored_on=on,
        n_scored=len(held),
        class_names=names,
        seed=seed,
        confidence=confidence,
        min_gain=min_gain,
        warnings=tuple(warn),
        params={
            "fractions": list(fracs),
            "fit_kwargs": {key: repr(v) for key, v in kwargs.items()},
            "val_for_fit": None if val is None else len(val),
            "n_boot": n_boot,
        },
    )


def _train_point(
    factory: ModelFactory,
    fraction: float,
    part: SplitPart,
    counts: dict[str, int],
    val: SplitPart | None,
    held: SplitPart,
    y: np.ndarray,
    kwargs: dict[str, Any],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    metric: str,
    verbose: bool,
) -> CurvePoint:
    """One point of the curve: a model trained on ``part``, scored on ``held`` with intervals."""
    names = part.class_names
    what = f"fraction {fraction:g} ({len(part)} training images)"
    say(verbose, f"tlkit learning-curve: {what}: training")
    model = factory(what)
    p, seconds = fit_and_predict(model, part, val, held, len(names), kwargs, what)
    del model
    pred = np.argmax(p, axis=1)
    m = metrics_report(y, pred, p, names)["metrics"]
    cis = {
        name: bootstrap_ci(
            y, pred, name, n_boot=n_boot, confidence=confidence, seed=seed,
            labels=metric_labels(names),
        )
        for name in CI_METRICS
    }  # fmt: skip
    say(verbose, f"tlkit learning-curve: {what}: {metric} {_value(m[metric]):.3f}")
    return CurvePoint(fraction, len(part), counts, m, cis, seconds)
