"""The result of a split: :class:`Split` (three parts, the class names, what was skipped, and a
manifest) and :class:`SplitPart`, the ordered, read-only sequence of samples that makes one part.
"""

from __future__ import annotations

import json
import os
import warnings as _warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from tlkit._atomic import atomic_write_text
from tlkit._validation import check_choice, check_int
from tlkit.data import _manifest
from tlkit.data._grouping import SPLIT_NAMES
from tlkit.data._manifest import MANIFEST_FORMAT, MANIFEST_VERSION
from tlkit.data._pipeline import to_dataset
from tlkit.data._sample import Sample, sample_labels, sample_paths
from tlkit.data._scan import SkippedFile, inspect_file
from tlkit.errors import DatasetError, ManifestError, ManifestMismatchError

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["SPLIT_NAMES", "Split", "SplitPart"]


@dataclass(frozen=True)
class SplitPart(Sequence[Sample]):
    """An ordered, read-only sequence of samples (``split.train`` and friends).

    Parameters
    ----------
    name : str
        ``"train"``, ``"val"`` or ``"test"``.
    root : pathlib.Path
        Folder the sample paths are relative to.
    class_names : tuple of str
        Class names; ``sample.label`` indexes into it.
    samples : tuple of Sample
        The samples, sorted by relative path.

    Examples
    --------
    >>> part = SplitPart("train", Path("."), ("a", "b"), (Sample("a/1.png", 0),))
    >>> len(part), part.labels.tolist()
    (1, [0])
    """

    name: str
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[Sample, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> SplitPart: ...
    def __getitem__(self, i: int | slice) -> Sample | SplitPart:
        if isinstance(i, slice):
            return SplitPart(self.name, self.root, self.class_names, self.samples[i])
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"SplitPart(name={self.name!r}, n={len(self)}, root={str(self.root)!r})"

    @property
    def paths(self) -> list[str]:
        """Absolute file paths, in sample order."""
        return sample_paths(self.root, self.samples)

    @property
    def labels(self) -> np.ndarray:
        """Class indices as an ``int32`` array, in sample order."""
        return sample_labels(self.samples)

    @property
    def num_classes(self) -> int:
        """Number of classes of the split this part belongs to."""
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name (every class listed, zeros included)."""
        counts = (
            np.bincount(self.labels, minlength=self.num_classes)
            if len(self)
            else (np.zeros(self.num_classes, dtype=int))
        )
        return {c: int(n) for c, n in zip(self.class_names, counts, strict=True)}

    def to_dataset(self, image_size: int | tuple[int, int] = 224, **kwargs: Any) -> tf.data.Dataset:
        """Return a ``tf.data.Dataset`` of ``(images, labels)`` batches.

        See :func:`tlkit.data.to_dataset` for the arguments.
        """
        return to_dataset(self, image_size=image_size, **kwargs)


@dataclass(frozen=True)
class Split:
    """A three-way, stratified, leak-free split of a dataset.

    Made by :class:`tlkit.DatasetSplitter`; saved and re-read with :meth:`save`
    and :meth:`load`.

    Attributes
    ----------
    root : pathlib.Path
        Folder the sample paths are relative to.
    class_names : tuple of str
        Class names in label order (sorted folder names).
    train, val, test : SplitPart
        The three parts; every valid file is in exactly one.
    skipped : tuple of SkippedFile
        Every file that did not enter a part, with the reason.
    warnings : tuple of str
        Things a user should know (small classes allowed, conflicts resolved, ...).
    params : dict
        The splitter settings that made this split (seed, fractions, ...).

    Examples
    --------
    >>> import tempfile
    >>> from tlkit import DatasetSplitter
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 20, "b": 20, "c": 20}, seed=0)
    >>> split = DatasetSplitter(val=0.2, test=0.2, seed=0).split(root)
    >>> len(split.train), len(split.val), len(split.test)
    (36, 12, 12)
    >>> path = split.save(Path(root) / "split.json")
    >>> Split.load(path).test.paths == split.test.paths
    True
    """

    root: Path
    class_names: tuple[str, ...]
    train: SplitPart
    val: SplitPart
    test: SplitPart
    skipped: tuple[SkippedFile, ...] = ()
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def parts(self) -> dict[str, SplitPart]:
        """The three parts by name, in the order train, val, test."""
        return {"train": self.train, "val": self.val, "test": self.test}

    def __len__(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)

    def __repr__(self) -> str:
        return (
            f"Split(root={str(self.root)!r}, classes={len(self.class_names)}, "
            f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, "
            f"skipped={len(self.skipped)})"
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Class x split counts: ``{class_name: {"train": n, "val": n, "test": n}}``."""
        per_part = {name: part.class_counts() for name, part in self.parts.items()}
        return {c: {name: per_part[name][c] for name in SPLIT_NAMES} for c in self.class_names}

    def imbalance_ratio(self) -> float:
        """Largest class size over smallest class size (all splits together)."""
        totals = [sum(v.values()) for v in self.counts().values()]
        return max(totals) / max(1, min(totals)) if totals else float("nan")

    def summary(self) -> str:
        """A plain-text table of class x split counts, imbalance and skipped files.

        Returns
        -------
        str
            Ready to print.
        """
        counts = self.counts()
        width = max([5, *(len(c) for c in self.class_names)])
        head = f"{'class':<{width}}  {'train':>6} {'val':>6} {'test':>6} {'total':>6} {'share':>6}"
        lines = [head, "-" * len(head)]
        total_all = max(1, len(self))
        for c in self.class_names:
            row = counts[c]
            tot = sum(row.values())
            lines.append(
                f"{c:<{width}}  {row['train']:>6} {row['val']:>6} {row['test']:>6} "
                f"{tot:>6} {tot / total_all:>6.1%}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{'total':<{width}}  {len(self.train):>6} {len(self.val):>6} {len(self.test):>6} "
            f"{len(self):>6} {1:>6.0%}"
        )
        lines.append(f"imbalance ratio (largest / smallest class): {self.imbalance_ratio():.2f}")
        ndup = sum(
            1 for n in Counter(s.group for p in self.parts.values() for s in p).values() if n > 1
        )
        lines.append(f"groups kept inside one split (duplicates, groups=): {ndup}")
        if "groups_matched" in self.params:
            on = self.params.get("groups_on")
            where = f" (matched on the file {'path' if on == 'path' else 'name'})" if on else ""
            lines.append(
                f"groups={self.params.get('groups')!r}{where}: "
                f"{self.params['groups_matched']} of {len(self)} files matched, "
                f"{self.params.get('groups_formed', '?')} groups formed"
            )
        if "near_duplicate_pairs" in self.params:
            lines.append(
                f"near-duplicate pairs (perceptual hash): {self.params['near_duplicate_pairs']}, "
                f"{self.params.get('near_duplicate_pairs_across_splits', '?')} across splits"
            )
        lines.append(f"skipped files: {len(self.skipped)}")
        for reason, n in Counter(_reason_kind(s.reason) for s in self.skipped).most_common():
            lines.append(f"  {n:>5}  {reason}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)

    # -- manifest ---------------------------------------------------------------------------

    def to_dict(self, manifest_dir: Path | None = None) -> dict[str, Any]:
        """Return the JSON-ready manifest (see :meth:`save`)."""
        root_abs = Path(self.root).resolve()
        root_rel: str | None = None
        if manifest_dir is not None:
            try:
                root_rel = Path(os.path.relpath(root_abs, Path(manifest_dir).resolve())).as_posix()
            except ValueError:  # different drives on Windows
                root_rel = None
        samples = []
        for name, part in self.parts.items():
            for s in part:
                d = s.to_dict()
                d["split"] = name
                samples.append(d)
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "root": root_rel,
            "root_absolute": str(root_abs),
            "class_names": list(self.class_names),
            "params": self.params,
            "samples": samples,
            "skipped": [s.to_dict() for s in self.skipped],
            "warnings": list(self.warnings),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the split as a JSON manifest.

        The manifest holds paths relative to the dataset root, one SHA-256 per
        file, the EXIF orientation and size of each image, the skipped files
        and the splitter settings. The root is stored relative to the manifest
        (so a dataset moved together with its manifest still loads) and as an
        absolute path.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write, e.g. ``"photos.split.json"``.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict(manifest_dir=path.parent)
        atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None,
        verify: str | None = "hash",
        on_mismatch: str = "error",
        on_leak: str = "error",
        on_edit: str = "error",
        max_bytes: int | None = None,
    ) -> Split:
        """Read a manifest written by :meth:`save`, trusting none of it.

        Every field is checked for its exact type and range; a malformed file
        raises :class:`~tlkit.errors.ManifestError`, never another exception.

        Parameters
        ----------
        path : str or os.PathLike
            The manifest file.
        root : str or os.PathLike, optional
            Dataset folder. Default: the manifest's stored root, tried first
            relative to the manifest's folder, then as the stored absolute path,
            and used only if it is the manifest's folder or below it (after
            resolving ``..`` and symlinks), as when ``tlkit split photos/``
            writes ``photos.split.json`` beside ``photos/``. A manifest kept
            elsewhere (``out/split.json`` for ``photos/``) needs ``root=``: a
            manifest must not make tlkit read files outside its folder unless
            you say so. Either way every entry must stay inside the root: no
            absolute paths, no ``..``, no symlink leading out.
        verify : {"hash", "exists", None}
            ``"hash"`` re-hashes each file and reports changed ones (also a
            recorded EXIF orientation or size that differs from the file's);
            ``"exists"`` only reports missing ones; ``None`` checks nothing.
            Every entry must carry its SHA-256 whatever ``verify`` says.
        on_mismatch : {"error", "skip"}
            ``"error"`` raises :class:`~tlkit.errors.ManifestMismatchError`
            listing the missing or changed files; ``"skip"`` moves them to
            ``skipped`` with the reason.
        on_leak : {"error", "warn"}
            A manifest that lists one file twice (in two parts or in one), or
            splits a group (files with one ``group`` key, or identical
            content) across parts, would leak test images into training.
            ``"error"`` raises :class:`~tlkit.errors.ManifestError` naming the
            files; ``"warn"`` loads it as written and reports the leaks in a
            warning and in ``warnings``.
        on_edit : {"error", "warn"}
            The assignment is re-derived from the stored seed, ``val``/``test``,
            labels and groups (the splitter's own algorithm). A manifest whose
            parts differ (a test file moved to train, a file relabelled, a group
            renamed), or that does not record the settings, was edited by
            hand: ``"error"`` raises :class:`~tlkit.errors.ManifestMismatchError`
            naming the first files that differ; ``"warn"`` loads it as written
            and reports them in a warning and in ``warnings``.
        max_bytes : int, optional
            Largest manifest read (default ``MAX_MANIFEST_BYTES`` of
            ``tlkit.data._manifest``: 64 MiB, about 250,000 files). JSON nested
            deeper than 16 levels, ``NaN``/``Infinity`` and repeated keys are
            refused too.

        Returns
        -------
        Split

        Raises
        ------
        ManifestError
            The file is missing, too large, not UTF-8 JSON, not a version-1
            manifest, has a field of the wrong type or range, an entry outside
            the root, an empty or missing hash, duplicate or fewer than two
            class names, or leaks between parts (``on_leak="error"``).
        ManifestMismatchError
            Files missing or changed (``on_mismatch="error"``), or the manifest
            edited (``on_edit="error"``).

        Examples
        --------
        A manifest whose parts share files or groups loads with a warning instead
        of an error (not run: it needs such a manifest; the class example runs
        :meth:`save` and :meth:`load`):

        >>> split = Split.load("photos.split.json", on_leak="warn")  # doctest: +SKIP
        """
        check_choice("verify", verify, ("hash", "exists", None))
        check_choice("on_mismatch", on_mismatch, ("error", "skip"))
        check_choice("on_leak", on_leak, ("error", "warn"))
        check_choice("on_edit", on_edit, ("error", "warn"))
        limit = _manifest.MAX_MANIFEST_BYTES if max_bytes is None else max_bytes
        check_int("max_bytes", limit, minimum=1)
        path = Path(path)
        where = repr(str(path))
        manifest = _manifest.parse_manifest(_manifest.read_manifest(path, limit), path)
        leaks, edits = _leaks_and_edits(manifest, where, on_leak, on_edit)
        root_path = _manifest.resolve_root(path, manifest, root)
        real_root = os.path.realpath(root_path)
        class_names = manifest.class_names
        by_split: dict[str, list[Sample]] = {n: [] for n in SPLIT_NAMES}
        skipped = list(manifest.skipped)
        problems: list[str] = []
        for sample, name in manifest.entries:
            rel = sample.path
            _manifest.check_inside(root_path, real_root, rel, where)
            found = _check_file(root_path / rel, sample, verify)
            if found:
                code, problem = found
                problems.append(f"{rel}: {problem}")
                skipped.append(SkippedFile(rel, f"{problem} since the split was made", code))
                continue
            by_split[name].append(sample)
        if problems and on_mismatch == "error":
            raise _mismatch_error(problems, where, root_path)
        warnings = _load_warnings(manifest, where, leaks, edits, problems)
        parts = {
            n: SplitPart(n, root_path, class_names, tuple(sorted(v, key=lambda s: s.path)))
            for n, v in by_split.items()
        }
        return cls(
            root=root_path,
            class_names=class_names,
            train=parts["train"],
            val=parts["val"],
            test=parts["test"],
            skipped=tuple(skipped),
            warnings=tuple(warnings),
            params=manifest.params,
        )


def _leaks_and_edits(
    manifest: _manifest.ParsedManifest, where: str, on_leak: str, on_edit: str
) -> tuple[list[str], list[str]]:
    """A manifest's leaks between parts and hand edits; raises for those ``on_*="error"`` refuses."""
    rows = [{**s.to_dict(), "split": part} for s, part in manifest.entries]
    leaks = _leaks(rows)
    if leaks and on_leak == "error":
        raise ManifestError(
            f"manifest {where} leaks between its parts ({len(leaks)} problem(s)):\n  "
            + "\n  ".join(leaks[:20])
            + (f"\n  ... and {len(leaks) - 20} more" if len(leaks) > 20 else "")
            + "\nRe-split the folder, or load with on_leak='warn' to inspect it."
        )
    edits = _manifest.edit_problems(manifest)
    if edits and on_edit == "error":
        raise ManifestMismatchError(
            f"manifest {where} was edited since tlkit wrote it ({len(edits)} problem(s)):\n  "
            + "\n  ".join(edits[:5])
            + (f"\n  ... and {len(edits) - 5} more" if len(edits) > 5 else "")
            + "\nRe-split the folder, or load with on_edit='warn' to use it as written."
        )
    return leaks, edits


def _mismatch_error(problems: list[str], where: str, root_path: Path) -> ManifestMismatchError:
    """The error for files missing or changed since the split was made (``on_mismatch="error"``)."""
    shown = "\n  ".join(problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return ManifestMismatchError(
        f"{len(problems)} file(s) listed in {where} are missing or changed under "
        f"{str(root_path)!r}:\n  {shown}{more}\nRestore them, re-split, or pass "
        f"on_mismatch='skip' to leave them out."
    )


def _load_warnings(
    manifest: _manifest.ParsedManifest,
    where: str,
    leaks: list[str],
    edits: list[str],
    problems: list[str],
) -> list[str]:
    """A loaded split's warnings: the stored ones, hand edits and leaks (each also warned, at the
    caller of :meth:`Split.load`), then the count of files missing or changed."""
    warnings = list(manifest.warnings)
    if edits:
        message = f"the manifest was edited since tlkit wrote it: {'; '.join(edits[:5])}" + (
            f"; ... and {len(edits) - 5} more" if len(edits) > 5 else ""
        )
        warnings.append(message)
        _warnings.warn(f"{where}: {message}", UserWarning, stacklevel=3)
    if leaks:
        message = f"the manifest leaks between its parts: {'; '.join(leaks[:5])}" + (
            f"; ... and {len(leaks) - 5} more" if len(leaks) > 5 else ""
        )
        warnings.append(message)
        _warnings.warn(f"{where}: {message}", UserWarning, stacklevel=3)
    if problems:
        warnings.append(f"{len(problems)} file(s) missing or changed since the split was made")
    return warnings


def _leaks(samples: list[dict[str, Any]]) -> list[str]:
    """Files listed twice, and groups or identical files that straddle parts."""
    out: list[str] = []
    where: dict[str, list[str]] = defaultdict(list)
    by_group: dict[str, set[str]] = defaultdict(set)
    by_group_files: dict[str, list[str]] = defaultdict(list)
    by_hash: dict[str, set[str]] = defaultdict(set)
    by_hash_files: dict[str, list[str]] = defaultdict(list)
    for d in samples:
        rel, part = str(d.get("path")), str(d.get("split"))
        where[rel].append(part)
        group, sha = str(d.get("group") or ""), str(d.get("sha256") or "")
        if group:
            by_group[group].add(part)
            by_group_files[group].append(rel)
        if sha:
            by_hash[sha].add(part)
            by_hash_files[sha].append(rel)
    for rel, listed in where.items():
        if len(listed) > 1:
            out.append(f"{rel!r} is listed {len(listed)} times (in {', '.join(listed)})")
    for group, parts in by_group.items():
        files = sorted(set(by_group_files[group]))
        if len(parts) > 1 and len(files) > 1:  # one file in two parts is reported above
            out.append(
                f"group {group!r} is split across {', '.join(sorted(parts))}: "
                + ", ".join(map(repr, files[:5]))
                + (" ..." if len(files) > 5 else "")
            )
    for sha, parts in by_hash.items():
        files = sorted(set(by_hash_files[sha]))
        if len(parts) > 1 and len(files) > 1:
            out.append(
                f"identical files (sha256 {sha[:12]}...) in {', '.join(sorted(parts))}: "
                + ", ".join(map(repr, files[:5]))
            )
    return out


def _reason_kind(reason: str) -> str:
    """Collapse per-file details so the summary tallies reasons by kind."""
    return reason.split(":")[0].split(" (")[0]


def _check_file(full: Path, sample: Sample, verify: str | None) -> tuple[str, str] | None:
    """Why the file on disk is not the one the manifest records: ``(skip code, reason)``.

    ``None``: it is the one recorded.
    """
    if verify is None:
        return None
    if not full.is_file():
        return "missing", "missing"
    if verify == "hash":
        try:
            info = inspect_file(full, verify=False)
        except DatasetError as exc:
            return "changed", f"changed (now unreadable: {exc})"
        if info.sha256 != sample.sha256:
            return "changed", "changed (content hash differs)"
        stored = (sample.orientation, sample.width, sample.height)
        if (info.orientation, info.width, info.height) != stored:
            return "changed", (
                "changed (the manifest records orientation {}, size {}x{}; the file has "
                "orientation {}, size {}x{})".format(
                    *stored, info.orientation, info.width, info.height
                )
            )
    return None


def parts_from_assignment(
    root: Path, class_names: Sequence[str], assigned: dict[str, list[Sample]]
) -> dict[str, SplitPart]:
    """Build the three sorted :class:`SplitPart` objects from lists of samples."""
    names = tuple(class_names)
    return {
        n: SplitPart(n, root, names, tuple(sorted(assigned.get(n, []), key=lambda s: s.path)))
        for n in SPLIT_NAMES
    }
