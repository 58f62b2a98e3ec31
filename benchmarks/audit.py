"""Benchmark: the near-duplicate hash pass of ``tlkit.audit``.

Measures in one run:

1. **Hashing real image files**: ``perceptual_hashes`` (pHash, 256 bits, threads)
   on ``--images`` generated JPEG files of ``--size`` pixels, in images/s, against
   the reference: a single-threaded loop calling ``imagehash.phash`` on each file.
2. **The index**: ``hamming_pairs`` (multi-index hashing) on ``--hashes`` 256-bit
   hashes at the default threshold, counting full-hash comparisons against the
   naive all-pairs loop (n(n-1)/2), and its wall time. The hashes are
   **synthetic** (uniform random bits with planted near copies), so the index
   part scales to 100,000 without writing 100,000 files; real photo hashes are
   less uniform, so expect more candidates there (ELPV, 2,624 look-alike solar
   cells: see docs/guide/audit.rst).

Above 256 px the hash pass decodes JPEGs at a reduced DCT scale, which moves the
pHash of some generated stripe images (whose energy sits in a few DCT
coefficients) by tens of bits, as a plain resize of them does too.

Usage::

    python benchmarks/audit.py                       # 2,000 files, 100,000 hashes
    python benchmarks/audit.py --images 500 --hashes 20000   # quicker
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from tlkit.data import (
    DEFAULT_HASH_THRESHOLD,
    hamming_pairs,
    perceptual_hash,
    perceptual_hashes,
)
from tlkit.datasets import make_synthetic_dataset


def reference_loop(paths: list[str]) -> np.ndarray:
    """What a user would write: open each file and hash it, one at a time."""
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(perceptual_hash(im.convert("RGB")))
    return np.stack(out)


def synthetic_hashes(n: int, planted: int, flips: int, seed: int) -> np.ndarray:
    """``n`` random 256-bit hashes; ``planted`` of them near copies of others."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, size=(n, 4), dtype=np.int64).astype(np.uint64)
    h |= rng.integers(0, 2, size=(n, 4), dtype=np.int64).astype(np.uint64) << np.uint64(63)
    src = rng.choice(n, size=planted, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(n), src), size=planted, replace=False)
    for s, d in zip(src, dst, strict=True):
        row = h[s].copy()
        for bit in rng.choice(256, size=int(rng.integers(0, flips + 1)), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
        h[d] = row
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000, help="real files to hash")
    ap.add_argument("--size", type=int, default=256, help="pixel size of the files")
    ap.add_argument("--hashes", type=int, default=100_000, help="synthetic hashes to index")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        per_class = max(1, args.images // 4)
        root = make_synthetic_dataset(
            tmp, [per_class] * 4, image_size=args.size, seed=args.seed, formats=("jpeg",)
        )
        paths = sorted(str(p) for p in Path(root).rglob("*.jp*g"))
        t0 = time.perf_counter()
        ref = reference_loop(paths)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        got, errors = perceptual_hashes(paths)
        t_ours = time.perf_counter() - t0
    diff = np.bitwise_count(ref ^ got).sum(axis=1)
    same = float((diff <= 8).mean())
    print(
        f"1. hashing {len(paths)} real JPEG files of {args.size}x{args.size} px (pHash, 256 bits)"
    )
    print(
        f"   reference (PIL full decode + imagehash, 1 thread): {len(paths) / t_ref:8.0f} images/s"
    )
    print(
        f"   perceptual_hashes (draft decode, threads):         {len(paths) / t_ours:8.0f} images/s"
    )
    print(f"   ratio: {t_ref / t_ours:.2f}x; unreadable: {sum(e is not None for e in errors)}; ")
    print(
        f"   hashes within 8 bits of the reference's: {same:.1%} (largest difference {diff.max()} bits)"
    )

    n = args.hashes
    planted = n // 100
    h = synthetic_hashes(n, planted, DEFAULT_HASH_THRESHOLD, args.seed)
    t0 = time.perf_counter()
    res = hamming_pairs(h, DEFAULT_HASH_THRESHOLD)
    t_idx = time.perf_counter() - t0
    print(f"2. index: {n} SYNTHETIC 256-bit hashes, {planted} planted near copies, ")
    print(f"   radius {DEFAULT_HASH_THRESHOLD} bits (multi-index hashing, 16 chunks of 16 bits)")
    print(f"   comparisons: {res.comparisons:,} vs naive all-pairs {res.naive_comparisons:,}")
    print(f"   ratio: {res.naive_comparisons / max(1, res.comparisons):.1f}x fewer comparisons")
    print(f"   pairs found: {len(res.i)} (planted: {planted}); wall time {t_idx:.1f} s")


if __name__ == "__main__":
    main()
