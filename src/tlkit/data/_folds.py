"""Cross-validation folds and nested training subsets: stratified, seeded, leak-free cuts.

Cross-validation and learning curves cut a list of samples into parts: K folds,
an inner validation carve-out, nested training fractions. Each cut regroups the
samples with the splitter's grouping (:func:`~tlkit.data._grouping.group_samples`:
identical content and the ``group`` key each sample carries) and places whole
groups with the splitter's assignment (:func:`~tlkit.data._grouping.apportion`,
:func:`~tlkit.data._grouping.assign_groups`), so a group never straddles two parts.

:func:`make_folds` pools a folder (scanned by :class:`~tlkit.DatasetSplitter`,
which checks every file, resolves label conflicts and groups duplicates,
``groups=`` matches and near-duplicates) or every part of a
:class:`~tlkit.data.Split`, then places whole groups into ``K`` folds with the
splitter's own assignment. :meth:`Folds.split` turns one fold into a
:class:`~tlkit.data.Split` (the other folds train, with an inner validation
carve-out; this fold tests). :func:`nested_subsets` makes the nested training
fractions of a learning curve.
"""

from __future__ import annotations

import hashlib
import os
import warnings as _warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._validation import (
    check_bool,
    check_holdout_share,
    check_int,
    check_seed,
    type_name,
)
from tlkit.data._grouping import apportion, assign_groups, group_samples
from tlkit.data._sample import Sample
from tlkit.data._scan import SkippedFile
from tlkit.data._split import Split, SplitPart
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError, SmallClassError

__all__ = [
    "DEFAULT_INNER_VAL",
    "MAX_FOLDS",
    "Folds",
    "carve",
    "derived_seed",
    "leak_free_groups",
    "make_folds",
    "nested_subsets",
    "partition",
]

#: Share of the training folds carved out (stratified, group-safe) to choose the best epoch.
DEFAULT_INNER_VAL = 0.15
#: Most folds :func:`make_folds` makes (each fold trains a model); pass fewer.
MAX_FOLDS = 100


@dataclass(frozen=True)
class Folds:
    """K stratified, leak-free folds of a dataset, possibly repeated with other seeds.

    Made by :func:`make_folds`. Every valid file is in exactly one fold per
    repeat; a leak-free group (identical files, a ``groups=`` key,
    near-duplicates) is never split between folds.

    Attributes
    ----------
    root : pathlib.Path
        Folder the sample paths are relative to.
    class_names : tuple of str
    folds, repeats, seed : int
        Repeat ``r`` was assigned with seed ``seed + r``.
    assignments : tuple of tuple of tuple of Sample
        ``assignments[r][k]``: the samples of fold ``k`` in repeat ``r``, sorted by path.
    skipped : tuple of SkippedFile
        Every file that is in no fold, with the reason (as ``split.skipped``).
    warnings : tuple of str
    params : dict
        The settings that made the folds (and the pooled split's).

    Examples
    --------
    >>> import tempfile
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 20, "b": 10}, image_size=8)
    >>> folds = make_folds(root, folds=5, seed=0, progress=False)
    >>> [len(f) for f in folds.assignments[0]]
    [6, 6, 6, 6, 6]
    >>> split = folds.split(0)
    >>> len(split.train), len(split.val), len(split.test)
    (20, 4, 6)
    """

    root: Path
    class_names: tuple[str, ...]
    folds: int
    repeats: int
    seed: int
    assignments: tuple[tuple[tuple[Sample, ...], ...], ...]
    skipped: tuple[SkippedFile, ...] = ()
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def samples(self) -> tuple[Sample, ...]:
        """Every sample in the folds, sorted by path."""
        return tuple(sorted((s for f in self.assignments[0] for s in f), key=lambda s: s.path))

    def __len__(self) -> int:
        return sum(len(f) for f in self.assignments[0])

    def __repr__(self) -> str:
        return (
            f"Folds(root={str(self.root)!r}, classes={self.num_classes}, folds={self.folds}, "
            f"repeats={self.repeats}, n={len(self)}, skipped={len(self.skipped)})"
        )

    def fold_of(self, repeat: int = 0) -> dict[str, int]:
        """Relative path -> the fold that tests it, in one repeat."""
        repeat = self._repeat(repeat)
        return {s.path: k for k, f in enumerate(self.assignments[repeat]) for s in f}

    def counts(self, repeat: int = 0) -> dict[str, list[int]]:
        """Class name -> images of that class in each fold."""
        repeat = self._repeat(repeat)
        out = {c: [0] * self.folds for c in self.class_names}
        for k, f in enumerate(self.assignments[repeat]):
            for s in f:
                out[self.class_names[s.label]][k] += 1
        return out

    def split(self, fold: int, repeat: int = 0, val: float | None = DEFAULT_INNER_VAL) -> Split:
        """One fold as a :class:`~tlkit.data.Split`: the other folds train, this one tests.

        Parameters
        ----------
        fold : int
            ``0 .. folds - 1``.
        repeat : int
            ``0 .. repeats - 1``.
        val : float or None
            Share of the training folds carved out as ``split.val`` for
            choosing the best epoch: stratified and group-safe, seeded by the
            folds' seed, the repeat and the fold (default
            ``DEFAULT_INNER_VAL`` = 0.15). ``None`` (or ``0``) leaves
            ``split.val`` empty.

        Returns
        -------
        Split
            ``params`` records ``fold``, ``repeat`` and ``inner_val``.
        """
        repeat = self._repeat(repeat)
        fold = check_int("fold", fold, minimum=0, maximum=self.folds - 1)
        share = check_holdout_share("val", val)
        test = self.assignments[repeat][fold]
        train: tuple[Sample, ...] = tuple(
            sorted(
                (s for k, f in enumerate(self.assignments[repeat]) if k != fold for s in f),
                key=lambda s: s.path,
            )
        )
        inner: tuple[Sample, ...] = ()
        if share:
            train, inner = carve(
                train, self.num_classes, share, derived_seed(self.seed, "val", repeat, fold)
            )
        names = self.class_names
        params = {**self.params, "fold": fold, "repeat": repeat, "inner_val": share}
        return Split(
            root=self.root,
            class_names=names,
            train=SplitPart("train", self.root, names, train),
            val=SplitPart("val", self.root, names, inner),
            test=SplitPart("test", self.root, names, test),
            skipped=self.skipped,
            warnings=self.warnings,
            params=params,
        )

    def splits(self, val: float | None = DEFAULT_INNER_VAL) -> Iterator[Split]:
        """Every fold of every repeat as a :class:`~tlkit.data.Split`, repeat by repeat."""
        for r in range(self.repeats):
            for k in range(self.folds):
                yield self.split(k, r, val=val)

    def summary(self) -> str:
        """A plain-text table of class x fold counts (first repeat) and skipped files."""
        counts = self.counts(0)
        width = max([5, *(len(c) for c in self.class_names)])
        head = f"{'class':<{width}}  " + " ".join(f"{f'f{k}':>5}" for k in range(self.folds))
        lines = [head, "-" * len(head)]
        for c in self.class_names:
            lines.append(f"{c:<{width}}  " + " ".join(f"{n:>5}" for n in counts[c]))
        sizes = [len(f) for f in self.assignments[0]]
        lines.append(f"{'total':<{width}}  " + " ".join(f"{n:>5}" for n in sizes))
        lines.append(f"repeats: {self.repeats} (seeds {self.seed}..{self.seed + self.repeats - 1})")
        lines.append(f"skipped files: {len(self.skipped)}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repeat(self, repeat: int) -> int:
        return check_int("repeat", repeat, minimum=0, maximum=self.repeats - 1)


def make_folds(
    data: str | os.PathLike[str] | Split,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    *,
    groups: str | Callable[[str], Hashable | None] | None = None,
    groups_on: str = "name",
    near_duplicates: str | None = None,
    on_conflict: str = "error",
    allow_small_classes: bool = False,
    verify: bool = True,
    workers: int | None = None,
    progress: bool | None = None,
) -> Folds:
    """Make ``folds`` stratified, leak-free folds of a dataset, ``repeats`` times.

    Parameters
    ----------
    data : str, os.PathLike or Split
        A folder-per-class tree (scanned as :class:`~tlkit.DatasetSplitter`
        scans it: unreadable files and label conflicts are skipped or refused
        and listed in ``skipped``), or a :class:`~tlkit.data.Split` whose
        three parts are pooled (its groups and skipped files are kept).
    folds : int
        Number of folds ``K``, 2 to ``MAX_FOLDS`` (100).
    repeats : int
        Repeat the assignment with seeds ``seed``, ``seed + 1``, ... (default 1).
    seed : int
        Seed of the assignment; the same files and seed give the same folds.
    groups, groups_on, near_duplicates, on_conflict, verify, workers, progress
        As for :class:`~tlkit.DatasetSplitter`, for a folder. A ``Split``
        already carries its groups: these must keep their defaults.
    allow_small_classes : bool
        A class with fewer images than ``folds`` (some folds would test none
        of it) is a :class:`~tlkit.errors.SmallClassError` unless ``True``.

    Returns
    -------
    Folds

    Raises
    ------
    SmallClassError
        A class too small for every fold (see ``allow_small_classes``).
    DatasetError
        Fewer leak-free groups than folds, or a fold left empty.
    """
    folds = check_int("folds", folds, minimum=2, maximum=MAX_FOLDS)
    repeats = check_int("repeats", repeats, minimum=1, maximum=MAX_FOLDS)
    seed = check_seed("seed", seed)
    allow_small_classes = check_bool("allow_small_classes", allow_small_classes)
    pooled = _pooled(
        data,
        seed,
        groups=groups,
        groups_on=groups_on,
        near_duplicates=near_duplicates,
        on_conflict=on_conflict,
        allow_small_classes=allow_small_classes,
        verify=verify,
        workers=workers,
        progress=progress,
    )
    samples = sorted((s for p in pooled.parts.values() for s in p), key=lambda s: s.path)
    names = tuple(pooled.class_names)
    warn = list(pooled.warnings)
    _check_folds(samples, names, folds, allow_small_classes, warn)
    fold_names = [f"fold{k}" for k in range(folds)]
    assignments = []
    for r in range(repeats):
        parts = partition(samples, len(names), [1.0 / folds] * folds, seed + r, fold_names)
        empty = [k for k, n in enumerate(fold_names) if not parts[n]]
        if empty:  # pragma: no cover - _check_folds guarantees enough groups
            raise DatasetError(f"fold {empty[0]} is empty; use fewer folds")
        assignments.append(tuple(parts[n] for n in fold_names))
    params = {
        **{k: v for k, v in pooled.params.items() if k not in ("val", "test")},
        "folds": folds,
        "repeats": repeats,
        "seed": seed,
    }
    return Folds(
        root=Path(pooled.root),
        class_names=names,
        folds=folds,
        repeats=repeats,
        seed=seed,
        assignments=tuple(assignments),
        skipped=tuple(pooled.skipped),
        warnings=tuple(warn),
        params=params,
    )


def _pooled(
    data: str | os.PathLike[str] | Split,
    seed: int,
    *,
    groups: str | Callable[[str], Hashable | None] | None,
    groups_on: str,
    near_duplicates: str | None,
    on_conflict: str,
    allow_small_classes: bool,
    verify: bool,
    workers: int | None,
    progress: bool | None,
) -> Split:
    """Every file of ``data`` in one split: a Split as it is, a folder scanned by the splitter."""
    if isinstance(data, Split):
        given = {
            "groups": groups is not None,
            "groups_on": groups_on != "name",
            "near_duplicates": near_duplicates is not None,
            "on_conflict": on_conflict != "error",
        }
        if any(given.values()):
            options = ", ".join(k for k, v in given.items() if v)
            raise InvalidArgumentError(
                f"{options} apply when scanning a folder; a Split already carries its groups. "
                "Pass the dataset folder instead, or re-split it with these options."
            )
        pooled = data
    elif isinstance(data, (str, os.PathLike)):
        from tlkit.data._splitter import DatasetSplitter

        pooled = DatasetSplitter(
            val=0.0,
            test=0.0,
            seed=seed,
            groups=groups,
            groups_on=groups_on,
            near_duplicates=near_duplicates,
            on_conflict=on_conflict,
            verify=verify,
            allow_small_classes=allow_small_classes,
            workers=workers,
            progress=progress,
        ).split(data)
    else:
        raise ArgumentTypeError(
            f"data must be a dataset folder (str or os.PathLike) or a Split, got {type_name(data)}"
        )
    return pooled


def _check_folds(
    samples: list[Sample],
    class_names: tuple[str, ...],
    folds: int,
    allow_small: bool,
    warn: list[str],
) -> None:
    if not samples:
        raise DatasetError("no valid images to make folds of")
    n_groups = len(leak_free_groups(samples))
    if n_groups < folds:
        raise DatasetError(
            f"only {n_groups} leak-free group(s) of images (identical files and groups= keys "
            f"count as one), fewer than folds={folds}; use folds <= {n_groups}"
        )
    counts = np.bincount([s.label for s in samples], minlength=len(class_names))
    for c, name in enumerate(class_names):
        n = int(counts[c])
        if n >= folds:
            continue
        if n == 0:
            msg = f"class {name!r} has no valid images; it is kept in class_names but empty"
        else:
            msg = (
                f"class {name!r} has {n} image(s), fewer than folds={folds}: "
                f"{folds - n} fold(s) would test none of it"
            )
        if not allow_small:
            raise SmallClassError(
                msg + "; add images, use fewer folds, or pass allow_small_classes=True"
            )
        warn.append(msg)
        _warnings.warn(msg, stacklevel=3)


# -- leak-free subsets: the cuts folds and learning curves make --------------------------


def derived_seed(seed: int, *parts: object) -> int:
    """A seed for one sub-task (``seed`` and a label such as ``("val", repeat, fold)``).

    Examples
    --------
    >>> derived_seed(0, "val", 0, 1) == derived_seed(0, "val", 0, 1) != derived_seed(0, "val", 0, 2)
    True
    """
    text = "\x00".join(map(str, (seed, *parts)))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")


def leak_free_groups(samples: Sequence[Sample]) -> list[list[Sample]]:
    """The samples as the splitter's leak-free groups.

    Files with identical content, and files sharing a non-empty ``group`` key
    (set by the splitter for duplicates, ``groups=`` matches and
    near-duplicates, or read from a manifest), form one group.

    Examples
    --------
    >>> a, b = Sample("x/1.png", 0, "h1", group="g"), Sample("x/2.png", 0, "h2", group="g")
    >>> [[s.path for s in g] for g in leak_free_groups([a, b, Sample("y/3.png", 1, "h3")])]
    [['x/1.png', 'x/2.png'], ['y/3.png']]
    """
    key = {s.path: (s.group or None) for s in samples}
    return group_samples(list(samples), key.get)


def _labels(samples: Sequence[Sample], num_classes: int) -> np.ndarray:
    return np.bincount(
        np.asarray([s.label for s in samples], dtype=np.int64), minlength=num_classes
    ).astype(np.int64)


def partition(
    samples: Sequence[Sample],
    num_classes: int,
    fractions: Sequence[float],
    seed: int,
    names: Sequence[str],
) -> dict[str, tuple[Sample, ...]]:
    """Cut ``samples`` into stratified parts of the given shares, whole groups only.

    Each class's count per part is its exact share rounded (controlled
    rounding, :func:`~tlkit.data.apportion`); whole groups then fill those
    targets (:func:`~tlkit.data._grouping.assign_groups`). Parts come back
    sorted by path.

    Examples
    --------
    >>> s = [Sample(f"{c}/{i}.png", k, f"{c}{i}") for k, c in enumerate("ab") for i in range(4)]
    >>> parts = partition(s, 2, [0.5, 0.5], seed=0, names=["f0", "f1"])
    >>> [sorted(x.label for x in p) for p in parts.values()]
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    counts = _labels(samples, num_classes)
    targets = apportion(counts, np.asarray(fractions, dtype=np.float64))
    return _place(samples, targets, seed, names)


def _place(
    samples: Sequence[Sample], targets: np.ndarray, seed: int, names: Sequence[str]
) -> dict[str, tuple[Sample, ...]]:
    assigned = assign_groups(leak_free_groups(samples), targets, seed, names=tuple(names))
    given = {s.path: s for s in samples}  # the samples as given (grouping rewrote their keys)
    return {
        n: tuple(sorted((given[s.path] for s in assigned[n]), key=lambda s: s.path)) for n in names
    }


def carve(
    samples: Sequence[Sample], num_classes: int, share: float, seed: int
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """Split off a stratified, group-safe ``share`` of ``samples``: ``(rest, carved)``.

    Examples
    --------
    >>> s = [Sample(f"{c}/{i}.png", k, f"{c}{i}") for k, c in enumerate("ab") for i in range(10)]
    >>> rest, val = carve(s, 2, 0.2, seed=0)
    >>> len(rest), sorted(x.label for x in val)
    (16, [0, 0, 1, 1])
    """
    parts = partition(samples, num_classes, [1.0 - share, share], seed, ("rest", "carved"))
    return parts["rest"], parts["carved"]


def nested_subsets(
    samples: Sequence[Sample],
    num_classes: int,
    fractions: Sequence[float],
    seed: int,
) -> list[tuple[Sample, ...]]:
    """Nested, stratified, group-safe subsets: one per fraction, each inside the next.

    ``fractions`` increase in ``(0, 1]``. Each subset holds about its fraction
    of every class (the exact share of the full list, rounded; at least one
    image of each class present), cut out of the next larger subset, so a
    smaller subset is always contained in a larger one; a fraction of ``1``
    is the whole list.

    Examples
    --------
    >>> s = [Sample(f"{c}/{i}.png", k, f"{c}{i}") for k, c in enumerate("ab") for i in range(10)]
    >>> subs = nested_subsets(s, 2, [0.2, 0.6, 1.0], seed=0)
    >>> [len(x) for x in subs], set(subs[0]) <= set(subs[1]) <= set(subs[2])
    ([4, 12, 20], True)
    """
    counts = _labels(samples, num_classes)
    parent: tuple[Sample, ...] = tuple(sorted(samples, key=lambda s: s.path))
    out: list[tuple[Sample, ...]] = []
    for f in sorted(fractions, reverse=True):
        if f >= 1.0:
            out.append(parent)
            continue
        want = apportion(counts, np.asarray([f, 1.0 - f]))[:, 0]
        want = np.maximum(want, np.minimum(counts, 1))  # every class present keeps an image
        have = _labels(parent, num_classes)
        want = np.minimum(want, have)
        targets = np.stack([want, have - want], axis=1)
        parent = _place(parent, targets, seed, ("keep", "drop"))["keep"]
        out.append(parent)
    return out[::-1]
