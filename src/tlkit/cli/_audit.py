"""``tlkit audit FOLDER_OR_SPLIT.json -o DIR``: near-duplicate leaks, label errors, and more."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlkit.cli._common import UsageError, add_command, add_image_size, log
from tlkit.cli._model import add_manifest_args


def add_parser(sub: Any) -> None:
    from tlkit.data import DEFAULT_HASH_THRESHOLD

    p = add_command(
        sub,
        "audit",
        help="check a dataset or split for near-duplicate leaks and likely label errors",
        description="Audit a split manifest (from `tlkit split`) or a dataset folder (split "
        "with the default settings first): near-duplicates across and within train/val/test, "
        "likely label errors (cleanlab on a cross-validated linear probe of backbone "
        "features), class imbalance, small, conflicting and unreadable files. Near-duplicates "
        "are found by identical bytes, perceptual hashes and, with a backbone, cosine "
        "similarity of its features (crops). Writes audit.html (self-contained, with "
        "thumbnails), audit.md and audit.json.",
        examples=[
            "tlkit audit photos.split.json -o audit/",
            "tlkit audit photos/ --no-feature-duplicates --no-label-issues -o audit/",
        ],
    )
    p.add_argument("source", type=Path, help="split manifest (.json) or dataset folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder for the report")
    p.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        help="registry backbone for features (default: efficientnet_lite0, offline weights)",
    )
    add_image_size(p, "image size in pixels for the features (default: the backbone's)")
    p.add_argument(
        "--hash-threshold",
        type=int,
        default=DEFAULT_HASH_THRESHOLD,
        help=f"largest pHash distance of 256 bits (default {DEFAULT_HASH_THRESHOLD})",
    )
    dup = p.add_mutually_exclusive_group()
    dup.add_argument(
        "--feature-duplicates",
        dest="feature_duplicates",
        action="store_const",
        const=True,
        default="auto",
        help="compare backbone features for near-duplicates (crops, edits); the default "
        "whenever a backbone runs",
    )
    dup.add_argument(
        "--no-feature-duplicates",
        dest="feature_duplicates",
        action="store_const",
        const=False,
        help="identical bytes and perceptual hashes only (no backbone with --no-label-issues)",
    )
    p.add_argument("--feature-threshold", type=float, default=None, help="centred cosine")
    p.add_argument(
        "--no-near-duplicates",
        action="store_true",
        help="do not look for near-duplicates (default: find and report them)",
    )
    p.add_argument("--no-label-issues", action="store_true", help="skip the label-error probe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--allow-small-classes",
        action="store_true",
        help="when splitting a folder, keep a class too small for every part (with a warning)",
    )
    add_manifest_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tlkit.audit import DEFAULT_FEATURE_THRESHOLD, audit

    needs_backbone = not args.no_label_issues or (
        not args.no_near_duplicates and args.feature_duplicates is not False
    )
    source: Any = args.source
    if source.is_dir():
        if args.root is not None:
            raise UsageError("--root applies to a split manifest, not to a dataset folder")
    elif source.exists():  # as audit() loads it (missing files reported), with --root/--on-edit
        from tlkit.cli._model import load_split

        source = load_split(source, skip_missing=True, root=args.root, on_edit=args.on_edit)
    report = audit(
        source,
        near_duplicates=None if args.no_near_duplicates else "report",
        label_issues=not args.no_label_issues,
        backbone=args.backbone if needs_backbone else None,
        image_size=args.image_size,
        feature_duplicates=args.feature_duplicates,
        hash_threshold=args.hash_threshold,
        feature_threshold=(
            DEFAULT_FEATURE_THRESHOLD if args.feature_threshold is None else args.feature_threshold
        ),
        seed=args.seed,
        allow_small_classes=args.allow_small_classes,
    )
    print(report.summary())
    files = report.save(args.out)
    log(f"report written to {files[0]}")
    return 0
