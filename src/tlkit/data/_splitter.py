"""DatasetSplitter: stratified, seeded, three-way, leak-free splits."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._validation import (
    check_bool,
    check_choice,
    check_int,
    check_path,
    check_seed,
    check_split_share,
    check_str_list,
    type_name,
)
from tlkit.data._grouping import (
    apportion,
    assign_groups,
    group_function,
    group_samples,
    near_pairs,
    resolve_conflicts,
    split_targets,
)
from tlkit.data._sample import Sample
from tlkit.data._scan import EXECUTORS, SkippedFile, Unusable, inspect_files, list_class_tree
from tlkit.data._split import SPLIT_NAMES, Split, parts_from_assignment
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError, SmallClassError

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
        Seed of the assignment (an int >= 0). The same files and seed give the
        same split on any machine, whatever order the file system lists them in.
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

    Raises
    ------
    ArgumentTypeError
        An argument of the wrong type (a ``TypeError``), e.g. ``seed="42"``.
    InvalidArgumentError
        An argument out of range (a ``ValueError``), naming the allowed values.

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
        self.val = check_split_share("val", val)
        self.test = check_split_share("test", test)
        fracs = [x for x in (self.val, self.test) if isinstance(x, float)]
        if sum(fracs) >= 1.0:
            raise InvalidArgumentError(
                f"val={val!r} and test={test!r} leave no training data (their fractions sum to "
                f"{sum(fracs):g} >= 1); choose fractions that sum to less than 1, e.g. 0.15 and 0.15"
            )
        self.seed = check_seed("seed", seed)
        self.on_conflict = check_choice("on_conflict", on_conflict, _CONFLICT_POLICIES)
        self.groups_on = check_choice("groups_on", groups_on, ("name", "path"))
        self.groups = groups
        self._group_fn = group_function(groups, groups_on)
        self.near_duplicates = check_choice(
            "near_duplicates", near_duplicates, (None, "report", "group")
        )
        self.verify = check_bool("verify", verify)
        self.allow_small_classes = check_bool("allow_small_classes", allow_small_classes)
        self.workers = check_int("workers", workers, minimum=1, allow_none=True)
        self.progress = None if progress is None else check_bool("progress", progress)
        self.executor = check_choice("executor", executor, EXECUTORS)

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
        root = check_path("root", root)
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
        return self._split(root, class_names, files, skipped, labels_from="folders")

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
        items = _pairs(pairs)
        if not items:
            raise DatasetError("split_samples() got no (path, label) pairs")
        root_path = check_path("root", root, allow_none=True)
        if root_path is None:
            absolute = [os.path.abspath(p) for p, _ in items]
            root_path = Path(os.path.commonpath([os.path.dirname(a) for a in absolute]))
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
        names = (
            sorted({lbl for _, lbl in files})
            if class_names is None
            else check_str_list("class_names", _as_list(class_names))
        )
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
        labels_from: str | None = None,
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
            if isinstance(info, Unusable):
                skipped.append(SkippedFile(rel, info.reason, info.code))
                continue
            samples.append(
                Sample(rel, label_of[cls], info.sha256, info.orientation, info.width, info.height)
            )
        samples, conflict_skips, conflict_warn = resolve_conflicts(
            samples, class_names, self.on_conflict
        )
        skipped.extend(conflict_skips)
        warn.extend(conflict_warn)

        counts = np.bincount([s.label for s in samples], minlength=len(class_names))
        targets = self._targets(counts)
        self._check_small(class_names, counts, targets, warn)

        params = self.get_config()
        if labels_from is not None:  # Split.load checks each label against its folder
            params["labels_from"] = labels_from
        near = near_pairs(root, samples, self.workers, warn) if self.near_duplicates else []
        grouped = group_samples(
            samples,
            self._group_fn,
            groups=self.groups,
            groups_on=self.groups_on,
            params=params,
            near=near if self.near_duplicates == "group" else (),
        )
        assigned = assign_groups(grouped, targets, self.seed)
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

    def _targets(self, counts: np.ndarray) -> np.ndarray:
        """Per-class, per-split target counts (classes x 3), each within 1 of its exact share."""
        return split_targets(counts, self.val, self.test)

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
                    msg
                    + "; add images, lower the val= or test= share, or pass allow_small_classes=True"
                )
            if counts[c] == 0:
                msg = f"class {name!r} has no valid images; it is kept in class_names but empty"
            warn.append(msg)
            warnings.warn(msg, stacklevel=3)


def _as_list(value: Any) -> Any:
    """A list from a one-shot iterable (a generator); anything else as given, to be checked."""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Sequence)):
        return list(value)
    return value


def _pairs(pairs: Any) -> list[tuple[Path, str]]:
    """``(path, label)`` pairs as ``(Path, str)``; a pair of another shape is a type error."""
    if isinstance(pairs, (str, bytes, os.PathLike)) or not isinstance(pairs, Iterable):
        raise ArgumentTypeError(
            f"pairs must be an iterable of (path, label) pairs, got {type_name(pairs)}"
        )
    items = []
    for i, pair in enumerate(pairs):
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not isinstance(pair[0], (str, os.PathLike))
        ):
            raise ArgumentTypeError(
                f"pairs[{i}] must be a (path, label) pair with a str or os.PathLike path, "
                f"got {pair!r}"
            )
        items.append((Path(pair[0]), str(pair[1])))
    return items
