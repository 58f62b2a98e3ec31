"""The training-recipe flags of ``tlkit train``, ``tlkit cv`` and ``tlkit learning-curve``,
and the FineTuner options they stand for."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_image_size, check_backbone

__all__ = [
    "MAX_PLAN_BYTES",
    "add_recipe_args",
    "check_recipe",
    "fit_kwargs",
    "model_factory",
    "schedule_arg",
    "tuner_options",
]

#: The largest file ``--time-budget PLAN.json`` reads (a plan is a few hundred bytes).
MAX_PLAN_BYTES = 1 << 20


def add_recipe_args(p: argparse.ArgumentParser, *, epochs: bool = False) -> None:
    """``--backbone``, ``--schedule``, ``--image-size``, ``--pooling``, the FineTuner options, ``--time-budget``
    and ``--quiet``; with ``epochs``, also ``--epochs`` (one budget for every model trained)."""
    p.add_argument(
        "--backbone",
        default="efficientnet_lite2",
        help="registry name (see tlkit backbones; default efficientnet_lite2)",
    )
    p.add_argument(
        "--schedule",
        default=None,
        help="e.g. freeze_then_unfreeze:5,10,3 or frozen:20 or schedule.json "
        "(default: FineTuner's)",
    )
    add_image_size(p, "pixels, at least 32 (default: the backbone's)")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet' (default), 'none' (random) or a weights file",
    )
    p.add_argument(
        "--pooling",
        choices=("avg", "blocks", "auto"),
        default="avg",
        help="features the head reads: avg, the last layer's (default); blocks, every block's "
        "(for images unlike ImageNet's photos: cells, microscopy, documents); auto, the one a "
        "linear probe scores higher on the validation images (chosen in each fit, inside its "
        "time budget; needs validation images)",
    )
    p.add_argument("--augment", default=None, help="augmentation preset: light, standard, heavy")
    p.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    p.add_argument("--learning-rate", type=float, default=None, help="(default: the optimizer's)")
    p.add_argument(
        "--class-weight",
        default=None,
        choices=["balanced", "sqrt"],
        help="weight the loss against class imbalance",
    )
    if epochs:
        p.add_argument(
            "--epochs",
            type=int,
            default=None,
            help="epochs of a one-phase schedule (frozen, full) for every model: the budget "
            "per model",
        )
    p.add_argument(
        "--time-budget",
        type=_time_budget,
        default=None,
        metavar="DURATION|PLAN.json",
        help="finish each model's training within this time, e.g. 90s, 10min, 1h: each phase "
        "is measured on a few batches, then the schedule's epochs are scaled to fit (at least "
        "one per phase); or the JSON summary a budgeted 'tlkit train' printed (its "
        "time_budget.plan), whose epochs are replayed without measuring",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def _time_budget(text: str) -> str | dict[str, Any]:
    """``--time-budget``: a duration, checked here (a usage error) and passed on as written,
    or a ``.json`` file: a recorded plan, or a ``tlkit train`` summary holding one."""
    from tlkit._validation import check_duration

    if text.lower().endswith(".json"):
        return _recorded_plan(text)
    try:
        check_duration("a time budget", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _recorded_plan(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PLAN_BYTES + 1)
        if len(data) > MAX_PLAN_BYTES:
            raise ValueError(f"larger than {MAX_PLAN_BYTES} bytes")
        doc = json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: not a readable JSON plan ({exc})") from None
    budget = doc.get("time_budget") if isinstance(doc, dict) else None
    plan = budget.get("plan") if isinstance(budget, dict) else doc
    if not isinstance(plan, dict) or "phases" not in plan:
        raise argparse.ArgumentTypeError(
            f"{path}: holds no time-budget plan (the JSON summary of a 'tlkit train "
            "--time-budget' run, or its time_budget.plan)"
        )
    return plan


def schedule_arg(text: str | None) -> Any:
    """``--schedule``: a spec string as written, or the JSON of a schedule file."""
    if text is None:
        return None
    path = Path(text)
    if text.endswith(".json") or path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"--schedule file {text!r} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"--schedule file {text!r} is not valid JSON: {exc}") from None
    return text


def check_recipe(args: argparse.Namespace) -> None:
    """Refuse bad flag values before anything slow starts."""
    if args.image_size is not None and args.image_size < 32:
        raise UsageError(f"--image-size must be at least 32, got {args.image_size}")
    if getattr(args, "epochs", None) is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    check_backbone(args.backbone)  # unknown backbone: fail before loading anything


def tuner_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``FineTuner`` keyword arguments the recipe flags (and ``--seed``) stand for."""
    return {
        "backbone": args.backbone,
        "weights": None if args.weights.lower() == "none" else args.weights,
        "image_size": args.image_size,
        "pooling": args.pooling,
        "schedule": schedule_arg(args.schedule),
        "augment": args.augment,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "class_weight": args.class_weight,
        "seed": args.seed,
        "verbose": 0 if args.quiet else 2,
    }


def fit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What every ``fit`` gets: ``epochs`` and ``time_budget`` when given."""
    out: dict[str, Any] = {}
    if getattr(args, "epochs", None) is not None:
        out["epochs"] = args.epochs
    if args.time_budget is not None:
        out["time_budget"] = args.time_budget
    return out


def model_factory(args: argparse.Namespace) -> Callable[[], Any]:
    """A function making a new FineTuner of the recipe, one per fold or fraction.

    The classes come from each training part, so a folder and a manifest work alike.
    """
    from tlkit.finetune import FineTuner

    options = tuner_options(args)

    def make_model() -> Any:
        return FineTuner(**options)

    make_model()  # a bad option fails here, before the folds are made
    return make_model
