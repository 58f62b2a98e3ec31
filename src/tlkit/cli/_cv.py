"""``tlkit cv DATA --folds 5 --backbone NAME -o DIR``: cross-validate a training recipe."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, log
from tlkit.cli._model import add_manifest_args
from tlkit.cli._recipe import add_recipe_args, check_recipe, fit_kwargs, model_factory

FLAG_VALUES = {("on_mismatch", "skip"): "--skip-missing"}


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "cv",
        help="cross-validate a training recipe: every image predicted once, out of fold",
        description="K-fold cross-validation of a FineTuner recipe on DATA (a folder-per-class "
        "dataset, or a split manifest whose parts are pooled). Folds are stratified and "
        "leak-free like tlkit split's parts (identical files and --groups matches stay in one "
        "fold); each fold trains a new model on the other folds, choosing its best epoch on a "
        "--val share of them, and predicts the held-out fold. Writes into -o the comparison "
        "report over the pooled out-of-fold predictions (report.html, report.md, report.json, "
        "plots), cv.json, cv.md and oof_predictions.csv; a JSON summary goes to stdout.",
        examples=[
            "tlkit cv photos/ --folds 5 --backbone mobilenet_v2 --schedule frozen:20 -o cv/",
            "tlkit cv photos.split.json --folds 5 --repeats 2 --backbone efficientnet_lite0 "
            "--epochs 10 -o cv-lite0/",
        ],
    )
    p.add_argument("data", type=Path, metavar="DATA", help="dataset folder or split manifest")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--repeats", type=int, default=1, help="repeat with seeds +1, +2 (default 1)")
    p.add_argument(
        "--val",
        type=float,
        default=0.15,
        help="share of the training folds used to choose the best epoch (default 0.15; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and models (default 0)")
    p.add_argument("--groups", default=None, help="regex whose match keeps files in one fold")
    p.add_argument(
        "--on-conflict",
        default="error",
        choices=["error", "drop", "keep_first"],
        help="identical files under two classes (default: error)",
    )
    p.add_argument(
        "--allow-small-classes",
        action="store_true",
        help="let a class with fewer images than folds miss from some folds",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out manifest files that are missing or changed instead of failing",
    )
    p.add_argument("--name", default="cv", help="row name in the report (default cv)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (created)")
    add_recipe_args(p, epochs=True)
    add_manifest_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_boot < 0:
        raise UsageError(f"--n-boot must be >= 0, got {args.n_boot}")
    if not args.data.exists():
        raise FileNotFoundError(f"{str(args.data)!r} does not exist")
    check_recipe(args)
    from tlkit.evaluate import cross_validate

    data: Any = args.data
    options: dict[str, Any] = {
        "groups": args.groups,
        "on_conflict": args.on_conflict,
    }
    if args.data.is_file():
        from tlkit.cli._model import load_split, manifest_options

        data = load_split(args.data, **manifest_options(args))
        if args.groups is not None or args.on_conflict != "error":
            raise UsageError(
                "--groups and --on-conflict apply to a dataset folder; a split manifest already "
                "carries its groups"
            )
        options = {}
    make_model = model_factory(args)
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout
        result = cross_validate(
            make_model,
            data,
            folds=args.folds,
            repeats=args.repeats,
            seed=args.seed,
            val=args.val or None,
            fit_kwargs=fit_kwargs(args),
            allow_small_classes=args.allow_small_classes,
            n_boot=args.n_boot,
            **options,
        )
    written = result.save(args.out, name=args.name)
    for w in result.warnings:
        log(f"warning: {w}")
    log(f"cross-validation written to {args.out} ({len(written)} files)")
    d = result.to_dict(include_predictions=False)
    summary = {k: d[k] for k in ("n", "folds", "repeats", "seed", "pooled", "fold_summary")}
    summary["skipped"] = len(result.skipped)
    summary["out"] = str(args.out)
    print(json.dumps(summary, indent=1))
    return 0
