"""The split's assignment algorithm: per-class target counts, then whole groups placed to meet them.

:func:`apportion` rounds the per-class, per-split shares to integers with exact
row and column sums; :func:`assign_groups` places each leak-free group of
samples (see ``_grouping``) in one split, filling those targets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from tlkit.data._sample import Sample
from tlkit.errors import DatasetError

__all__ = ["SPLIT_NAMES", "apportion", "assign_groups", "split_targets"]

SPLIT_NAMES = ("train", "val", "test")


def apportion(counts: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Round ``counts[:, None] * fractions`` to integers, keeping every sum exact.

    Each cell is the floor or the ceiling of its exact share, each row sums to
    its count, and each column sums to its exact total rounded by largest
    remainder (controlled rounding, solved as a small max-flow).

    Parameters
    ----------
    counts : array of int, shape (C,)
        Items per class.
    fractions : array of float, shape (S,)
        Share of each split; sums to 1.

    Returns
    -------
    array of int, shape (C, S)

    Examples
    --------
    >>> apportion(np.array([80, 20, 8]), np.array([0.7, 0.15, 0.15])).tolist()
    [[56, 12, 12], [14, 3, 3], [6, 1, 1]]
    """
    counts = np.asarray(counts, dtype=np.int64)
    fractions = np.asarray(fractions, dtype=np.float64)
    exact = counts[:, None] * fractions[None, :]
    base = np.floor(exact + 1e-9).astype(np.int64)
    base = np.minimum(base, counts[:, None])
    col_exact = exact.sum(axis=0)
    col_total = np.floor(col_exact + 1e-9).astype(np.int64)
    short = int(counts.sum() - col_total.sum())
    order = np.argsort(-(col_exact - col_total), kind="stable")
    col_total[order[:short]] += 1
    row_need = counts - base.sum(axis=1)
    col_need = col_total - base.sum(axis=0)
    allowed = (exact - base) > 1e-9
    return base + _max_flow_01(allowed, row_need, col_need)


def split_targets(counts: np.ndarray, val: float | int, test: float | int) -> np.ndarray:
    """Per-class, per-split target counts (classes x 3) for ``val``/``test`` shares or counts.

    Each cell is within 1 of its exact share (:func:`apportion`); an ``int``
    share is a number of images out of all of them.
    """
    n = int(counts.sum())
    shares = []
    for name, v in (("val", val), ("test", test)):
        if isinstance(v, int):
            if v >= n:
                raise DatasetError(
                    f"{name}={v} images, but only {n} valid images were found; "
                    f"choose {name} < {n} or a fraction"
                )
            shares.append(v / n)
        else:
            shares.append(v)
    if sum(shares) >= 1:
        raise DatasetError(f"val={val!r} and test={test!r} leave no training data for {n} images")
    fractions = np.array([1.0 - sum(shares), *shares])
    return apportion(counts, fractions)


def _max_flow_01(allowed: np.ndarray, row_need: np.ndarray, col_need: np.ndarray) -> np.ndarray:
    """A 0/1 matrix on ``allowed`` cells with the given row and column sums.

    Edmonds-Karp max-flow on source -> rows -> columns -> sink; the graphs here
    are tiny (classes x 3).
    """
    n_rows, n_cols = allowed.shape
    src, sink = n_rows + n_cols, n_rows + n_cols + 1
    size = n_rows + n_cols + 2
    cap = np.zeros((size, size), dtype=np.int64)
    cap[src, :n_rows] = row_need
    cap[:n_rows, n_rows : n_rows + n_cols] = allowed.astype(np.int64)
    cap[n_rows : n_rows + n_cols, sink] = col_need
    flow = np.zeros_like(cap)
    while True:
        prev = np.full(size, -1)
        prev[src] = src
        queue = [src]
        while queue and prev[sink] < 0:
            u = queue.pop(0)
            for v in np.nonzero((cap[u] - flow[u] > 0) & (prev < 0))[0]:
                prev[v] = u
                queue.append(int(v))
        if prev[sink] < 0:
            break
        v = sink
        while v != src:
            u = int(prev[v])
            flow[u, v] += 1
            flow[v, u] -= 1
            v = u
    add = flow[:n_rows, n_rows : n_rows + n_cols]
    if (add.sum(axis=1) != row_need).any():  # pragma: no cover - controlled rounding always exists
        raise RuntimeError("could not apportion split sizes; please report this")
    return add


def assign_groups(
    groups: list[list[Sample]],
    targets: np.ndarray,
    seed: int,
    names: Sequence[str] = SPLIT_NAMES,
) -> dict[str, list[Sample]]:
    """Place whole groups into splits, filling each class's per-split targets.

    ``names`` names the columns of ``targets`` (the three split names by
    default; cross-validation passes one name per fold).

    Groups are visited largest first, ties in a seeded pseudo-random order that
    depends only on the group's paths (never on listing order). A group goes to
    the split where it fits and the deficit of its classes is largest; if it fits
    nowhere, to the split where it overshoots least. Plain Python integers: this
    loop runs once per file, and numpy's per-call overhead would dominate it.
    """
    n_splits = targets.shape[1]
    target = targets.tolist()
    current = [[0] * n_splits for _ in range(targets.shape[0])]

    def order_key(g: list[Sample]) -> tuple[int, bytes]:
        return (-len(g), hashlib.blake2b(f"{seed}\x00{g[0].path}".encode(), digest_size=8).digest())

    out: dict[str, list[Sample]] = {n: [] for n in names}
    for g in sorted(groups, key=order_key):
        need: dict[int, int] = {}
        for s in g:
            need[s.label] = need.get(s.label, 0) + 1
        best: tuple[int, int, int] | None = None
        for split in range(n_splits):
            over = deficit = 0
            for c, k in need.items():
                have, want = current[c][split], target[c][split]
                over += max(have + k - want, 0)
                deficit += want - have
            score = (over, -deficit, split)
            if best is None or score < best:
                best = score
        assert best is not None
        chosen = best[2]
        for c, k in need.items():
            current[c][chosen] += k
        out[names[chosen]].extend(g)
    return out
