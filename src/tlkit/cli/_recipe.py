"""The training-recipe flags ``tlkit cv`` and ``tlkit learning-curve`` share, and the FineTuner they make."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from tlkit.cli._common import UsageError, add_image_size, check_backbone

__all__ = ["add_recipe_args", "check_recipe", "fit_kwargs", "model_factory"]


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """``--backbone``, ``--schedule``, ``--epochs``, ``--time-budget`` and the FineTuner options."""
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
    p.add_argument("--augment", default=None, help="augmentation preset: light, standard, heavy")
    p.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    p.add_argument("--learning-rate", type=float, default=None, help="(default: the optimizer's)")
    p.add_argument(
        "--class-weight",
        default=None,
        choices=["balanced", "sqrt"],
        help="weight the loss against class imbalance",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of a one-phase schedule (frozen, full) for every model: the budget per model",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall-clock budget of each model's training (needs FineTuner.fit(time_budget=))",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def check_recipe(args: argparse.Namespace) -> None:
    """Refuse bad flag values before anything slow starts."""
    if args.image_size is not None and args.image_size < 32:
        raise UsageError(f"--image-size must be at least 32, got {args.image_size}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise UsageError(
            f"--time-budget must be a positive number of seconds, got {args.time_budget}"
        )
    check_backbone(args.backbone)  # unknown backbone: fail before loading anything


def fit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What every ``fit`` gets: ``epochs`` and ``time_budget`` when given."""
    out: dict[str, Any] = {}
    if args.epochs is not None:
        out["epochs"] = args.epochs
    if args.time_budget is not None:
        from tlkit.finetune import FineTuner

        if "time_budget" not in inspect.signature(FineTuner.fit).parameters:
            raise UsageError(
                "--time-budget needs a tlkit whose FineTuner.fit takes time_budget; "
                "use --epochs to bound each model's training instead"
            )
        out["time_budget"] = args.time_budget
    return out


def model_factory(args: argparse.Namespace) -> Callable[[], Any]:
    """A function making a new FineTuner of the recipe, one per fold or fraction.

    The classes come from each training part, so a folder and a manifest work alike.
    """
    from tlkit.cli._train import _schedule
    from tlkit.finetune import FineTuner

    schedule = _schedule(args.schedule)
    weights = None if args.weights.lower() == "none" else args.weights

    def make_model() -> Any:
        return FineTuner(
            backbone=args.backbone,
            weights=weights,
            image_size=args.image_size,
            schedule=schedule,
            augment=args.augment,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            class_weight=args.class_weight,
            seed=args.seed,
            verbose=0 if args.quiet else 2,
        )

    make_model()  # a bad option fails here, before the folds are made
    return make_model
