"""``tlkit export MODEL.keras --format ...``: export, then check the file against the model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, log
from tlkit.cli._model import add_manifest_args

#: Library argument values that are a flag of this command (see tlkit.cli._common.as_flags).
FLAG_VALUES = {("on_mismatch", "skip"): "--skip-missing"}


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "export",
        help="export a model to LiteRT, ONNX or a SavedModel and check the file",
        description="Export MODEL (a .keras file saved by tlkit train or FineTuner.save) with "
        "Keras's own exporter, write a labels file beside it, then run the exported file in "
        "its own runtime on the test images of a split and compare it with the Keras model. "
        "A float export that agrees on fewer than 98%% of the images fails (exit 1). "
        "The report (JSON) goes to stdout.",
        examples=[
            "tlkit export model.keras --format litert --check photos.split.json",
            "tlkit export model.keras --format litert --quantize int8 "
            "--representative photos.split.json -o model_int8.tflite",
            "tlkit export model.keras --format onnx --check photos.split.json",
        ],
    )
    p.add_argument("model", type=Path, help="the .keras model file")
    p.add_argument(
        "--format",
        default="litert",
        choices=["litert", "onnx", "saved_model"],
        help="(default litert)",
    )
    p.add_argument(
        "--quantize",
        default=None,
        choices=["dynamic", "float16", "int8"],
        help="LiteRT only: int8 weights (dynamic), float16 weights, or int8 throughout (int8)",
    )
    p.add_argument(
        "--representative",
        type=Path,
        default=None,
        metavar="SPLIT.json",
        help="split manifest whose train images calibrate --quantize int8",
    )
    p.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="SPLIT.json",
        help="split manifest whose test images check the export (default: --representative's)",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        default=None,
        help="top-1 agreement required, 0..1 (default 0.98 for float formats, none for "
        "dynamic and int8)",
    )
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="output path (default: beside MODEL)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous tlkit export at the output path (anything else there is "
        "refused, and nothing is replaced without this flag)",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out manifest files that are missing or changed instead of failing",
    )
    add_manifest_args(p)
    p.set_defaults(run=run)


_SUFFIX = {"litert": ".tflite", "onnx": ".onnx", "saved_model": "_saved_model"}


def run(args: argparse.Namespace) -> int:
    if args.quantize and args.format != "litert":
        raise UsageError(f"--quantize works with --format litert only, not {args.format}")
    if args.quantize == "int8" and args.representative is None:
        raise UsageError(
            "--quantize int8 needs calibration images: pass --representative SPLIT.json "
            "(its train part is used)"
        )
    if args.min_agreement is not None and not 0 <= args.min_agreement <= 1:
        raise UsageError(f"--min-agreement must be in 0..1, got {args.min_agreement}")
    from tlkit.cli._model import load_model, load_split, manifest_options
    from tlkit.export import export

    check_path = args.check or args.representative
    rep_split = (
        load_split(args.representative, **manifest_options(args)) if args.representative else None
    )
    check_split = (
        rep_split
        if check_path is not None and check_path == args.representative
        else (load_split(check_path, **manifest_options(args)) if check_path else None)
    )
    tuner = load_model(args.model)
    out = args.out
    if out is None:
        stem = args.model.with_suffix("").name + (f"_{args.quantize}" if args.quantize else "")
        out = args.model.with_name(stem + _SUFFIX[args.format])
    if check_split is None:
        log("no --check SPLIT.json: the export is not checked against the model")
    log(
        f"exporting {args.model} as {args.format}"
        + (f" ({args.quantize})" if args.quantize else "")
    )
    report = export(
        tuner,
        out,
        format=args.format,
        quantize=args.quantize,
        representative=None if rep_split is None else rep_split.train,
        check_data=None if check_split is None else check_split.test,
        min_agreement=args.min_agreement,
        overwrite=args.overwrite,
    )
    log(report.summary())
    print(json.dumps(report.to_dict(), indent=2))
    return 0
