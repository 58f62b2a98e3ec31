"""``tlkit compare SPLIT.json A.keras B.keras ... -o report/``: compare models on one test set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, log
from tlkit.cli._model import add_manifest_args

#: Library argument values that are a flag of this command (see tlkit.cli._common.as_flags).
FLAG_VALUES = {("on_mismatch", "skip"): "--skip-missing"}


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "compare",
        help="compare models on a split's test set: intervals, significance, cost",
        description="Predict the test images of SPLIT with every model, then compare them "
        "against a majority-class baseline (fitted on the training labels) with bootstrap "
        "intervals, McNemar tests and cost. Writes report.html, report.md, report.json and "
        "plots into -o; the JSON report (without per-image predictions) goes to stdout, "
        "the warnings to stderr.",
        examples=[
            "tlkit compare photos.split.json mobilenet.keras effnet.keras -o report/",
            "tlkit compare photos.split.json model.keras --exported model_int8.tflite -o report/",
        ],
    )
    p.add_argument("split", type=Path, metavar="SPLIT.json", help="split manifest")
    p.add_argument("models", type=Path, nargs="*", metavar="MODEL.keras", help="models to compare")
    p.add_argument(
        "--exported",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="exported .tflite/.onnx files (or SavedModel folders) as rows of their own",
    )
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="load --exported files that can run code or read files: SavedModel folders "
        "(their graph runs any TensorFlow op), LiteRT files with custom or select-TF ops, "
        "ONNX files with external data. Only for models from a source you trust",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="report folder (created)")
    p.add_argument(
        "--part",
        default="test",
        choices=["test", "val"],
        help="images to compare on (default test)",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out manifest files that are missing or changed instead of failing",
    )
    add_manifest_args(p)
    p.set_defaults(run=run)


def _row_name(path: Path, taken: set[str], *, exported: bool = False) -> str:
    name = path.name if path.is_dir() or exported else path.stem
    base, i = name, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def run(args: argparse.Namespace) -> int:
    if not args.models and not args.exported:
        raise UsageError("give at least one MODEL.keras or --exported FILE to compare")
    if args.n_boot < 0:
        raise UsageError(f"--n-boot must be >= 0, got {args.n_boot}")
    for f in [*args.models, *args.exported]:
        if not f.exists():
            raise FileNotFoundError(f"{str(f)!r} does not exist")
    from tlkit.cli._model import load_model, load_split, manifest_options
    from tlkit.compare import ModelComparator
    from tlkit.export import ExportedModel

    split = load_split(args.split, **manifest_options(args))
    part = getattr(split, args.part)
    if len(part) == 0:
        raise UsageError(
            f"the {args.part} part of {args.split} is empty; use --part val or re-split"
        )
    comparator = ModelComparator(
        part, n_boot=args.n_boot, seed=args.seed, baseline_labels=split.train.labels
    )
    # Exported files are opened first, so one refused (e.g. untrusted) fails before predicting.
    exported = [ExportedModel(path, trust=args.trust_model) for path in args.exported]
    taken: set[str] = set()
    for path in args.models:
        tuner = load_model(path)
        name = _row_name(path, taken)
        log(f"predicting {len(part)} {args.part} images with {name}")
        comparator.add(name, tuner)
    for path, model in zip(args.exported, exported, strict=True):
        name = _row_name(path, taken, exported=True)
        log(f"predicting {len(part)} {args.part} images with {name} (exported)")
        comparator.add_exported(name, model)
    report = comparator.run()
    written = report.save(args.out)
    for w in report.warnings:
        log(f"warning: {w}")
    log(f"report written to {args.out} ({len(written)} files)")
    print(report.to_json(include_predictions=False))
    return 0
