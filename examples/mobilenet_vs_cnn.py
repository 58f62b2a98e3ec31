"""The study, reproduced honestly: a pretrained MobileNet fine-tuned vs a CNN trained from scratch.

Usage::

    python examples/mobilenet_vs_cnn.py                    # ELPV: 2,624 real solar-cell images
    python examples/mobilenet_vs_cnn.py --data photos/     # your folder-per-class photos
    python examples/mobilenet_vs_cnn.py --profile full     # best accuracy, takes longer
    python examples/mobilenet_vs_cnn.py --profile smoke    # seconds, tiny generated data
    python examples/mobilenet_vs_cnn.py --replay study/run.json  # the same epochs as that run
    python examples/mobilenet_vs_cnn.py --pooling blocks   # the head reads every block's features

Steps: a seeded, stratified, leak-free split (manifest saved) -> augmentation ->
``FineTuner`` on a pretrained backbone (MobileNetV2 by default; offline, where its
ImageNet weights cannot be downloaded, EfficientNet-Lite0, whose weights ship with
``tlkit[lite]``; its head reads the last layer's or every block's pooled features,
whichever a linear probe scores higher on validation, inside its time budget) -> the scratch CNN on the same data and time budget (the default
profile gives each model's fit 4 minutes: each schedule's epochs are scaled to
fit, so the comparison is at equal CPU time) -> each model's temperature fitted on the
validation images, so that its probabilities can be read as chances ->
``ModelComparator`` with the majority-class baseline, intervals and McNemar's test.
It prints both classification reports in the study's format, then every warning and
the verdict, and writes everything into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

PROFILES = {
    # pretrained: image size, schedule (head epochs, finetune epochs, groups), augmentation (a preset,
    # or views:SET, a finite set of views the caches hold); the scratch CNN: its image size, epochs
    # and augmentation; the time budget of each model's fit (None: the schedule's epochs as given)
    "smoke": {"size": 64, "head": 1, "finetune": 1, "unfreeze": 1, "aug": "light",
              "scratch_size": 64, "scratch": 2, "scratch_aug": "light", "time_budget": None},
    # chosen on validation among equal-time recipes (docs: benchmarks page, "Recipes tried since")
    "default": {"size": 224, "head": 30, "finetune": 15, "unfreeze": 2, "aug": "views:flip",
                "scratch_size": 160, "scratch": 20, "scratch_aug": "light", "time_budget": "4min"},
    "full": {"size": 224, "head": 40, "finetune": 20, "unfreeze": "all", "aug": "light",
             "scratch_size": 224, "scratch": 60, "scratch_aug": "light", "time_budget": None},
}  # fmt: skip
FALLBACK = "efficientnet_lite0"


class Failure(Exception):
    """A one-line reason to stop (printed without a traceback)."""


def time_budget(text: str) -> str:
    """``--time-budget``: "90s", "10min", "1h", seconds, or "none" (checked by tlkit, kept as written)."""
    from tlkit._validation import check_duration

    if text.strip().lower() == "none":
        return "none"
    try:
        check_duration("a time budget", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python examples/mobilenet_vs_cnn.py --data photos/ --out study/",
    )
    p.add_argument(
        "--data", type=Path, help="folder with one sub-folder of images per class (default: ELPV)"
    )
    p.add_argument(
        "--synthetic", action="store_true", help="use a generated dataset instead of ELPV"
    )
    p.add_argument(
        "--backbone", default="mobilenet_v2", help="registry backbone (default mobilenet_v2)"
    )
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help=f"stop when the backbone's ImageNet weights cannot be obtained (default: use {FALLBACK})",
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="default: 4 minutes for each model's fit (the pretrained one at 224 px, its top two "
        "layer groups fine-tuned on cached features, flip views); full: 224 px, every group "
        "fine-tuned, no time budget; smoke: tiny generated data, for tests",
    )
    p.add_argument(
        "--image-size", type=int, help="override the profile's image size (of both models)"
    )
    p.add_argument(
        "--pooling",
        choices=("auto", "avg", "blocks"),
        default="auto",
        help="features the pretrained model's head reads: avg, the last layer's; blocks, every "
        "block's (better for images unlike ImageNet's photos, such as ELPV's cells; worse for "
        "photos); auto (default), the one a linear probe scores higher on validation (a pass "
        "over the images at the start of the fit, inside its time budget)",
    )
    p.add_argument(
        "--head-start",
        choices=("probe", "random"),
        default="probe",
        help="how the pretrained model's head starts: probe (default), as the linear probe on "
        "its features (LP-FT's first step), trained at 3e-4; random, trained at 3e-3",
    )
    p.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit each model's temperature on the validation part after its fit, so that its "
        "probabilities can be read as chances (FineTuner.calibrate; the predicted classes do "
        "not change; default: on)",
    )
    p.add_argument(
        "--time-budget",
        type=time_budget,
        metavar="DURATION",
        help="time for each model's fit, e.g. 5min (default: the profile's, 4min in the default "
        "profile; none: the schedule's epochs as given); each phase is measured on a few batches, then its epochs "
        "are scaled to fit, so both models train for the same time",
    )
    p.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="after the test-set comparison, cross-validate both recipes over all the images "
        "with K leak-free folds (every image predicted once, paired tests on all of them); "
        "K+1 times the training time (default: 0, off)",
    )
    p.add_argument(
        "--replay",
        type=Path,
        metavar="RUN.json",
        help="train the epochs a time-budgeted run recorded in its run.json (no measuring), so "
        "the same seed and data give that run's models again; give the same profile and options",
    )
    p.add_argument("--out", type=Path, help="output folder (default: a new temporary folder)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split and of training")
    args = p.parse_args(argv)
    if args.cv == 1 or args.cv < 0:
        p.error(f"--cv {args.cv}: give at least 2 folds, or 0 for no cross-validation")
    if args.replay is not None and (args.cv or args.time_budget):
        p.error("--replay trains the recorded epochs: leave out --cv and --time-budget")
    return args


def recorded_plans(path: Path) -> dict:
    """The time-budget plans a run wrote into its run.json, by model name."""
    try:
        plans = json.loads(path.read_text(encoding="utf-8")).get("budget_plans")
    except (OSError, ValueError, AttributeError) as exc:
        raise Failure(f"--replay {path}: not a readable run.json ({exc})") from exc
    if not isinstance(plans, dict) or not all(isinstance(v, dict) for v in plans.values()):
        raise Failure(
            f"--replay {path}: it records no time-budget plans (a run with --time-budget none "
            "trains the schedule's epochs, and is reproducible as it is)"
        )
    return plans


def load_split(args: argparse.Namespace, work: Path):
    from tlkit import DatasetSplitter
    from tlkit.datasets import make_synthetic_dataset

    splitter = DatasetSplitter(val=0.15, test=0.15, seed=args.seed)
    if args.data is not None:  # a folder: run() checked
        print(f"data: {args.data} (--data)")
        return splitter.split(args.data)
    if args.profile == "smoke" or args.synthetic:
        why = "--profile smoke" if args.profile == "smoke" else "--synthetic"
        counts = {"healthy": 40, "rust": 20, "scab": 12} if args.profile == "smoke" else {
            "healthy": 530, "rust": 135, "scab": 55
        }  # fmt: skip
        print(f"data: a generated, imbalanced 3-class dataset ({why})")
        root = make_synthetic_dataset(work / "photos", counts, image_size=64, seed=0)
        return splitter.split(root)
    try:
        from tlkit.datasets import elpv_samples

        pairs, names = elpv_samples()
    except ImportError as exc:
        print(f"data: ELPV is not installed ({exc}); using a generated dataset instead")
        root = make_synthetic_dataset(
            work / "photos", {"healthy": 530, "rust": 135, "scab": 55}, image_size=96, seed=0
        )
        return splitter.split(root)
    print("data: ELPV, 2,624 real solar-cell electroluminescence images (elpv-dataset package)")
    return splitter.split_samples(pairs, class_names=names)


def augmentation(name: str, seed: int):
    """A preset's fresh layers, or for ``views:SET`` a finite :class:`~tlkit.augment.Views` set."""
    from tlkit import AugmentationPipeline
    from tlkit.augment import Views

    if name.startswith("views:"):
        return Views(name.removeprefix("views:"), seed=seed)
    return AugmentationPipeline.preset(name, seed=seed)


def pretrained_settings(args: argparse.Namespace, split, profile: dict, size: int) -> dict:
    """FineTuner arguments of the pretrained recipe (fresh augmentation layers each call)."""
    from tlkit import schedules

    # a head started from the probe trains at a tenth of the rate a random one needs (fine-tuning
    # guide, "Starting the head from the probe"); the fine-tuning phase's peak rate, 1.5e-4, is
    # the same
    rate, lr_factor = (3e-4, 0.5) if args.head_start == "probe" else (3e-3, 0.05)
    schedule = schedules.FreezeThenUnfreeze(
        head_epochs=profile["head"],
        finetune_epochs=profile["finetune"],
        unfreeze=profile["unfreeze"],
        lr_factor=lr_factor,
        lr_decay=0.8,
        warmup=1.0,
        head_start=args.head_start,
    )
    return {
        "class_names": split.class_names,
        "image_size": size,
        "schedule": schedule,
        "augment": augmentation(profile["aug"], args.seed),
        "pooling": args.pooling,
        "class_weight": "sqrt",
        "learning_rate": rate,
        "seed": args.seed,
        "verbose": 2 if args.profile != "smoke" else 0,
    }


def pretrained_tuner(args: argparse.Namespace, split, profile: dict, size: int):
    from tlkit import FineTuner
    from tlkit.errors import WeightsUnavailableError

    common = pretrained_settings(args, split, profile, size)

    def built(name: str) -> FineTuner:
        tuner = FineTuner(name, **common)
        tuner.build()
        return tuner

    try:
        return built(args.backbone)
    except WeightsUnavailableError as exc:
        reason = str(exc).splitlines()[0]
        if args.no_fallback:
            raise Failure(f"{args.backbone}: {reason}") from None
        print(
            f"{args.backbone}: ImageNet weights cannot be obtained here ({reason[:120]}...); "
            f"using {FALLBACK}, a mobile backbone whose weights ship with tlkit[lite] "
            "(--no-fallback stops instead)"
        )
        return built(FALLBACK)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("tlkit", "keras", "tensorflow", "numpy", "scikit-learn", "elpv-dataset"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def calibrate(args: argparse.Namespace, tuner, split, name: str) -> None:
    """With --calibrate (the default), fit ``tuner``'s temperature on the val part.

    The models' probabilities then mean what they say (temperature scaling, Guo et al.
    2017); the report's calibration table and notes say it. The classes predicted, and
    so every accuracy figure, do not change. The test set is never used.
    """
    if not args.calibrate:
        return
    temperature = tuner.calibrate(split.val)
    print(f"{name}: temperature T={temperature:.3g} fitted on the {len(split.val)} val images")


def replayed(plans: dict | None, name: str, args: argparse.Namespace) -> dict | None:
    """The recorded plan of model ``name`` when replaying (None otherwise)."""
    if plans is None:
        return None
    if plans.get(name) is None:
        raise Failure(f"--replay {args.replay}: no time-budget plan recorded for {name}")
    return plans[name]


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    # what the arguments name is checked before TensorFlow loads (seconds): fail fast
    if args.data is not None and not args.data.is_dir():
        raise Failure(f"--data {args.data}: no such folder")
    plans = recorded_plans(args.replay) if args.replay else None
    import keras

    from tlkit import ModelComparator, Split
    from tlkit.backbones import list_backbones, unknown_backbone_message

    if args.backbone not in list_backbones():  # before the split, which reads every image
        raise Failure(unknown_backbone_message(args.backbone, listing="tlkit backbones"))
    profile = PROFILES[args.profile]
    size = args.image_size or profile["size"]
    time_limit = args.time_budget or profile["time_budget"]
    time_limit = None if time_limit == "none" else time_limit
    work = args.out or Path(tempfile.mkdtemp(prefix="tlkit-study-"))
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    print(f"== 1/4 split (seed {args.seed})")
    split = load_split(args, work)
    print(split.summary())
    # root=: the data (--data, ELPV) may lie outside work/, where a manifest reaches only if told
    split = Split.load(split.save(work / "split.json"), root=split.root)

    within = f", {time_limit} each" if time_limit else ""
    print(f"\n== 2/4 pretrained backbone, fine-tuned ({args.profile} profile, {size} px{within})")
    tuner = pretrained_tuner(args, split, profile, size)
    name = tuner.backbone_name
    print(f"{name}: {tuner.schedule}, pooling={args.pooling!r}")
    # pooling auto: the fit starts with one pass of the frozen backbone and a linear probe on
    # each feature set (inside its time budget, and its cost)
    tuner.fit(split.train, split.val, time_budget=replayed(plans, name, args) or time_limit)
    choice = tuner.pooling_choice
    used = tuner.backbone.options.get("pooling", "avg")
    print(f"{name}: {choice}" if choice else f"{name}: pooling {used!r}")
    calibrate(args, tuner, split, name)
    tuner.save(work / f"{name}.keras")

    budget = len(tuner.history)
    makers = recipe_makers(args, split, profile, size, name)
    scratch = makers["cnn_from_scratch"]()
    plan = f"{scratch.schedule.epochs} epochs" + (f" scaled to {time_limit}" if time_limit else "")
    print(
        f"\n== 3/4 CNN from scratch ({scratch.image_size[0]} px, {plan}; the pretrained model "
        f"ran {budget})"
    )
    scratch.fit(
        split.train,
        split.val,
        time_budget=replayed(plans, "cnn_from_scratch", args) or time_limit,
    )
    calibrate(args, scratch, split, "cnn_from_scratch")
    scratch.save(work / "cnn_from_scratch.keras")

    print("\n== 4/4 the honest comparison on the test set")
    report = (
        ModelComparator(split.test, baseline_labels=split.train.labels, seed=args.seed)
        .add(name, tuner)
        .add("cnn_from_scratch", scratch)
        .run()
    )
    for r in report.rows:
        if r.kind == "baseline":
            continue
        print(f"\n{r.name}\n{r.classification_report}")
    print("Warnings:" if report.warnings else "No warnings.")
    for w in report.warnings:
        print(f"- {w}")
    verdict = getattr(report, "verdict", None)
    if verdict:
        print(f"\nVerdict: {verdict}")
    report.save(work / "report")
    if args.cv:
        cross_validate_both(args, split, work, time_limit, makers)
    wall = time.perf_counter() - t_start
    (work / "run.json").write_text(
        json.dumps(
            {
                "command": shlex.join([sys.executable, *sys.argv]),
                "versions": versions(),
                "wall_time_s": round(wall, 1),
                "time_budget": time_limit,
                "cv_folds": args.cv,
                # the head's features, and with --pooling auto why
                "pooling": {
                    "asked": args.pooling,
                    "used": used,
                    "probe_balanced_accuracy": choice.scores if choice else None,
                    "choice_s": round(choice.seconds, 1) if choice else None,
                },
                # FineTuner.calibrate on the val part (None: --no-calibrate)
                "temperature": {name: tuner.temperature, "cnn_from_scratch": scratch.temperature},
                "train_time_s": {
                    name: tuner.train_time_s,
                    "cnn_from_scratch": scratch.train_time_s,
                },
                # what --replay reads: the epochs each time-budgeted fit planned and ran
                "budget_plans": {
                    name: tuner.budget_plan,
                    "cnn_from_scratch": scratch.budget_plan,
                },
            },
            indent=2,
        )
    )
    print(f"\nreport: {work / 'report' / 'report.html'} (also report.md, report.json, PNGs)")
    print(f"models, split manifest and run.json (command, versions): {work}")
    print(f"wall time: {wall / 60:.1f} min")
    return 0


def recipe_makers(args: argparse.Namespace, split, profile: dict, size: int, name: str) -> dict:
    """Both recipes as functions that make a new, untrained model: the scratch CNN's fit and
    each cross-validation fold call them (with pooling auto, each fold chooses on its own
    validation images)."""
    from tlkit import FineTuner

    def make_scratch() -> FineTuner:
        return FineTuner.scratch_cnn(
            class_names=split.class_names,
            image_size=args.image_size or profile["scratch_size"],
            epochs=profile["scratch"] if args.profile != "smoke" else 2,
            seed=args.seed,
            augment=augmentation(profile["scratch_aug"], args.seed),
            class_weight="sqrt",
            verbose=2 if args.profile != "smoke" else 0,
        )

    return {
        name: lambda: FineTuner(name, **pretrained_settings(args, split, profile, size)),
        "cnn_from_scratch": make_scratch,
    }


def cross_validate_both(args, split, work: Path, time_limit, makers: dict) -> None:
    """K-fold cross-validation of both recipes on all the images, compared on the pooled predictions."""
    from tlkit.evaluate import compare_cv, cross_validate

    print(
        f"\n== cross-validation: {args.cv} leak-free folds over all {len(split)} images "
        "(every image predicted once, by a model that never saw it)"
    )
    fit_kwargs = {"time_budget": time_limit} if time_limit else None
    verbose = args.profile != "smoke"
    results = {}
    for name, make in makers.items():
        results[name] = cross_validate(
            make, split, folds=args.cv, seed=args.seed, fit_kwargs=fit_kwargs, verbose=verbose
        )
    report = compare_cv(results, seed=args.seed)
    print("Warnings:" if report.warnings else "No warnings.")
    for w in report.warnings:
        print(f"- {w}")
    print(f"\nVerdict (cross-validation): {report.verdict}")
    report.save(work / "cv_report")
    print(f"cross-validation report: {work / 'cv_report' / 'report.html'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tlkit.errors import TlkitError

    try:
        return run(args)
    except (Failure, TlkitError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
