"""``tlkit split ROOT``: split a folder-per-class dataset and write a manifest."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tlkit.cli._common import add_command, log


def _share(text: str) -> float | int:
    """Parse "0.15" as a fraction and "20" as an image count."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "split",
        help="split a folder-per-class dataset three ways and save a manifest",
        description="Stratified, seeded, leak-free train/val/test split of ROOT "
        "(one sub-folder per class). The summary goes to stdout, the manifest to -o.",
        examples=[
            "tlkit split photos/ --val 0.15 --test 0.15 --seed 0 -o photos.split.json",
            "tlkit split trashnet/ --on-conflict drop --groups '^(.*)_\\d+' -o trashnet.json",
        ],
    )
    p.add_argument("root", type=Path, help="dataset folder, one sub-folder per class")
    p.add_argument("--val", type=_share, default=0.15, help="fraction or count (default 0.15)")
    p.add_argument("--test", type=_share, default=0.15, help="fraction or count (default 0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the assignment (default 0)")
    p.add_argument("--groups", default=None, help="regex whose match keeps files together")
    p.add_argument(
        "--on-conflict",
        default="error",
        choices=["error", "drop", "keep_first"],
        help="identical files under two classes (default: error)",
    )
    p.add_argument("--no-verify", action="store_true", help="do not decode images, headers only")
    p.add_argument(
        "--allow-small-classes",
        action="store_true",
        help="let a class too small for every split miss from some",
    )
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="manifest path (default: ROOT.split.json)"
    )
    p.add_argument("--show-skipped", action="store_true", help="list every skipped file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tlkit.data import DatasetSplitter

    splitter = DatasetSplitter(
        val=args.val,
        test=args.test,
        seed=args.seed,
        groups=args.groups,
        on_conflict=args.on_conflict,
        verify=not args.no_verify,
        allow_small_classes=args.allow_small_classes,
    )
    split = splitter.split(args.root)
    print(split.summary())
    if args.show_skipped:
        for s in split.skipped:
            print(f"skipped {s.path}: {s.reason}")
    out = args.out or args.root.with_name(args.root.name.rstrip("/") + ".split.json")
    split.save(out)
    log(f"manifest written to {out}")
    home, data = os.path.realpath(out.parent), os.path.realpath(args.root)
    if os.path.commonpath([home, data]) != home:
        log(
            f"note: {str(args.root)!r} is not in the manifest's folder or below it, so commands "
            f"that read {str(out)!r} need --root {str(args.root)!r} (a manifest only reaches "
            "images below its own folder unless told)"
        )
    return 0
