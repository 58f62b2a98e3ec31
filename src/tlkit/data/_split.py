"""The result of a split: three parts, the class names, what was skipped, and a manifest."""

from __future__ import annotations

import hashlib
import json
import os
import warnings as _warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tlkit._atomic import atomic_write_text
from tlkit._validation import check_choice
from tlkit.data._part import SplitPart
from tlkit.data._sample import Sample
from tlkit.data._scan import SkippedFile
from tlkit.errors import ManifestError, ManifestMismatchError

__all__ = ["SPLIT_NAMES", "Split"]

SPLIT_NAMES = ("train", "val", "test")
MANIFEST_FORMAT = "tlkit.split"
MANIFEST_VERSION = 1


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
    ) -> Split:
        """Read a manifest written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The manifest file.
        root : str or os.PathLike, optional
            Dataset folder. Default: the manifest's stored root, tried first
            relative to the manifest's folder, then as the stored absolute path.
        verify : {"hash", "exists", None}
            ``"hash"`` re-hashes each file and reports changed ones; ``"exists"``
            only reports missing ones; ``None`` checks nothing.
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

        Returns
        -------
        Split

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
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"manifest {str(path)!r} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(
                f'{str(path)!r} is not a tlkit split manifest (no "format": "{MANIFEST_FORMAT}")'
            )
        if data.get("version") != MANIFEST_VERSION:
            raise ManifestError(
                f"manifest {str(path)!r} has version {data.get('version')!r}; this tlkit reads "
                f"version {MANIFEST_VERSION}"
            )
        root_path = _resolve_root(path, data, root)
        class_names = tuple(str(c) for c in data["class_names"])
        by_split: dict[str, list[Sample]] = {n: [] for n in SPLIT_NAMES}
        skipped = [SkippedFile(s["path"], s["reason"]) for s in data.get("skipped", [])]
        problems: list[str] = []
        leaks = _leaks(data["samples"])
        if leaks and on_leak == "error":
            raise ManifestError(
                f"manifest {str(path)!r} leaks between its parts ({len(leaks)} problem(s)):\n  "
                + "\n  ".join(leaks[:20])
                + (f"\n  ... and {len(leaks) - 20} more" if len(leaks) > 20 else "")
                + "\nRe-split the folder, or load with on_leak='warn' to inspect it."
            )
        for d in data["samples"]:
            rel = str(d["path"])
            _check_relative(rel, path)
            sample = Sample.from_dict(d)
            if not 0 <= sample.label < len(class_names):
                raise ManifestError(
                    f"manifest {str(path)!r}: {rel!r} has label {sample.label}, outside "
                    f"0..{len(class_names) - 1}"
                )
            name = d.get("split")
            if name not in by_split:
                raise ManifestError(
                    f"manifest {str(path)!r}: {rel!r} has split {name!r}; expected one of "
                    f"{', '.join(SPLIT_NAMES)}"
                )
            problem = _check_file(root_path / rel, sample.sha256, verify)
            if problem:
                problems.append(f"{rel}: {problem}")
                skipped.append(SkippedFile(rel, f"{problem} since the split was made"))
                continue
            by_split[name].append(sample)
        if problems and on_mismatch == "error":
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ManifestMismatchError(
                f"{len(problems)} file(s) listed in {str(path)!r} are missing or changed under "
                f"{str(root_path)!r}:\n  {shown}{more}\nRestore them, re-split, or load with "
                f"on_mismatch='skip' to leave them out."
            )
        warnings = list(data.get("warnings", []))
        if leaks:
            message = f"the manifest leaks between its parts: {'; '.join(leaks[:5])}" + (
                f"; ... and {len(leaks) - 5} more" if len(leaks) > 5 else ""
            )
            warnings.append(message)
            _warnings.warn(f"{str(path)!r}: {message}", UserWarning, stacklevel=2)
        if problems:
            warnings.append(f"{len(problems)} file(s) missing or changed since the split was made")
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
            params=dict(data.get("params", {})),
        )


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
    for rel, parts in where.items():
        if len(parts) > 1:
            out.append(f"{rel!r} is listed {len(parts)} times (in {', '.join(parts)})")
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


def _resolve_root(path: Path, data: dict[str, Any], root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        r = Path(root)
        if not r.is_dir():
            raise ManifestError(f"root {str(r)!r} given for manifest {str(path)!r} is not a folder")
        return r
    candidates = []
    if data.get("root") is not None:
        candidates.append(Path(os.path.normpath(path.parent / data["root"])))
    if data.get("root_absolute"):
        candidates.append(Path(data["root_absolute"]))
    for c in candidates:
        if c.is_dir():
            return c
    raise ManifestError(
        f"cannot find the dataset folder of manifest {str(path)!r} (tried "
        f"{', '.join(repr(str(c)) for c in candidates) or 'nothing'}); pass root=..."
    )


def _check_relative(rel: str, manifest: Path) -> None:
    p = PurePosixPath(rel)
    if (
        not rel
        or p.is_absolute()
        or ".." in p.parts
        or "\\" in rel
        or (len(rel) > 1 and rel[1] == ":")
    ):
        raise ManifestError(
            f"manifest {str(manifest)!r} lists {rel!r}, which points outside its dataset root; "
            "entries must be relative paths without '..'. Refusing to load it."
        )


def _check_file(full: Path, sha256: str, verify: str | None) -> str | None:
    if verify is None:
        return None
    if not full.is_file():
        return "missing"
    if verify == "hash" and sha256:
        h = hashlib.sha256()
        with open(full, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != sha256:
            return "changed (content hash differs)"
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
