"""Benchmark: does ``tlkit.audit`` find edited copies of real photos, and what else does it report?

Copies a seeded sample of real photos (default: the ants-vs-bees ``train/``
folder, ``../shared/data/hymenoptera/train`` next to the repository) into a
temporary folder-per-class tree and plants 12 edited copies of 12 distinct
originals, each in its original's class folder under a new name, 3 of each
kind:

* ``resized``: 50-70% of the width and height (bilinear);
* ``jpeg``: re-encoded at JPEG quality 30-50;
* ``crop``: 6% cut off each of the four sides;
* ``grey``: greyscale (stored as RGB).

Then runs ``audit(folder, label_issues=False, ...)`` twice on the same tree:

a. **hashes only** (identical bytes and pHash; ``feature_duplicates=False``);
b. **hashes + features** (centred cosine of pooled efficientnet_lite0 features,
   ImageNet weights, offline; ``feature_duplicates=True`` at
   ``--threshold``, default :data:`tlkit.audit.DEFAULT_FEATURE_THRESHOLD`).

For each it prints how many planted pairs were found per kind, the **unplanted
pairs reported** with both file names (on a real photo set some of them are
true duplicates: look at them before calling them false alarms) and the
precision, planted pairs found / all pairs reported. It also prints the
similarity of every planted pair and of the closest unplanted pairs, and a
threshold sweep, to choose the threshold on one photo set (``train/``) and then
report it on another (``val/``, disjoint photos): see docs/guide/audit.rst.

Usage::

    python benchmarks/audit_copies.py                                  # train/, seed 0
    python benchmarks/audit_copies.py --data ../shared/data/hymenoptera/val
    python benchmarks/audit_copies.py --threshold 0.8 --photos 60      # quicker

About a minute on 2 CPU cores at the defaults (120 photos + 12 copies, 160 px).
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tlkit.audit import DEFAULT_FEATURE_THRESHOLD, audit
from tlkit.audit._images import features_of
from tlkit.data import cosine_pairs, perceptual_hashes

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera" / "train"
KINDS = ("resized", "jpeg", "crop", "grey")
SUFFIXES = {".jpg", ".jpeg", ".png"}


def edit(im: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, str, int]:
    """An edited copy of ``im``, a description of the edit, and the JPEG quality to save at."""
    w, h = im.size
    if kind == "resized":
        f = float(rng.uniform(0.5, 0.7))
        return im.resize((round(w * f), round(h * f)), Image.BILINEAR), f"{f:.0%} size", 90
    if kind == "jpeg":
        q = int(rng.integers(30, 51))
        return im, f"quality {q}", q
    if kind == "crop":
        dx, dy = round(w * 0.06), round(h * 0.06)
        return im.crop((dx, dy, w - dx, h - dy)), "6% off each side", 90
    if kind == "grey":
        return ImageOps.grayscale(im).convert("RGB"), "greyscale", 90
    raise ValueError(kind)


def plant(data: Path, dest: Path, photos: int, seed: int) -> list[tuple[str, str, str, str]]:
    """Copy a sample of ``photos`` files and plant 12 edited copies; ``(orig, copy, kind, how)``."""
    rng = np.random.default_rng(seed)
    files = sorted(p for p in data.glob("*/*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if len(files) < 12:
        raise SystemExit(f"{data}: needs at least 12 photos in class folders, found {len(files)}")
    sample = [files[k] for k in sorted(rng.choice(len(files), min(photos, len(files)), False))]
    for p in sample:
        (dest / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest / p.parent.name / p.name)
    originals = [sample[k] for k in rng.choice(len(sample), 3 * len(KINDS), replace=False)]
    planted = []
    for k, src in enumerate(originals):
        kind = KINDS[k // 3]
        with Image.open(src) as im:
            out, how, quality = edit(ImageOps.exif_transpose(im).convert("RGB"), kind, rng)
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=quality)
        rel = f"{src.parent.name}/planted_{k:02d}.jpg"
        (dest / rel).write_bytes(buf.getvalue())
        planted.append((f"{src.parent.name}/{src.name}", rel, kind, how))
    return planted


def score(report, planted, title: str, seconds: float) -> set[frozenset[str]]:
    """Print planted pairs found per kind, the unplanted pairs reported, and the precision."""
    want = {frozenset((a, b)): kind for a, b, kind, _ in planted}
    found = {frozenset((p.path_a, p.path_b)): p for p in report.near_duplicates}
    hits = [k for k in found if k in want]
    print(f"\n{title}  ({seconds:.1f} s)")
    print(f"  methods: {report.settings.get('duplicate_methods', '(not recorded)')}")
    for kind in KINDS:
        n = sum(1 for k in hits if want[k] == kind)
        print(f"  {kind:8s} {n} / 3 planted pairs found")
    print(f"  planted found: {len(hits)} / {len(want)}")
    extra = [p for k, p in found.items() if k not in want]
    print(f"  unplanted pairs reported: {len(extra)}")
    for p in sorted(extra, key=lambda p: (p.method, p.distance)):
        print(f"    {p.path_a}  {p.path_b}  {p.method} distance {p.distance:.3f}")
    if found:
        print(
            f"  precision (planted found / all reported): {len(hits)}/{len(found)} = "
            f"{len(hits) / len(found):.2f}"
        )
    return set(found)


def measure(root: Path, planted, size: int, backbone: str, threshold: float) -> None:
    """Similarity of the planted pairs and of the closest unplanted pairs; a threshold sweep."""
    rels = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*"))
    idx = {r: k for k, r in enumerate(rels)}
    paths = [str(root / r) for r in rels]
    feats, _, ok, _ = features_of(paths, None, backbone, "imagenet", size, 32, None)
    i, j, sim = cosine_pairs(feats, -1.0)  # every pair, centred as the audit does
    hashes, _ = perceptual_hashes(paths)
    dist = np.bitwise_count(hashes[i] ^ hashes[j]).sum(axis=1)
    pair = {
        (int(a), int(b)): (float(s), int(d)) for a, b, s, d in zip(i, j, sim, dist, strict=True)
    }
    pl = {}
    for a, b, kind, how in planted:
        x, y = sorted((idx[a], idx[b]))
        pl[(x, y)] = (kind, how)
    print(f"\nfeature similarity (centred cosine, {backbone} at {size} px) and pHash distance")
    print("  planted pairs:")
    for (x, y), (kind, how) in sorted(pl.items(), key=lambda kv: pair[kv[0]][0]):
        s, d = pair[(x, y)]
        print(f"    {kind:8s} {how:18s} cosine {s:.3f}  pHash {d:3d}  {rels[y]} <- {rels[x]}")
    others = sorted((v[0], k) for k, v in pair.items() if k not in pl)[::-1]
    print(f"  closest unplanted pairs (of {len(others)}):")
    for s, (x, y) in others[:8]:
        print(f"    cosine {s:.3f}  pHash {pair[(x, y)][1]:3d}  {rels[x]}  {rels[y]}")
    close_hash = sorted((v[1], k) for k, v in pair.items() if k not in pl)
    print(
        f"  smallest unplanted pHash distance: {close_hash[0][0]} "
        f"({rels[close_hash[0][1][0]]}, {rels[close_hash[0][1][1]]})"
    )
    print("  sweep (pHash <= 40 or cosine >= t): planted found / unplanted reported")
    for t in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6):
        hit = sum(1 for k in pl if pair[k][0] >= t or pair[k][1] <= 40)
        fa = sum(1 for k, (s, d) in pair.items() if k not in pl and (s >= t or d <= 40))
        mark = "  <- --threshold" if abs(t - threshold) < 1e-9 else ""
        print(f"    t = {t:.2f}: {hit:2d} / {len(pl)} planted, {fa} unplanted{mark}")
    if not ok.all():
        print(f"  ({int((~ok).sum())} file(s) could not be decoded)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of class folders")
    ap.add_argument("--photos", type=int, default=120, help="photos sampled (default 120)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample and the edits")
    ap.add_argument("--size", type=int, default=160, help="feature image size (default 160)")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--threshold", type=float, default=DEFAULT_FEATURE_THRESHOLD)
    ap.add_argument("--no-measure", action="store_true", help="skip the similarity table")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        planted = plant(args.data, root, args.photos, args.seed)
        n = sum(1 for _ in root.glob("*/*"))
        print(
            f"{args.data}: {n - len(planted)} photos (seed {args.seed}) + {len(planted)} "
            f"planted copies, {args.backbone} at {args.size} px, threshold {args.threshold}"
        )
        for a, b, kind, how in planted:
            print(f"  {b} = {kind} ({how}) of {a}")
        t0 = time.perf_counter()
        ra = audit(root, label_issues=False, backbone=None, feature_duplicates=False)
        score(ra, planted, "a. hashes only", time.perf_counter() - t0)
        t0 = time.perf_counter()
        rb = audit(
            root,
            label_issues=False,
            backbone=args.backbone,
            image_size=args.size,
            feature_duplicates=True,
            feature_threshold=args.threshold,
        )
        score(
            rb,
            planted,
            f"b. hashes + features (cosine >= {args.threshold})",
            time.perf_counter() - t0,
        )
        if not args.no_measure:
            measure(root, planted, args.size, args.backbone, args.threshold)


if __name__ == "__main__":
    main()
