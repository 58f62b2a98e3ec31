"""``tlkit predict MODEL.keras FILES_OR_DIRS...``: label and probability per image file."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._escape import csv_cell
from tlkit.cli._common import UsageError, add_command, log
from tlkit.errors import ModelFileError


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "predict",
        help="predict the class of image files",
        description="Predict each image file (folders are searched recursively; hidden files "
        "are left out and counted). Results go to stdout, one row per file, in the order "
        "given (folders sorted): CSV with columns path,label,probability (then label_2, "
        "probability_2, ... with --top-k) and error, or JSON (a list of objects). In the CSV a "
        "text cell that starts with =, +, -, @, a tab or a carriage return gets a leading ' so "
        "that a spreadsheet shows it instead of running it as a formula. A file that "
        "cannot be read is reported in its row and the others are still predicted; the exit "
        "status is then 1.",
        examples=[
            "tlkit predict model.keras photos/new/ > predictions.csv",
            "tlkit predict model.keras a.jpg b.png --format json --top-k 3",
        ],
    )
    p.add_argument("model", type=Path, help="the .keras model file")
    p.add_argument("inputs", type=Path, nargs="+", metavar="FILE_OR_DIR", help="images or folders")
    p.add_argument("--format", default="csv", choices=["csv", "json"], help="(default csv)")
    p.add_argument("--top-k", type=int, default=1, help="classes per file (default 1)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    p.set_defaults(run=run)


def _collect(inputs: list[Path]) -> tuple[list[Path], int]:
    files: list[Path] = []
    hidden = 0
    for item in inputs:
        if item.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    if name.startswith("."):
                        hidden += 1
                    else:
                        found.append(Path(dirpath) / name)
            if not found:
                raise FileNotFoundError(f"folder {str(item)!r} holds no files")
            files.extend(sorted(found))
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"{str(item)!r} does not exist (no such file or folder)")
    return files, hidden


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    files, hidden = _collect(args.inputs)
    if hidden:
        log(f"{hidden} hidden file(s) left out")
    from tlkit.cli._model import load_model
    from tlkit.data import inspect_file

    tuner = load_model(args.model)
    _check_class_names(tuner.class_names, args.model)
    k = min(args.top_k, len(tuner.class_names))
    errors: dict[int, str] = {}
    good: list[int] = []
    for i, f in enumerate(files):
        try:
            inspect_file(f, verify=True)
            good.append(i)
        except ValueError as exc:
            errors[i] = str(exc)
    probs = np.zeros((0, len(tuner.class_names)))
    if good:
        log(f"predicting {len(good)} image(s)")
        _, probs = tuner.predict([str(files[i]) for i in good], batch_size=args.batch_size)
        probs = np.asarray(probs, dtype=np.float64)
    by_file = dict(zip(good, probs, strict=True))
    rows = []
    for i, f in enumerate(files):
        row: dict[str, Any] = {"path": str(f)}
        if i in by_file:
            top = np.argsort(-by_file[i], kind="stable")[:k]
            ranked = [(tuner.class_names[j], round(float(by_file[i][j]), 6)) for j in top]
            row["label"], row["probability"] = ranked[0]
            if k > 1:
                row["top_k"] = [{"label": c, "probability": p} for c, p in ranked]
            row["error"] = None
        else:
            row.update(label=None, probability=None, error=errors[i])
        rows.append(row)
    _write(rows, args.format, k)
    if errors:
        first = next(iter(errors))
        log(
            f"{len(errors)} of {len(files)} file(s) could not be read, e.g. {files[first]}: "
            f"{errors[first]}"
        )
        return 1
    return 0


def _check_class_names(names: list[str], model: Path) -> None:
    """Refuse a model with an empty class name: its rows would look like failed predictions.

    tlkit train names classes after their folders, which cannot have empty names, so such a
    model was written by other code or edited.
    """
    empty = [i for i, name in enumerate(names) if name == ""]
    if empty:
        raise ModelFileError(
            f"{str(model)!r}: class {empty[0]} of {len(names)} has an empty name, so its "
            "predictions could not be told from failed ones; train the model again with named "
            "classes (tlkit train names them after the class folders)"
        )


def _write(rows: list[dict[str, Any]], fmt: str, k: int) -> None:
    if fmt == "json":
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    head = ["path", "label", "probability"]
    for r in range(2, k + 1):
        head += [f"label_{r}", f"probability_{r}"]
    head.append("error")
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(head)
    for row in rows:
        cells: list[Any] = [csv_cell(row["path"])]
        ranked = row.get("top_k") or (
            [{"label": row["label"], "probability": row["probability"]}] if row["label"] else []
        )
        for r in range(k):
            if r < len(ranked):
                cells += [csv_cell(ranked[r]["label"]), f"{ranked[r]['probability']:.6f}"]
            else:
                cells += ["", ""]
        cells.append(csv_cell(row["error"] or ""))
        writer.writerow(cells)
