"""Cross-validation folds: stratified, seeded and leak-free, by the splitter's rules.

:func:`make_folds` pools a folder (scanned by :class:`~tlkit.DatasetSplitter`,
which checks every file, resolves label conflicts and groups duplicates,
``groups=`` matches and near-duplicates) or every part of a
:class:`~tlkit.data.Split`, then places whole groups into ``K`` folds with the
splitter's own assignment. :meth:`Folds.split` turns one fold into a
:class:`~tlkit.data.Split` (the other folds train, with an inner validation
carve-out; this fold tests).
"""

from __future__ import annotations

import os
import warnings as _warnings
from collections.abc import Callable, Hashable, Iterator
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
from tlkit.data._sample import Sample
from tlkit.data._scan import SkippedFile
from tlkit.data._split import Split, SplitPart
from tlkit.data._subsets import carve, derived_seed, leak_free_groups, partition
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError, SmallClassError

__all__ = ["DEFAULT_INNER_VAL", "MAX_FOLDS", "Folds", "make_folds"]

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
    if isinstance(data, Split):
        given = {
            "groups": groups is not None,
            "groups_on": groups_on != "name",
            "near_duplicates": near_duplicates is not None,
            "on_conflict": on_conflict != "error",
        }
        if any(given.values()):
            names = ", ".join(k for k, v in given.items() if v)
            raise InvalidArgumentError(
                f"{names} apply when scanning a folder; a Split already carries its groups. "
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
