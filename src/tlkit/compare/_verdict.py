"""The verdict of a comparison: one paragraph, baseline first, then who is better and how surely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tlkit.compare._format import CI_KEYS, ci_metric, fmt_p
from tlkit.metrics import METRIC_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ModelResult, PairwiseResult

__all__ = ["verdict"]


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
    b_acc = ci_metric(base, "accuracy")
    b_bal = ci_metric(base, "balanced_accuracy")
    conf = f"{confidence:.0%} CI "

    def value(r: ModelResult, key: str) -> str:
        c = r.ci.get(key)
        v = r.metrics[key]
        return f"{v:.3f} [{c.low:.3f}, {c.high:.3f}]" if c is not None else f"{v:.3f}"

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
        others = ", ".join(f"{r.name} {value(r, key)}" for r in rest)
        sentence = f"On {label} {lead}, {value(leaders[0], key)} vs {others}"
        if key == "accuracy":
            sentence += _significance(leaders[0], pairwise, correction)
        out.append(sentence + ".")
    return " ".join(out) + tested


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
