"""A saturating power law fitted to a learning curve, and what it says about more data."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MIN_GAIN", "PowerLawFit", "fit_power_law"]

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
