"""The split's algorithm: leak-free groups, per-class target counts, then whole groups placed.

Files that must stay in one split are unioned into groups here (identical
content, the same ``groups=`` key, perceptual near-duplicates); identical files
under different labels are resolved first (:func:`resolve_conflicts`).
:func:`apportion` rounds the per-class, per-split shares to integers with exact
row and column sums; :func:`assign_groups` places each group in one split,
filling those targets.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._validation import type_name
from tlkit.data._sample import Sample
from tlkit.data._scan import SkippedFile
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError, LabelConflictError

__all__ = [
    "SPLIT_NAMES",
    "apportion",
    "assign_groups",
    "group_function",
    "group_samples",
    "near_pairs",
    "resolve_conflicts",
    "split_targets",
]


def group_function(groups: Any, on: str = "name") -> Callable[[str], Hashable | None] | None:
    """The ``groups=`` argument as a function from relative path to group key (or ``None``).

    Examples
    --------
    >>> key = group_function(r"^(IMG_\\d+)_")
    >>> key("cat/IMG_0001_2.jpg"), key("cat/other.jpg")
    (('IMG_0001',), None)
    """
    if groups is None:
        return None
    if callable(groups):
        return groups
    if isinstance(groups, str):
        try:
            pattern = re.compile(groups)
        except re.error as exc:
            raise InvalidArgumentError(
                f"groups={groups!r} is not a valid regular expression: {exc}"
            ) from None

        def by_regex(path: str) -> Hashable | None:
            m = pattern.search(path.rsplit("/", 1)[-1] if on == "name" else path)
            if m is None:
                return None
            return m.groups() if pattern.groups else m.group(0)

        return by_regex
    raise ArgumentTypeError(
        f"groups must be a regex string, a callable or None, got {groups!r} ({type_name(groups)})"
    )


def resolve_conflicts(
    samples: list[Sample], class_names: Sequence[str], on_conflict: str
) -> tuple[list[Sample], list[SkippedFile], list[str]]:
    """Apply ``on_conflict`` to identical files under different labels.

    Returns the samples kept, the skipped files (with the reason) and the
    messages for ``split.warnings``; ``"error"`` raises
    :class:`~tlkit.errors.LabelConflictError` naming two of the copies.
    """
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_hash[s.sha256].append(s)
    drop: dict[str, str] = {}
    conflicts = 0
    for copies in by_hash.values():
        labels = {s.label for s in copies}
        if len(labels) < 2:
            continue
        conflicts += 1
        copies = sorted(copies, key=lambda s: s.path)
        first = copies[0]
        other = next(s for s in copies if s.label != first.label)
        if on_conflict == "error":
            raise LabelConflictError(
                f"identical files carry different labels: {first.path!r} "
                f"(class {class_names[first.label]!r}) and {other.path!r} (class "
                f"{class_names[other.label]!r}). Remove the wrong copy, or pass "
                "on_conflict='drop' (drop every copy) or on_conflict='keep_first'."
            )
        for s in copies:
            if on_conflict == "drop":
                drop[s.path] = "label conflict: identical content under several classes"
            elif s.label != first.label:
                drop[s.path] = f"label conflict: identical to {first.path!r}, which was kept"
    kept = [s for s in samples if s.path not in drop]
    skips = [SkippedFile(p, r, "label_conflict") for p, r in drop.items()]
    msgs = (
        [
            f"{conflicts} identical file(s) under several classes, resolved with "
            f"on_conflict={on_conflict!r}; {len(skips)} file(s) skipped"
        ]
        if conflicts
        else []
    )
    return kept, skips, msgs


def near_pairs(
    root: Path, samples: list[Sample], workers: int | None, warn: list[str]
) -> list[tuple[str, str]]:
    """Path pairs whose perceptual hashes are near (``near_duplicates=``)."""
    from tlkit.data._neardup import DEFAULT_HASH_THRESHOLD, hamming_pairs, perceptual_hashes

    paths = [os.path.join(root, *s.path.split("/")) for s in samples]
    hashes, errors = perceptual_hashes(paths, workers=workers)
    ok = [k for k, e in enumerate(errors) if e is None]
    if len(ok) < len(samples):
        bad = next(samples[k].path for k, e in enumerate(errors) if e is not None)
        warn.append(
            f"{len(samples) - len(ok)} file(s) could not be decoded for the near-duplicate "
            f"check (e.g. {bad!r}); they are split without it"
        )
    res = hamming_pairs(hashes[ok], DEFAULT_HASH_THRESHOLD)
    return [
        (samples[ok[a]].path, samples[ok[b]].path)
        for a, b in zip(res.i.tolist(), res.j.tolist(), strict=True)
    ]


def group_samples(
    samples: list[Sample],
    group_fn: Callable[[str], Hashable | None] | None = None,
    *,
    groups: Any = None,
    groups_on: str = "name",
    params: dict[str, Any] | None = None,
    near: Sequence[tuple[str, str]] = (),
) -> list[list[Sample]]:
    """Union files with identical content, the same ``group_fn`` key, or near pairs.

    Each group comes back sorted by path, its samples' ``group`` set to the
    first path (a lone file keeps its own path). ``groups``/``groups_on`` are
    the splitter's arguments, for the error when a regex matches no file;
    ``params`` receives ``groups_matched`` and ``groups_formed``.

    Examples
    --------
    >>> a, b, c = Sample("x/1.png", 0, "h1"), Sample("x/2.png", 0, "h1"), Sample("y/3.png", 1, "h2")
    >>> [[s.path for s in g] for g in group_samples([a, b, c])]
    [['x/1.png', 'x/2.png'], ['y/3.png']]
    """
    parent = list(range(len(samples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first_of: dict[tuple[str, Hashable], int] = {}
    matched = 0
    for i, s in enumerate(samples):
        keys: list[tuple[str, Hashable]] = [("sha256", s.sha256)]
        if group_fn is not None:
            k = group_fn(s.path)
            if k is not None:
                keys.append(("group", k))
                matched += 1
        for key in keys:
            union(i, first_of.setdefault(key, i))
    if group_fn is not None:
        if matched == 0 and isinstance(groups, str) and samples:
            _no_match(groups, groups_on, samples)
        if params is not None:
            params["groups_matched"] = matched
            params["groups_formed"] = sum(1 for key in first_of if key[0] == "group")
    index = {s.path: i for i, s in enumerate(samples)}
    for a, b in near:
        if a in index and b in index:
            union(index[a], index[b])
    members: dict[int, list[Sample]] = defaultdict(list)
    for i, s in enumerate(samples):
        members[find(i)].append(s)
    out = []
    for group in members.values():
        group.sort(key=lambda s: s.path)
        name = group[0].path if len(group) > 1 else ""
        out.append([replace(s, group=name or s.path) for s in group])
    return out


def _no_match(groups: str, groups_on: str, samples: list[Sample]) -> None:
    target = "file name" if groups_on == "name" else "relative path"
    example = samples[0].path
    if groups_on == "name":
        example = example.rsplit("/", 1)[-1]
    raise DatasetError(
        f"groups={groups!r} matched no {target} of the {len(samples)} files "
        f"(e.g. {example!r}), so it would group nothing. Fix the pattern"
        + (
            f", or pass groups_on='path' to match relative paths like {samples[0].path!r}"
            if groups_on == "name"
            else ""
        )
        + "."
    )


# -- assignment: per-class targets, then whole groups placed to meet them ----------------

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
            for w in np.nonzero((cap[u] - flow[u] > 0) & (prev < 0))[0]:
                prev[w] = u
                queue.append(int(w))
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
