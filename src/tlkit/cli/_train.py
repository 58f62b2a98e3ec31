"""``tlkit train SPLIT.json --backbone NAME --schedule SPEC -o model.keras``: fine-tune a backbone."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, add_image_size, check_backbone, log
from tlkit.cli._model import add_manifest_args

#: Library argument values that are a flag of this command (see tlkit.cli._common.as_flags).
FLAG_VALUES = {("on_mismatch", "skip"): "--skip-missing"}


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "train",
        help="fine-tune a pretrained backbone on a split and save the model",
        description="Fine-tune BACKBONE on the train part of SPLIT with a layer-freezing "
        "schedule, choosing the best epochs on its val part, and save the model (.keras, with "
        "its class names and settings). Progress goes to stderr; a JSON summary (the model "
        "file, classes, epochs, training time, history) goes to stdout. "
        "Schedules: 'frozen:EPOCHS' (head only), 'freeze_then_unfreeze:HEAD,FINETUNE,GROUPS' "
        "(head first, then the top GROUPS layer groups, or 'all'), 'full:EPOCHS', or a JSON "
        "file holding a schedule's get_config().",
        examples=[
            "tlkit train photos.split.json --backbone mobilenet_v2 "
            "--schedule freeze_then_unfreeze:5,10,3 -o model.keras",
            "tlkit train photos.split.json --backbone efficientnet_lite0 --schedule frozen:20 "
            "--image-size 160 --augment light -o lite0.keras",
            "tlkit train photos.split.json --backbone mobilenet_v2 --strategy mirrored "
            "--batch-size 128 -o model.keras",
            "tlkit train photos.split.json --time-budget 10min -o model.keras",
        ],
    )
    p.add_argument("split", type=Path, metavar="SPLIT.json", help="split manifest (tlkit split)")
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
    p.add_argument("-o", "--out", type=Path, required=True, help="model file to write (.keras)")
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
    p.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    p.add_argument(
        "--time-budget",
        type=_duration,
        default=None,
        metavar="DURATION|PLAN.json",
        help="finish training within this time, e.g. 90s, 10min, 1h: each phase is measured on "
        "a few batches, then the schedule's epochs are scaled to fit (at least one per phase); "
        "or the JSON summary a budgeted 'tlkit train' printed (its time_budget.plan), whose "
        "epochs are replayed without measuring, for the same model again",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out manifest files that are missing or changed instead of failing",
    )
    add_manifest_args(p)
    p.add_argument(
        "--strategy",
        choices=["mirrored", "multiworker"],
        default=None,
        help="train under tf.distribute: 'mirrored' (every GPU of this machine, or the CPU) or "
        "'multiworker' (one process per machine, cluster from the TF_CONFIG environment "
        "variable; only the chief writes -o). --batch-size is then the global batch",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(run=run)


#: The largest file ``--time-budget PLAN.json`` reads (a plan is a few hundred bytes).
MAX_PLAN_BYTES = 1 << 20


def _duration(text: str) -> str | dict[str, Any]:
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


def _schedule(text: str | None) -> Any:
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


def _strategy(name: str | None) -> Any:
    """The tf.distribute strategy of ``--strategy`` (None: one device)."""
    if name is None:
        return None
    if name == "multiworker":
        text = os.environ.get("TF_CONFIG")
        if not text:
            raise UsageError(
                "--strategy multiworker needs the TF_CONFIG environment variable (the cluster "
                "and this worker's task), see the 'Scaling out' guide"
            )
        try:
            config = json.loads(text)
            cluster, task = config["cluster"], config["task"]
            if not (cluster.get("worker") or cluster.get("chief")) or "index" not in task:
                raise KeyError("cluster.worker and task.index")
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"TF_CONFIG is not a cluster description ({type(exc).__name__}: {exc}); it must "
                'look like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                '"worker", "index": 0}}'
            ) from None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".keras":
        raise UsageError(f"-o must name a .keras file, got {str(args.out)!r}")
    if args.image_size is not None and args.image_size < 32:
        raise UsageError(f"--image-size must be at least 32, got {args.image_size}")
    check_backbone(args.backbone)  # unknown backbone: fail before loading anything
    from tlkit.cli._model import load_split, manifest_options
    from tlkit.finetune import FineTuner

    strategy = _strategy(args.strategy)  # before anything else starts TensorFlow's runtime
    split = load_split(args.split, **manifest_options(args))
    if len(split.train) == 0:
        raise UsageError(f"the train part of {args.split} is empty")
    weights = None if args.weights.lower() == "none" else args.weights
    tuner = FineTuner(
        backbone=args.backbone,
        class_names=list(split.class_names),
        weights=weights,
        image_size=args.image_size,
        schedule=_schedule(args.schedule),
        augment=args.augment,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        class_weight=args.class_weight,
        seed=args.seed,
        strategy=strategy,
        verbose=0 if args.quiet else 2,
    )
    val = split.val if len(split.val) else None
    log(
        f"training {args.backbone} at {tuner.image_size[0]}x{tuner.image_size[1]} on "
        f"{len(split.train)} images ({len(split.val)} for validation)"
    )
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout
        history = tuner.fit(split.train, val, time_budget=args.time_budget)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tuner.save(args.out)
    if tuner.is_chief():
        log(f"model written to {args.out}")
    summary: dict[str, Any] = {
        "model": str(args.out),
        "backbone": tuner.backbone_name,
        "image_size": list(tuner.image_size),
        "class_names": list(tuner.class_names or []),
        "train_images": len(split.train),
        "val_images": len(split.val),
        "epochs": len(getattr(history, "phases", [])),
        "strategy": args.strategy,
        "replicas": 1 if strategy is None else int(strategy.num_replicas_in_sync),
        "train_time_s": None if tuner.train_time_s is None else round(tuner.train_time_s, 2),
    }
    if tuner.budget_plan is not None:
        summary["time_budget"] = {
            "budget_s": tuner.budget_plan.get("budget_s"),
            "planned_s": round(float(tuner.budget_plan.get("planned_s") or 0.0), 2),
            "replayed": bool(tuner.budget_plan.get("replayed")),
            "epochs": {p["phase"]: p["epochs"] for p in tuner.budget_plan["phases"]},
            "plan": tuner.budget_plan,  # what --time-budget SUMMARY.json replays
        }
    values = getattr(history, "history", {}) or {}
    if values.get("val_balanced_accuracy"):
        epoch, _ = history.best("val_balanced_accuracy")
        summary["best_epoch"] = epoch + 1
        summary["best_epoch_metrics"] = {
            k: round(v[epoch], 4) for k, v in values.items() if k.startswith("val_")
        }
    print(json.dumps(summary, indent=1))
    return 0
