"""Leak-free groups for the splitter: identical files, ``groups=`` keys, near-duplicates.

Files that must stay in one split are unioned into groups here (identical
content, the same ``groups=`` key, perceptual near-duplicates); identical files
under different labels are resolved first (:func:`resolve_conflicts`).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tlkit._validation import type_name
from tlkit.data._sample import Sample
from tlkit.data._scan import SkippedFile
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError, LabelConflictError

__all__ = ["group_function", "group_samples", "near_pairs", "resolve_conflicts"]


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
                "on_conflict='drop' (drop every copy) or 'keep_first'."
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
        key = group[0].path if len(group) > 1 else ""
        out.append([replace(s, group=key or s.path) for s in group])
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
