"""Perceptual hashes and sub-quadratic near-duplicate search.

The hashes come from :mod:`imagehash` (pHash: the signs of the low-frequency
DCT coefficients of a grey, downscaled image). Pairs within a Hamming radius
are found by multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012): each
hash is cut into 16-bit chunks; two hashes within distance ``r`` agree within
``r // m`` bits on at least one of their ``m`` chunks (pigeonhole), so only
pairs that share a chunk up to that many flipped bits are ever compared.
Feature vectors are compared by blocked matrix products.

Why not a BK-tree: at the radius near-duplicates need (a sixth of the bits),
a BK-tree of 100,000 random 64-bit hashes (``pybktree``) compares each query
with about half the tree (measured: 46,000 distance calls per query at radius
8 of 64), which is nearly the all-pairs loop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from tlkit._files import open_image
from tlkit._validation import check_int, check_number
from tlkit.errors import InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "DEFAULT_HASH_SIZE",
    "DEFAULT_HASH_THRESHOLD",
    "MAX_PAIRS_PER_IMAGE",
    "HammingSearch",
    "cosine_pairs",
    "hamming_pairs",
    "perceptual_hash",
    "perceptual_hashes",
]

#: pHash side: 16 gives 256-bit hashes. 64-bit hashes (side 8) are too coarse for
#: homogeneous datasets: 24 pairs of distinct ELPV solar cells share one 64-bit pHash.
DEFAULT_HASH_SIZE = 16

#: Largest Hamming distance (of 256 bits) that counts as a near-duplicate. Measured
#: (docs/guide/audit.rst): planted copies resized to half size <= 12, grey copies 0,
#: JPEG quality 15 re-encodes <= 52 (95% <= 44); the closest pair of 300 distinct
#: generated textures is 92 apart.
DEFAULT_HASH_THRESHOLD = 40

_CHUNK_BITS = 16
_POP16 = np.zeros(1 << 16, dtype=np.int8)
for _bit in range(16):
    _POP16 += (np.arange(1 << 16) >> _bit & 1).astype(np.int8)
_MAX_PAIRS_PER_BLOCK = 4_000_000


def _popcount_rows(x: np.ndarray) -> np.ndarray:
    """Set bits per row of a 2-D uint64 array."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).sum(axis=1, dtype=np.int64)
    words = x.view(np.uint16).astype(np.int64)  # pragma: no cover - numpy < 2
    return _POP16[words].reshape(len(x), -1).sum(axis=1, dtype=np.int64)  # pragma: no cover


def perceptual_hash(image: Image.Image, hash_size: int = DEFAULT_HASH_SIZE) -> np.ndarray:
    """The pHash of one PIL image as ``hash_size**2 / 64`` uint64 words.

    Examples
    --------
    >>> from PIL import Image
    >>> perceptual_hash(Image.new("RGB", (32, 32), "white")).shape
    (4,)
    """
    try:
        import imagehash
    except ImportError:  # pragma: no cover - imagehash is in the dev extra
        raise MissingDependencyError(
            "perceptual hashes need the imagehash package: pip install 'tlkit[audit]'"
        ) from None
    if check_int("hash_size", hash_size, minimum=8) % 8:
        raise InvalidArgumentError(f"hash_size must be a multiple of 8 (>= 8), got {hash_size!r}")
    bits = imagehash.phash(image, hash_size=hash_size).hash.ravel()
    return np.packbits(bits).view(">u8").astype(np.uint64)


def _load_for_hash(path: str, hash_size: int) -> np.ndarray | str:
    from PIL import ImageOps

    try:
        with open_image(path) as im:
            side = hash_size * 16  # imagehash resizes to hash_size * 4; decode at 4x that
            im.draft("L", (side, side))  # JPEG: decode at a reduced DCT scale
            im = ImageOps.exif_transpose(im)
            return perceptual_hash(im, hash_size)
    except ImportError:
        raise
    except Exception as exc:  # any decoder failure is a per-file reason
        return f"cannot decode: {type(exc).__name__}: {exc}"


def perceptual_hashes(
    paths: Sequence[str | os.PathLike[str]],
    hash_size: int = DEFAULT_HASH_SIZE,
    workers: int | None = None,
) -> tuple[np.ndarray, list[str | None]]:
    """pHash many files (threads).

    Returns
    -------
    hashes : array of uint64, shape (n, hash_size**2 / 64)
        All-zero rows for files that could not be read.
    errors : list of str or None
        The reason per file, ``None`` for files hashed.
    """
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    words = hash_size * hash_size // 64
    out = np.zeros((len(paths), max(1, words)), dtype=np.uint64)
    errors: list[str | None] = [None] * len(paths)
    args = [os.fspath(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, r in enumerate(pool.map(lambda p: _load_for_hash(p, hash_size), args)):
            if isinstance(r, str):
                errors[i] = r
            else:
                out[i] = r
    return out, errors


@dataclass
class HammingSearch:
    """Result of :func:`hamming_pairs`: the pairs and what it cost."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray
    comparisons: int

    @property
    def naive_comparisons(self) -> int:
        """Comparisons of the all-pairs loop over the same hashes."""
        return self.n * (self.n - 1) // 2

    n: int = 0


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    masks = [0]
    for k in range(1, radius + 1):
        for pos in combinations(range(bits), k):
            masks.append(sum(1 << p for p in pos))
    return np.array(masks, dtype=np.uint64)


def hamming_pairs(hashes: np.ndarray, max_distance: int) -> HammingSearch:
    """Every pair ``i < j`` of rows within ``max_distance`` bits, by multi-index hashing.

    Parameters
    ----------
    hashes : array of uint64, shape (n, words)
        One hash per row.
    max_distance : int
        Largest Hamming distance reported.

    Returns
    -------
    HammingSearch
        Pairs sorted by (i, j), their distances, and the number of full-hash
        comparisons made (``naive_comparisons`` is the all-pairs count). A pair
        whose hashes agree on several chunks is compared once per chunk, so on
        data made of many identical hashes the count can exceed all pairs (by
        at most the number of chunks).

    Examples
    --------
    >>> h = np.array([[0], [1], [2**40 - 1]], dtype=np.uint64)
    >>> r = hamming_pairs(h, 2)
    >>> list(zip(r.i.tolist(), r.j.tolist(), r.distance.tolist()))
    [(0, 1, 1)]
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    if hashes.ndim != 2:
        raise InvalidArgumentError(f"hashes must be 2-D (n, words), got shape {hashes.shape}")
    check_number("max_distance", max_distance, low=0)
    n = len(hashes)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return HammingSearch(empty, empty, empty, 0, n)
    chunks = hashes.view(np.uint16).reshape(n, -1).astype(np.int64)  # (n, m)
    m = chunks.shape[1]
    per_chunk = max_distance // m
    if per_chunk > 3:  # so many probes that all pairs is cheaper
        return _all_pairs(hashes, max_distance)
    masks = _flip_masks(_CHUNK_BITS, per_chunk).astype(np.int64)
    found: list[np.ndarray] = []
    comparisons = 0
    rows = np.arange(n)
    for c in range(m):
        v = chunks[:, c]
        order = np.argsort(v, kind="stable")
        bucket_start = np.zeros((1 << _CHUNK_BITS) + 1, dtype=np.int64)
        np.cumsum(np.bincount(v, minlength=1 << _CHUNK_BITS), out=bucket_start[1:])
        for mask in masks:
            target = v ^ mask
            lo = bucket_start[target]
            counts = bucket_start[target + 1] - lo
            total = int(counts.sum())
            if total == 0:
                continue
            ends = np.cumsum(counts)
            start = 0
            while start < n:  # blocks of query rows, so memory stays bounded
                done = int(ends[start - 1]) if start else 0
                stop = int(np.searchsorted(ends, done + _MAX_PAIRS_PER_BLOCK, "right"))
                stop = min(max(stop, start + 1), n)
                cnt = counts[start:stop]
                qi = np.repeat(rows[start:stop], cnt)
                if len(qi):
                    offs = np.arange(len(qi)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                    qj = order[np.repeat(lo[start:stop], cnt) + offs]
                    keep = qi < qj
                    qi, qj = qi[keep], qj[keep]
                    comparisons += len(qi)
                    d = _popcount_rows(hashes[qi] ^ hashes[qj])
                    ok = d <= max_distance
                    if ok.any():
                        found.append(np.stack([qi[ok], qj[ok], d[ok]], axis=1))
                start = stop
    if not found:
        return HammingSearch(empty, empty, empty, comparisons, n)
    # a pair that shares several chunks is checked (and counted) once per chunk
    allp = np.unique(np.concatenate(found), axis=0)
    return HammingSearch(allp[:, 0], allp[:, 1], allp[:, 2], comparisons, n)


def _all_pairs(hashes: np.ndarray, max_distance: int) -> HammingSearch:
    n = len(hashes)
    out = []
    for a in range(n - 1):
        d = _popcount_rows(hashes[a + 1 :] ^ hashes[a])
        (k,) = np.nonzero(d <= max_distance)
        if len(k):
            out.append(np.stack([np.full(len(k), a), k + a + 1, d[k]], axis=1))
    if not out:
        e = np.zeros(0, dtype=np.int64)
        return HammingSearch(e, e, e, n * (n - 1) // 2, n)
    p = np.concatenate(out).astype(np.int64)
    return HammingSearch(p[:, 0], p[:, 1], p[:, 2], n * (n - 1) // 2, n)


#: Most near-duplicate pairs :func:`cosine_pairs` keeps per image (its most similar ones).
MAX_PAIRS_PER_IMAGE = 10


def cosine_pairs(
    features: np.ndarray,
    threshold: float,
    block: int = 1024,
    center: bool = True,
    max_per_image: int | None = MAX_PAIRS_PER_IMAGE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` whose (centred) cosine similarity is at least ``threshold``.

    Features are centred on their mean (so a dataset of look-alike images does
    not make every pair similar) and compared ``block`` rows at a time, so
    memory stays ``block x n``. Each image ``i`` keeps at most
    ``max_per_image`` pairs ``(i, j)``, its most similar ones (None: all), so a
    dataset of look-alike images gives at most ``n * max_per_image`` pairs
    instead of a number that grows with ``n ** 2``.

    Examples
    --------
    >>> f = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [-1.0, 0.2]])
    >>> i, j, s = cosine_pairs(f, 0.9, center=False)
    >>> list(zip(i.tolist(), j.tolist()))
    [(0, 1)]
    """
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2:
        raise InvalidArgumentError(f"features must be 2-D (n, dim), got shape {f.shape}")
    if center:
        f = f - f.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.maximum(norms, 1e-12)
    n = len(f)
    out_i, out_j, out_s = [], [], []
    for a in range(0, n, block):
        s = f[a : a + block] @ f.T
        rows = np.arange(len(s))
        s[np.arange(n)[None, :] <= (rows + a)[:, None]] = -np.inf  # only j > i
        if max_per_image is not None and n > max_per_image:
            top = np.argpartition(-s, max_per_image - 1, axis=1)[:, :max_per_image]
            capped = np.full_like(s, -np.inf)
            capped[rows[:, None], top] = s[rows[:, None], top]
            s = capped
        ii, jj = np.nonzero(s >= threshold)
        out_i.append(ii + a)
        out_j.append(jj)
        out_s.append(s[ii, jj])
    if not out_i:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0, dtype=np.float32)
    return (
        np.concatenate(out_i).astype(np.int64),
        np.concatenate(out_j).astype(np.int64),
        np.concatenate(out_s).astype(np.float32),
    )
