"""``tlkit train SPLIT.json --backbone NAME --schedule SPEC -o model.keras``: fine-tune a backbone."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, log
from tlkit.cli._model import add_manifest_args
from tlkit.cli._recipe import add_recipe_args, check_recipe, tuner_options

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
            "tlkit train photos.split.json --calibrate -o model.keras",
        ],
    )
    p.add_argument("split", type=Path, metavar="SPLIT.json", help="split manifest (tlkit split)")
    p.add_argument("-o", "--out", type=Path, required=True, help="model file to write (.keras)")
    add_recipe_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out manifest files that are missing or changed instead of failing",
    )
    add_manifest_args(p)
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="after training, fit a temperature on the val part so that the probabilities can "
        "be read as chances (FineTuner.calibrate; saved with the model; predicted classes do "
        "not change)",
    )
    p.add_argument(
        "--strategy",
        choices=["mirrored", "multiworker"],
        default=None,
        help="train under tf.distribute: 'mirrored' (every GPU of this machine, or the CPU) or "
        "'multiworker' (one process per machine, cluster from the TF_CONFIG environment "
        "variable; only the chief writes -o). --batch-size is then the global batch",
    )
    p.set_defaults(run=run)


def _check_cluster(name: str | None) -> None:
    """``--strategy multiworker`` needs a cluster in TF_CONFIG: checked before TensorFlow loads."""
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


def _strategy(name: str | None) -> Any:
    """The tf.distribute strategy of ``--strategy`` (None: one device)."""
    if name is None:
        return None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".keras":
        raise UsageError(f"-o must name a .keras file, got {str(args.out)!r}")
    _check_cluster(args.strategy)  # before anything loads TensorFlow: a usage error at once
    check_recipe(args)
    from tlkit.cli._model import load_split, manifest_options
    from tlkit.finetune import FineTuner

    strategy = _strategy(args.strategy)  # before anything else starts TensorFlow's runtime
    split = load_split(args.split, **manifest_options(args))
    if len(split.train) == 0:
        raise UsageError(f"the train part of {args.split} is empty")
    if args.calibrate and len(split.val) == 0:
        raise UsageError(
            f"--calibrate fits the temperature on the val part, and {args.split} has none: "
            "split again with --val, or leave out --calibrate"
        )
    tuner = FineTuner(class_names=list(split.class_names), strategy=strategy, **tuner_options(args))
    val = split.val if len(split.val) else None
    log(
        f"training {args.backbone} at {tuner.image_size[0]}x{tuner.image_size[1]} on "
        f"{len(split.train)} images ({len(split.val)} for validation)"
    )
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout
        history = tuner.fit(split.train, val, time_budget=args.time_budget)
    if args.calibrate:  # before saving: the file keeps the temperature
        tuner.calibrate(split.val)
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
        "pooling": tuner.backbone.options.get("pooling", "avg"),  # what the head reads
        "temperature": tuner.temperature,  # --calibrate's, applied by predict and compare
    }
    if tuner.pooling_choice is not None:  # --pooling auto: what the probes scored
        summary["pooling_probe_balanced_accuracy"] = {
            k: round(v, 4) for k, v in tuner.pooling_choice.scores.items()
        }
    if tuner.budget_plan is not None:
        summary["time_budget"] = {
            "budget_s": tuner.budget_plan.get("budget_s"),
            "planned_s": round(float(tuner.budget_plan.get("planned_s") or 0.0), 2),
            "replayed": bool(tuner.budget_plan.get("replayed")),
            "epochs": {p["phase"]: p["epochs"] for p in tuner.budget_plan["phases"]},
            "plan": tuner.budget_plan,  # what --time-budget SUMMARY.json replays
        }
    if tuner.kept_epochs is not None:  # the epochs whose (mean) weights the model holds
        first, last = tuner.kept_epochs
        summary["best_epoch"] = last + 1
        summary["kept_epochs"] = [first + 1, last + 1]
    if val is not None:  # the saved model on the val part (calibrated, with --calibrate)
        metrics = tuner.evaluate(val)
        summary["val_metrics"] = {
            f"val_{k}": round(float(metrics[k]), 4)
            for k in ("loss", "accuracy", "balanced_accuracy", "macro_f1")
        }
    print(json.dumps(summary, indent=1))
    return 0
