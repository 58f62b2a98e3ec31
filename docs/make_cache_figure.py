"""The figure of the "Fine-tuning" guide's caches and time budget, from the study run the README quotes.

Run: ``python docs/make_cache_figure.py`` (a second; reads
``docs/_static/elpv_study/run.json``, which ``python examples/mobilenet_vs_cnn.py``
wrote). Writes ``docs/_static/finetune_caches.png``: above, where the boundary cache
cuts EfficientNet-Lite0 in the study's default profile and what each phase trains on;
below, the pretrained model's 4-minute fit as the time budget planned it (measuring,
each phase's one-off cost and its epochs) against the time the fit took.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

STATIC = Path(__file__).parent / "_static"
RUN = STATIC / "elpv_study" / "run.json"
MODEL = "efficientnet_lite0"


def _box(ax, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    ax.add_patch(
        FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.02", fc=color,
                       ec="#444444", lw=1)
    )  # fmt: skip
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)


def _arrow(ax, a: tuple[float, float], b: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, color="#444444"))


# what the caches hold, by the pooling the run used (the sizes are the run's log lines)
CACHES = {
    "avg": ("boundary cache\n7 x 7 x 192 float16\n(73 MB in memory)",
            "pooled features\n(1,280 per image\nand view)"),
    "blocks": ("boundary cache\n7 x 7 x 192 + 14 frozen\nblocks pooled, float16\n(133 MB in memory)",
               "every block's pooled\nfeatures (10,208 per\nimage and view)"),
}  # fmt: skip


def schematic(ax, pooling: str) -> None:
    """Images -> frozen part (once per image and view) -> boundary cache -> top groups -> head."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(0, 1)
    ax.axis("off")
    frozen, cache, trains = "#d9d9d9", "#fde0a6", "#b8d8f0"
    _box(ax, 0.00, 0.55, 0.14, 0.30, "images\n224 px,\n2 views:\nidentity, hflip", "white")
    _box(
        ax,
        0.19,
        0.55,
        0.20,
        0.30,
        "stem + stages 1-6\nfrozen: run once per\nimage and view",
        frozen,
    )
    boundary, pooled = CACHES[pooling]
    _box(ax, 0.44, 0.55, 0.17, 0.30, boundary, cache)
    _box(ax, 0.66, 0.55, 0.17, 0.30, "stage 7 +\nhead convolution\n(top 2 groups)", trains)
    _box(ax, 0.88, 0.55, 0.12, 0.30, "pool +\nclassifier", trains)
    _box(ax, 0.66, 0.05, 0.17, 0.28, pooled, cache)
    _box(ax, 0.88, 0.05, 0.12, 0.28, "classifier", trains)
    for a, b in (((0.14, 0.70), (0.19, 0.70)), ((0.39, 0.70), (0.44, 0.70)),
                 ((0.61, 0.70), (0.66, 0.70)), ((0.83, 0.70), (0.88, 0.70)),
                 ((0.83, 0.19), (0.88, 0.19))):  # fmt: skip
        _arrow(ax, a, b)
    _arrow(ax, (0.525, 0.55), (0.66, 0.26))
    ax.text(0.50, 0.33, "stage 7 + head conv,\nonce (frozen)", fontsize=7.5, ha="right")
    ax.text(0.005, 0.36, "phase 2, top two groups:\ntrain on the boundary cache\n(upper row, blue trains)",
            fontsize=8, va="top")  # fmt: skip
    ax.text(0.005, 0.12, "phase 1, head: trains on\npooled features (lower row)", fontsize=8,
            va="top")  # fmt: skip
    ax.set_title(
        "One pass through the frozen part fills both caches "
        "(FreezeThenUnfreeze(30, 15, unfreeze=2), Views('flip'))",
        fontsize=9.5,
    )


def timeline(ax, plan: dict, choice_s: float) -> None:
    """The budget's plan, segment by segment, and the time the fit took.

    ``choice_s``: seconds the fit spent choosing the head's features (``pooling="auto"``)
    before measuring; the plan counts them in its ``measure_s``.
    """
    head, finetune = plan["phases"]
    stopped = {s["phase"]: s["epochs"] for s in plan.get("stopped", [])}
    ran = stopped.get("finetune", finetune["epochs"])
    segments = [("choosing\nfeatures", choice_s, "#e6e6e6")] if choice_s else []
    segments += [
        ("measuring", plan["measure_s"] - choice_s, "#cccccc"),
        ("head: build, fill\nboth caches", head["fixed_s"], "#fde0a6"),
        (f"{head['epochs']}\nhead", head["epochs"] * head["epoch_s"], "#8fb9dc"),
        (
            f"top two groups: {finetune['epochs']} epochs planned "
            f"(~{finetune['epoch_s']:.1f} s each), {ran} ran",
            finetune["fixed_s"] + finetune["epochs"] * finetune["epoch_s"],
            "#4a90c8",
        ),
    ]
    left = 0.0
    for label, width, color in segments:
        ax.barh(1, width, left=left, color=color, edgecolor="#444444", height=0.5)
        ax.text(left + width / 2, 1, label, ha="center", va="center", fontsize=7.5)
        left += width
    ax.barh(0, plan["fit_s"], color="#9e9e9e", edgecolor="#444444", height=0.5)
    ax.text(plan["fit_s"] / 2, 0, f"the fit took {plan['fit_s']:.0f} s", ha="center",
            va="center", fontsize=8)  # fmt: skip
    ax.axvline(plan["budget_s"], color="#c0392b", ls="--", lw=1.2)
    ax.text(plan["budget_s"], 1.45, f" budget {plan['budget_s']:.0f} s", color="#c0392b",
            fontsize=8, va="center")  # fmt: skip
    ax.set_yticks([1, 0], ["planned", "ran"])
    ax.set_ylim(-0.5, 1.7)
    ax.set_xlim(0, max(plan["budget_s"], left, plan["fit_s"]) * 1.12)
    ax.set_xlabel("seconds on 2 CPU cores (the study's EfficientNet-Lite0 fit, run.json)")
    ax.spines[["top", "right"]].set_visible(False)


def main(run: Path = RUN) -> Path:
    record = json.loads(run.read_text(encoding="utf-8"))
    plan = record["budget_plans"][MODEL]
    pooling = record.get("pooling") or {}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9.5, 5.6), gridspec_kw={"height_ratios": [1.5, 1]}
    )
    schematic(top, pooling.get("used", "avg"))
    timeline(bottom, plan, pooling.get("choice_s") or 0.0)
    fig.tight_layout()
    out = STATIC / "finetune_caches.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else RUN))
