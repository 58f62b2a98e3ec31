"""What a comparison report says first: its warnings, then its verdict.

:func:`comparison_warnings` lists what must not be missed, most important first (a model
that does not clear the baseline, a class never predicted, a badly calibrated model,
...); :func:`verdict` is the paragraph under them: baseline first, then who is better and
how surely. Both read the same rows and pairs, and the verdict follows the warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tlkit.compare._format import CI_KEYS, ci_metric, fmt_p
from tlkit.metrics import METRIC_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ModelResult, PairwiseResult

__all__ = ["ECE_WARNING", "calibration_warning", "comparison_warnings", "verdict"]


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


def verdict(
    base: ModelResult,
    models: Sequence[ModelResult],
    pairwise: Sequence[PairwiseResult],
    majority: str,
    *,
    confidence: float,
    correction: str | None,
) -> str:
    """One paragraph: baseline first, then who is better on which metric, and significance."""
    out = _against_baseline(base, models, majority, confidence)
    if len(models) == 1:
        r = models[0]
        out.append(
            f"{r.name} scores accuracy {_value(r, 'accuracy')}, balanced accuracy "
            f"{_value(r, 'balanced_accuracy')} and macro-F1 {_value(r, 'macro_f1')}; "
            "with one model there is no other to test it against."
        )
        return " ".join(out)

    tested = " (McNemar's test covers accuracy only; the balanced-accuracy and macro-F1 "
    tested += "differences rest on their intervals alone.)"
    out += _leaders(models, pairwise, correction)
    return " ".join(out) + tested


def _value(r: ModelResult, key: str) -> str:
    """A metric with its interval in brackets, when it has one."""
    c = r.ci.get(key)
    v = r.metrics[key]
    return f"{v:.3f} [{c.low:.3f}, {c.high:.3f}]" if c is not None else f"{v:.3f}"


def _against_baseline(
    base: ModelResult, models: Sequence[ModelResult], majority: str, confidence: float
) -> list[str]:
    """The verdict's first sentences: each model against the majority-class baseline."""
    b_acc = ci_metric(base, "accuracy")
    b_bal = ci_metric(base, "balanced_accuracy")
    conf = f"{confidence:.0%} CI "
    out: list[str] = []
    beat: list[str] = []
    for r in models:
        acc, bal = ci_metric(r, "accuracy"), ci_metric(r, "balanced_accuracy")
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
                f"({_value(r, 'balanced_accuracy')} vs {b_bal:.3f}), but its accuracy "
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
    return out


def _leaders(
    models: Sequence[ModelResult], pairwise: Sequence[PairwiseResult], correction: str | None
) -> list[str]:
    """One sentence per headline metric: who leads, by how much, and (accuracy) how surely."""
    out: list[str] = []
    for key in CI_KEYS:
        label = METRIC_LABELS[key]
        ranked = sorted(models, key=lambda r: -ci_metric(r, key))  # stable: ties keep add order
        top = ci_metric(ranked[0], key)
        leaders = [r for r in ranked if np.isclose(ci_metric(r, key), top)]
        rest = ranked[len(leaders) :]
        if not rest:
            out.append(f"On {label} the models tie at {top:.3f}.")
            continue
        if len(leaders) == 1:
            lead = f"{leaders[0].name} is {'better' if len(models) == 2 else 'best'}"
        else:
            lead = " and ".join(r.name for r in leaders) + " tie for best"
        others = ", ".join(f"{r.name} {_value(r, key)}" for r in rest)
        sentence = f"On {label} {lead}, {_value(leaders[0], key)} vs {others}"
        if key == "accuracy":
            sentence += _significance(leaders[0], pairwise, correction)
        out.append(sentence + ".")
    return out


def _significance(
    leader: ModelResult, pairwise: Sequence[PairwiseResult], correction: str | None
) -> str:
    """McNemar's verdict on the accuracy leader against every other model."""
    several = correction == "holm" and len(pairwise) > 1
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
        pv = f"McNemar exact p = {fmt_p(t.p_value)}"
        if several:
            pv += f", Holm-adjusted over {len(pairwise)} pairs {fmt_p(p.p_adjusted)}"
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
