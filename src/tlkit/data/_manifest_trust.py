"""Trusting a parsed manifest: where its images are, and whether it was edited by hand.

:meth:`tlkit.data.Split.load` calls :func:`resolve_root` (the image folder is
confined to the manifest's own folder unless the caller names it),
:func:`check_inside` per entry (no symlink leads out of the root) and
:func:`edit_problems` (the stored assignment is re-derived from the stored
seed, settings, labels and groups).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from tlkit.data._assign import assign_groups, split_targets
from tlkit.data._manifest import ParsedManifest
from tlkit.data._sample import Sample
from tlkit.errors import ManifestError, TlkitError

__all__ = ["check_inside", "edit_problems", "resolve_root"]


# -- where the images are ------------------------------------------------------------------------


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def resolve_root(path: Path, manifest: ParsedManifest, root: str | os.PathLike[str] | None) -> Path:
    """The image folder: ``root`` if the caller gives one, else the stored root if it is confined.

    A stored root (``root``, relative to the manifest's folder, then
    ``root_absolute``) is used only when, with ``..`` and symlinks resolved, it
    is the manifest's own folder or inside it: a manifest from elsewhere cannot
    make tlkit read (and embed in a report) files outside its folder.
    """
    where = repr(str(path))
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise ManifestError(f"root given for manifest {where} must be a path, got {root!r}")
        r = Path(root)
        if not r.is_dir():
            raise ManifestError(f"root {str(r)!r} given for manifest {where} is not a folder")
        return r
    home = os.path.realpath(path.parent)
    tried: list[str] = []
    outside: list[str] = []
    for key, stored in (("root", manifest.root), ("root_absolute", manifest.root_absolute)):
        if stored is None:
            continue
        candidate = Path(os.path.normpath(path.parent / stored))
        real = os.path.realpath(candidate)
        if not _inside(real, home):
            if not any(real in o for o in outside):
                outside.append(f"{key} {stored!r} is {real!r}")
            continue
        if candidate.is_dir():
            return candidate
        tried.append(repr(str(candidate)))
    if outside:
        raise ManifestError(
            f"manifest {where} points at images outside its own folder {home!r} "
            f"({'; '.join(outside)}). A manifest's stored root must be its folder or below "
            "it, so that a manifest from elsewhere cannot read your other files. If you trust "
            "this manifest, pass the dataset folder yourself: root='DATASET_FOLDER'."
        )
    raise ManifestError(
        f"cannot find the dataset folder of manifest {where} (tried "
        f"{', '.join(tried) or 'nothing'}); pass root=..."
    )


def check_inside(root: Path, real_root: str, rel: str, where: str) -> None:
    """Refuse an entry that a symlink takes out of the root."""
    real = os.path.realpath(os.path.join(root, *rel.split("/")))
    if not _inside(real, real_root):
        raise ManifestError(
            f"manifest {where} lists {rel!r}, which a symbolic link takes outside the dataset "
            f"folder {str(root)!r} (to {real!r}). Refusing to load it; copy the file into the "
            "folder instead of linking it."
        )


# -- hand edits ----------------------------------------------------------------------------------


def edit_problems(manifest: ParsedManifest) -> list[str]:
    """Where the stored assignment differs from what the splitter makes of the stored inputs.

    The assignment is a function of the samples' labels and groups, the
    ``val``/``test`` shares and the seed (:func:`~tlkit.data._assign.assign_groups`),
    all in the manifest. Groups are read from the stored ``group`` keys
    (``groups=`` matches and near-duplicates cannot be recomputed without
    running the stored regex or decoding images), checked for the shape the
    splitter gives them: each named after its first path, identical files in one.
    Returns an empty list for an unedited manifest.
    """
    params, names = manifest.params, manifest.class_names
    if not all(k in params for k in ("seed", "val", "test")):
        return [
            "it does not record the splitter settings (params seed, val, test), so its "
            "assignment cannot be checked"
        ]
    stored: dict[str, str] = {}
    for s, part in manifest.entries:
        if s.path in stored:
            return [f"{s.path!r} is listed more than once"]
        stored[s.path] = part
    problems: list[str] = []
    if params.get("labels_from") == "folders":
        for s, _ in manifest.entries:
            top = s.path.split("/", 1)[0]
            if top != names[s.label]:
                problems.append(
                    f"{s.path!r} has label {s.label} ({names[s.label]!r}) but lies in the "
                    f"class folder {top!r}"
                )
    groups: dict[str, list[Sample]] = defaultdict(list)
    group_of_hash: dict[str, str] = {}
    for s, _ in manifest.entries:
        groups[s.group].append(s)
        other = group_of_hash.setdefault(s.sha256, s.group)
        if other != s.group:
            problems.append(
                f"{s.path!r} has the same content as the files of group {other!r} but is in "
                f"group {s.group!r}"
            )
    for key, members in groups.items():
        first = min(m.path for m in members)
        if key != first:
            problems.append(
                f"group {key!r} ({len(members)} file(s)) is not named after its first file "
                f"{first!r}, as the splitter names groups"
            )
    if problems:
        return problems
    try:
        labels = [s.label for s, _ in manifest.entries]
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(names))
        targets = split_targets(counts, params["val"], params["test"])
    except TlkitError as exc:
        return [f"its settings cannot have made it: {exc}"]
    ordered = [sorted(g, key=lambda s: s.path) for g in groups.values()]
    derived = assign_groups(ordered, targets, params["seed"])
    moved = sorted(
        (s.path, stored[s.path], part)
        for part, samples in derived.items()
        for s in samples
        if stored[s.path] != part
    )
    return [
        f"{p!r} is in {was} but its seed and settings put it in {want}" for p, was, want in moved
    ]
