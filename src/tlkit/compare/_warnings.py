"""The warnings of a comparison: what must not be missed, most important first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tlkit.compare._format import ci_metric

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ModelResult, PairwiseResult

__all__ = ["ECE_WARNING", "calibration_warning", "comparison_warnings"]

#: A model whose expected calibration error (15 bins) is above this gets a warning: its
#: confidences are off by more than ten points on average (default 0.10).
ECE_WARNING = 0.10


def calibration_warning(r: ModelResult) -> str | None:
    """The warning for a model whose ECE is above :data:`ECE_WARNING`, or None."""
    rel = r.reliability
    if rel is None or rel.n_predictions == 0 or rel.ece <= ECE_WARNING:
        return None
    conf, acc = rel.mean_confidence or 0.0, rel.mean_accuracy or 0.0
    way = "overstates" if conf > acc else "understates"
    return (
        f"model {r.name!r} is badly calibrated: expected calibration error {rel.ece:.3f} "
        f"(above {ECE_WARNING:.2f}); its mean confidence {conf:.3f} {way} its accuracy "
        f"{acc:.3f}, so do not read its probabilities as chances: fit a temperature on the "
        "validation data with FineTuner.calibrate(val), not on this test set"
    )


def comparison_warnings(
    base: ModelResult,
    models: Sequence[ModelResult],
    pairwise: Sequence[PairwiseResult],
    *,
    y_true: np.ndarray,
    class_names: Sequence[str],
    confidence: float,
    correction: str | None,
    min_support: int,
) -> list[str]:
    """What makes a result meaningless, most important first.

    Models that do not clear the majority-class baseline, classes a model never
    predicts, models whose expected calibration error is above
    :data:`ECE_WARNING`, test classes too small to judge, and pairs whose
    difference is not significant.
    """
    out: list[str] = []
    b_bal = ci_metric(base, "balanced_accuracy")
    b_acc = ci_metric(base, "accuracy")
    for r in models:
        bal = ci_metric(r, "balanced_accuracy")
        ci = r.ci.get("balanced_accuracy")
        if ci is not None:
            if ci.low <= b_bal:
                out.append(
                    f"model {r.name!r}: balanced accuracy {bal:.3f}, {confidence:.0%} CI "
                    f"[{ci.low:.3f}, {ci.high:.3f}], does not clear the majority-class "
                    f"baseline ({b_bal:.3f})"
                )
        elif bal <= b_bal:
            out.append(
                f"model {r.name!r}: balanced accuracy {bal:.3f} (no interval: n_boot=0) does "
                f"not clear the majority-class baseline ({b_bal:.3f})"
            )
        if ci_metric(r, "accuracy") <= b_acc:
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
    for r in models:
        w = calibration_warning(r)
        if w:
            out.append(w)
    supports = np.bincount(y_true, minlength=len(class_names))
    for c, n in zip(class_names, supports, strict=True):
        if n < min_support:
            out.append(f"test class {c!r} has {int(n)} examples: too few to judge")
    for p in pairwise:
        if not p.significant:
            adj = (
                f", Holm-adjusted over {len(pairwise)} pairs {p.p_adjusted:.3g}"
                if correction == "holm" and len(pairwise) > 1
                else ""
            )
            out.append(
                f"models {p.model_a!r} and {p.model_b!r}: the difference is not significant "
                f"(McNemar exact p = {p.test.p_value:.3g}{adj}; {p.test.a_right_b_wrong} vs "
                f"{p.test.a_wrong_b_right} images right for only one of them)"
            )
    return out
