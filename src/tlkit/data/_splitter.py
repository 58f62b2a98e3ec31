"""DatasetSplitter: stratified, seeded, three-way, leak-free splits."""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlkit.data._sample import Sample
from tlkit.data._scan import SkippedFile, choose_executor, inspect_files, list_class_tree
from tlkit.data._split import SPLIT_NAMES, Split, parts_from_assignment
from tlkit.errors import DatasetError, LabelConflictError, SmallClassError

__all__ = ["DatasetSplitter", "apportion"]

_CONFLICT_POLICIES = ("error", "drop", "keep_first")


class DatasetSplitter:
    """Split an image dataset three ways: stratified, seeded and leak-free.

    Parameters
    ----------
    val, test : float or int
        Share of the data for validation and test: a fraction in ``[0, 1)`` or
        an absolute number of images (an ``int`` >= 1). Training gets the rest.
        Fractions must leave a training set (``val + test < 1``).
    seed : int
        Seed of the assignment. The same files and seed give the same split
        on any machine, whatever order the file system lists them in.
    groups : str or callable, optional
        Keeps related files in one split. A regular expression is searched in
        each file name (``"IMG_1234_2.jpg"``; see ``groups_on``), so
        ``r"^(IMG_\\d+)_"`` keeps a burst together; files whose matches are
        equal (all capture groups if the pattern has any, else the whole match)
        form one group; files it does not match are not grouped. A pattern that
        matches no file at all raises :class:`~tlkit.errors.DatasetError`.
        ``split.summary()`` says how many files matched and how many groups
        formed. A callable maps the relative path to a group key, or ``None``
        for no group. Files with identical content always form one group.
    groups_on : {"name", "path"}
        What a ``groups`` regex is matched against: the file name (default) or
        the path relative to the root (``"cat/IMG_1234_2.jpg"``).
    near_duplicates : {None, "report", "group"}
        Perceptual near-duplicates (the same photo resized, re-encoded, turned
        grey; pHash within ``DEFAULT_HASH_THRESHOLD`` of 256 bits, see
        :mod:`tlkit.audit`). ``None`` (default) does not look for them (no extra
        cost); ``"report"`` hashes every image and records in ``split.warnings``
        how many near-duplicate pairs straddle two splits; ``"group"`` keeps
        each set of near-duplicates inside one split, as identical files are.
    on_conflict : {"error", "drop", "keep_first"}
        What to do when identical files carry different labels: raise
        :class:`~tlkit.errors.LabelConflictError` naming both paths, drop every
        copy, or keep the copy whose relative path sorts first. Dropped copies
        are listed in ``split.skipped``.
    verify : bool
        Decode every image once while scanning (parallel). Unreadable files are
        skipped with their reason either way; ``False`` only reads headers.
    allow_small_classes : bool
        A class too small to appear in every split is an error unless this is
        ``True``, in which case it is kept (absent from some split) with a warning.
    workers : int, optional
        Threads (default: CPU count + 2) or processes (default: CPU count)
        used to check images.
    executor : {"auto", "thread", "process"}
        How images are checked in parallel. ``"auto"`` uses forked worker
        processes on Linux when this process runs a single thread (e.g. the
        ``tlkit split`` command, or a script that has not started TensorFlow)
        and the folder holds 500 files or more, else threads, which are always
        safe. Results are the same either way.
    progress : bool, optional
        Show a progress bar (default: on for 2,000 files or more).

    Examples
    --------
    >>> import tempfile
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 40, "b": 20, "c": 10}, seed=1)
    >>> split = DatasetSplitter(val=0.2, test=0.2, seed=42).split(root)
    >>> split.counts()["b"]
    {'train': 12, 'val': 4, 'test': 4}
    """

    def __init__(
        self,
        val: float = 0.15,
        test: float = 0.15,
        seed: int = 0,
        *,
        groups: str | Callable[[str], Hashable | None] | None = None,
        groups_on: str = "name",
        near_duplicates: str | None = None,
        on_conflict: str = "error",
        verify: bool = True,
        allow_small_classes: bool = False,
        workers: int | None = None,
        progress: bool | None = None,
        executor: str = "auto",
    ) -> None:
        self.val = _check_share("val", val)
        self.test = _check_share("test", test)
        fracs = [x for x in (self.val, self.test) if isinstance(x, float)]
        if sum(fracs) >= 1.0:
            raise ValueError(
                f"val={val!r} and test={test!r} leave no training data (their fractions sum to "
                f"{sum(fracs):g} >= 1); choose fractions that sum to less than 1, e.g. 0.15 and 0.15"
            )
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = int(seed)
        if on_conflict not in _CONFLICT_POLICIES:
            raise ValueError(
                f"on_conflict must be one of {', '.join(map(repr, _CONFLICT_POLICIES))}, "
                f"got {on_conflict!r}"
            )
        self.on_conflict = on_conflict
        if groups_on not in ("name", "path"):
            raise ValueError(f"groups_on must be 'name' or 'path', got {groups_on!r}")
        self.groups = groups
        self.groups_on = groups_on
        self._group_fn = _group_function(groups, groups_on)
        if near_duplicates not in (None, "report", "group"):
            raise ValueError(
                f"near_duplicates must be None, 'report' or 'group', got {near_duplicates!r}"
            )
        self.near_duplicates = near_duplicates
        self.verify = bool(verify)
        self.allow_small_classes = bool(allow_small_classes)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or None, got {workers!r}")
        self.workers = workers
        self.progress = progress
        choose_executor(executor, 0, 2)  # validates the name early
        self.executor = executor

    def __repr__(self) -> str:
        return (
            f"DatasetSplitter(val={self.val!r}, test={self.test!r}, seed={self.seed}, "
            f"groups={self.groups!r}, on_conflict={self.on_conflict!r})"
        )

    def get_config(self) -> dict[str, Any]:
        """The settings, JSON-ready (a callable ``groups`` is stored by name)."""
        g = self.groups
        out = {
            "val": self.val,
            "test": self.test,
            "seed": self.seed,
            "groups": g if (g is None or isinstance(g, str)) else getattr(g, "__name__", repr(g)),
            "on_conflict": self.on_conflict,
            "verify": self.verify,
            "allow_small_classes": self.allow_small_classes,
        }
        if isinstance(g, str):
            out["groups_on"] = self.groups_on
        if self.near_duplicates is not None:
            out["near_duplicates"] = self.near_duplicates
        return out

    # -- entry points --------------------------------------------------------------------

    def split(self, root: str | os.PathLike[str]) -> Split:
        """Split a folder-per-class tree.

        Parameters
        ----------
        root : str or os.PathLike
            Dataset folder: one sub-folder per class. Files in nested
            sub-folders count for their top-level class.

        Returns
        -------
        Split

        Raises
        ------
        DatasetError
            Root missing, fewer than two classes, a class too small, ...
        LabelConflictError
            Identical files under two classes (with ``on_conflict="error"``).
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(
                f"dataset folder {str(root)!r} does not exist or is not a folder; pass the folder "
                "that holds one sub-folder per class"
            )
        class_names, files, skipped = list_class_tree(root)
        if len(class_names) < 2:
            found = f"only {class_names[0]!r}" if class_names else "none"
            raise DatasetError(
                f"{str(root)!r} has {len(class_names)} class folder(s) ({found}); a classifier "
                "needs at least 2. Put each class's images in its own sub-folder."
            )
        return self._split(root, class_names, files, skipped)

    def split_samples(
        self,
        pairs: Iterable[tuple[str | os.PathLike[str], Hashable]],
        root: str | os.PathLike[str] | None = None,
        class_names: Iterable[str] | None = None,
    ) -> Split:
        """Split an explicit list of ``(path, label)`` pairs.

        Parameters
        ----------
        pairs : iterable of (path, label)
            File paths (absolute, or relative to ``root``) and labels (class
            names, or any hashable; they are turned into strings).
        root : str or os.PathLike, optional
            Folder the manifest paths are relative to; default: the deepest
            folder holding every file.
        class_names : iterable of str, optional
            Label order; default: sorted label names.

        Returns
        -------
        Split
        """
        items = [(Path(p), str(lbl)) for p, lbl in pairs]
        if not items:
            raise DatasetError("split_samples() got no (path, label) pairs")
        if root is None:
            absolute = [os.path.abspath(p) for p, _ in items]
            root_path = Path(os.path.commonpath([os.path.dirname(a) for a in absolute]))
        else:
            root_path = Path(root)
        files: list[tuple[str, str]] = []
        for p, lbl in items:
            full = p if p.is_absolute() else root_path / p
            rel = os.path.relpath(os.path.abspath(full), os.path.abspath(root_path))
            if rel.startswith(".."):
                raise DatasetError(f"{str(p)!r} is outside root {str(root_path)!r}")
            files.append((Path(rel).as_posix(), lbl))
        seen_paths: set[str] = set()
        for rel, _ in files:
            if rel in seen_paths:
                raise DatasetError(f"{rel!r} is listed more than once in the pairs")
            seen_paths.add(rel)
        names = sorted({lbl for _, lbl in files}) if class_names is None else list(class_names)
        unknown = {lbl for _, lbl in files} - set(names)
        if unknown:
            raise DatasetError(f"labels {sorted(unknown)} are not in class_names={names}")
        if len(names) < 2:
            raise DatasetError(
                f"found {len(names)} class(es) {names}; a classifier needs at least 2"
            )
        return self._split(root_path, names, sorted(files), [])

    # -- the work ------------------------------------------------------------------------

    def _split(
        self,
        root: Path,
        class_names: list[str],
        files: list[tuple[str, str]],
        skipped: list[SkippedFile],
    ) -> Split:
        warn: list[str] = []
        infos = inspect_files(
            [os.path.join(root, *rel.split("/")) for rel, _ in files],
            verify=self.verify,
            workers=self.workers,
            progress=self.progress,
            executor=self.executor,
        )
        label_of = {c: i for i, c in enumerate(class_names)}
        samples: list[Sample] = []
        for (rel, cls), info in zip(files, infos, strict=True):
            if isinstance(info, str):
                skipped.append(SkippedFile(rel, info))
                continue
            samples.append(
                Sample(rel, label_of[cls], info.sha256, info.orientation, info.width, info.height)
            )
        samples, conflict_skips, conflict_warn = self._resolve_conflicts(samples, class_names)
        skipped.extend(conflict_skips)
        warn.extend(conflict_warn)

        counts = np.bincount([s.label for s in samples], minlength=len(class_names))
        targets = self._targets(counts)
        self._check_small(class_names, counts, targets, warn)

        params = self.get_config()
        near = self._near_pairs(root, samples, warn) if self.near_duplicates else []
        grouped = self._group(samples, params, near if self.near_duplicates == "group" else [])
        assigned = _assign(grouped, targets, self.seed)
        parts = parts_from_assignment(root, class_names, assigned)
        if self.near_duplicates is not None:
            where = {s.path: name for name, part in parts.items() for s in part}
            across = sum(1 for a, b in near if where.get(a) != where.get(b))
            params["near_duplicate_pairs"] = len(near)
            params["near_duplicate_pairs_across_splits"] = across
            if across:
                warn.append(
                    f"{across} near-duplicate pair(s) (perceptual hash) straddle two splits; "
                    "pass near_duplicates='group' to keep them together, or run tlkit audit"
                )
        return Split(
            root=root,
            class_names=tuple(class_names),
            train=parts["train"],
            val=parts["val"],
            test=parts["test"],
            skipped=tuple(sorted(skipped, key=lambda s: s.path)),
            warnings=tuple(warn),
            params=params,
        )

    def _resolve_conflicts(
        self, samples: list[Sample], class_names: list[str]
    ) -> tuple[list[Sample], list[SkippedFile], list[str]]:
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
            if self.on_conflict == "error":
                raise LabelConflictError(
                    f"identical files carry different labels: {first.path!r} "
                    f"(class {class_names[first.label]!r}) and {other.path!r} (class "
                    f"{class_names[other.label]!r}). Remove the wrong copy, or pass "
                    "on_conflict='drop' (drop every copy) or 'keep_first'."
                )
            for s in copies:
                if self.on_conflict == "drop":
                    drop[s.path] = "label conflict: identical content under several classes"
                elif s.label != first.label:
                    drop[s.path] = f"label conflict: identical to {first.path!r}, which was kept"
        kept = [s for s in samples if s.path not in drop]
        skips = [SkippedFile(p, r) for p, r in drop.items()]
        msgs = (
            [
                f"{conflicts} identical file(s) under several classes, resolved with "
                f"on_conflict={self.on_conflict!r}; {len(skips)} file(s) skipped"
            ]
            if conflicts
            else []
        )
        return kept, skips, msgs

    def _targets(self, counts: np.ndarray) -> np.ndarray:
        """Per-class, per-split target counts (classes x 3), each within 1 of its exact share."""
        n = int(counts.sum())
        shares = []
        for name, v in (("val", self.val), ("test", self.test)):
            if isinstance(v, int):
                if v >= n:
                    raise ValueError(
                        f"{name}={v} images, but only {n} valid images were found; "
                        f"choose {name} < {n} or a fraction"
                    )
                shares.append(v / n)
            else:
                shares.append(v)
        if sum(shares) >= 1:
            raise ValueError(
                f"val={self.val!r} and test={self.test!r} leave no training data for {n} images"
            )
        fractions = np.array([1.0 - sum(shares), *shares])
        return apportion(counts, fractions)

    def _check_small(
        self, class_names: list[str], counts: np.ndarray, targets: np.ndarray, warn: list[str]
    ) -> None:
        """Raise (or warn) for classes absent from a split that should hold them."""
        wanted = [i for i, x in enumerate((1.0, self.val, self.test)) if x]
        for c, name in enumerate(class_names):
            missing = [SPLIT_NAMES[s] for s in wanted if targets[c, s] == 0]
            if not missing:
                continue
            msg = (
                f"class {name!r} has {int(counts[c])} image(s), too few to appear in every split "
                f"(it would have none in {', '.join(missing)})"
            )
            if not self.allow_small_classes:
                raise SmallClassError(
                    msg + "; add images, lower val/test, or pass allow_small_classes=True"
                )
            if counts[c] == 0:
                msg = f"class {name!r} has no valid images; it is kept in class_names but empty"
            warn.append(msg)
            warnings.warn(msg, stacklevel=3)

    def _near_pairs(
        self, root: Path, samples: list[Sample], warn: list[str]
    ) -> list[tuple[str, str]]:
        """Path pairs whose perceptual hashes are near (``near_duplicates=``)."""
        from tlkit.data._neardup import DEFAULT_HASH_THRESHOLD, hamming_pairs, perceptual_hashes

        paths = [os.path.join(root, *s.path.split("/")) for s in samples]
        hashes, errors = perceptual_hashes(paths, workers=self.workers)
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

    def _group(
        self,
        samples: list[Sample],
        params: dict[str, Any] | None = None,
        near: Sequence[tuple[str, str]] = (),
    ) -> list[list[Sample]]:
        """Union files with identical content, the same ``groups=`` key, or near pairs."""
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
            if self._group_fn is not None:
                k = self._group_fn(s.path)
                if k is not None:
                    keys.append(("group", k))
                    matched += 1
            for key in keys:
                union(i, first_of.setdefault(key, i))
        if self._group_fn is not None:
            if matched == 0 and isinstance(self.groups, str) and samples:
                target = "file name" if self.groups_on == "name" else "relative path"
                example = samples[0].path
                if self.groups_on == "name":
                    example = example.rsplit("/", 1)[-1]
                raise DatasetError(
                    f"groups={self.groups!r} matched no {target} of the {len(samples)} files "
                    f"(e.g. {example!r}), so it would group nothing. Fix the pattern"
                    + (
                        ", or pass groups_on='path' to match relative paths like "
                        f"{samples[0].path!r}"
                        if self.groups_on == "name"
                        else ""
                    )
                    + "."
                )
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
            key = group[0].path if len(group) > 1 else ""
            out.append([_with_group(s, key) for s in group])
        return out


def _with_group(s: Sample, key: str) -> Sample:
    from dataclasses import replace

    return replace(s, group=key or s.path)


def _check_share(name: str, v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a fraction (float) or a count (int), got {v!r}")
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not 0.0 <= v < 1.0 or math.isnan(v):
            raise ValueError(
                f"{name}={v!r} is not a valid fraction; use a value in [0, 1) or an image count"
            )
        return v
    v = int(v)
    if v < 0:
        raise ValueError(f"{name}={v!r} must not be negative")
    return v


def _group_function(groups: Any, on: str = "name") -> Callable[[str], Hashable | None] | None:
    if groups is None:
        return None
    if callable(groups):
        return groups
    if isinstance(groups, str):
        try:
            pattern = re.compile(groups)
        except re.error as exc:
            raise ValueError(
                f"groups={groups!r} is not a valid regular expression: {exc}"
            ) from None

        def by_regex(path: str) -> Hashable | None:
            m = pattern.search(path.rsplit("/", 1)[-1] if on == "name" else path)
            if m is None:
                return None
            return m.groups() if pattern.groups else m.group(0)

        return by_regex
    raise TypeError(f"groups must be a regex string, a callable or None, got {groups!r}")


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


def _assign(groups: list[list[Sample]], targets: np.ndarray, seed: int) -> dict[str, list[Sample]]:
    """Place whole groups into splits, filling each class's per-split targets.

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

    out: dict[str, list[Sample]] = {n: [] for n in SPLIT_NAMES}
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
        out[SPLIT_NAMES[chosen]].extend(g)
    return out
