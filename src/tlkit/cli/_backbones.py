"""``tlkit backbones [PATTERN]``: list registered backbones without building them."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "backbones",
        help="list the registered backbones",
        description="List registered backbones: input size, preprocessing, weights.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'mobilenet*'")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="only backbones whose ImageNet weights load offline",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tlkit.backbones import get_config, list_backbones

    names = list_backbones(args.pattern, pretrained=True if args.pretrained else None)
    if not names:
        print(f"no backbone matches {args.pattern!r}; try 'tlkit backbones' for all")
        return 1
    head = f"{'name':<20} {'input':>9}  {'preprocessing':<14} {'offline weights':<15}"
    print(head)
    print("-" * len(head))
    for name in names:
        cfg = get_config(name)
        h, w = cfg.default_input_size
        offline = "yes" if cfg.offline_weights else "no"
        print(f"{name:<20} {f'{h}x{w}':>9}  {cfg.preprocessing:<14} {offline:<15}")
    return 0
