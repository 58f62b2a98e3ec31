"""``tlkit learning-curve SPLIT.json --backbone NAME -o DIR``: would more photos help?"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, log
from tlkit.cli._model import add_manifest_args
from tlkit.cli._recipe import add_recipe_args, check_recipe, fit_kwargs, model_factory


def _fractions(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fractions takes numbers separated by commas, e.g. 0.2,0.4,1; got {text!r}"
        ) from None


#: Library argument values that are a flag of this command (see tlkit.cli._common.as_flags).
FLAG_VALUES = {("on_mismatch", "skip"): "--skip-missing"}


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "learning-curve",
        help="train on growing shares of the training data: would more photos help?",
        description="Train a FineTuner recipe on nested, stratified, leak-free fractions of the "
        "train part of SPLIT, score each model on the same test (or val) images with bootstrap "
        "intervals, fit a saturating power law metric(n) = a - b * n^(-c), and say whether more "
        "photos are likely to help (the predicted gain at twice the data is an extrapolation). "
        "Writes learning_curve.png, .json, .md and .html into -o; the sentence goes to stderr, "
        "the JSON to stdout.",
        examples=[
            "tlkit learning-curve photos.split.json --backbone mobilenet_v2 "
            "--schedule frozen:20 -o curve/",
            "tlkit learning-curve photos.split.json --fractions 0.25,0.5,0.75,1 --on val "
            "--metric accuracy -o curve/",
        ],
    )
    p.add_argument("split", type=Path, metavar="SPLIT.json", help="split manifest (tlkit split)")
    p.add_argument(
        "--fractions",
        type=_fractions,
        default=[0.2, 0.4, 0.6, 0.8, 1.0],
        help="shares of the train part, comma-separated (default 0.2,0.4,0.6,0.8,1)",
    )
    p.add_argument(
        "--on", default="test", choices=["test", "val"], help="images to score on (default test)"
    )
    p.add_argument(
        "--metric",
        default="balanced_accuracy",
        choices=["balanced_accuracy", "accuracy", "macro_f1"],
        help="metric to fit (default balanced_accuracy)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets and models (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out manifest files that are missing or changed instead of failing",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (created)")
    add_recipe_args(p, epochs=True)
    add_manifest_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_boot < 0:
        raise UsageError(f"--n-boot must be >= 0, got {args.n_boot}")
    check_recipe(args)
    from tlkit.cli._model import load_split, manifest_options
    from tlkit.evaluate import learning_curve

    split = load_split(args.split, **manifest_options(args))
    make_model = model_factory(args)
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout
        curve = learning_curve(
            make_model,
            split,
            fractions=args.fractions,
            seed=args.seed,
            on=args.on,
            metric=args.metric,
            fit_kwargs=fit_kwargs(args),
            n_boot=args.n_boot,
        )
    written = curve.save(args.out)
    for w in curve.warnings:
        log(f"warning: {w}")
    log(curve.sentence)
    log(f"learning curve written to {args.out} ({len(written)} files)")
    print(curve.to_json())
    return 0
