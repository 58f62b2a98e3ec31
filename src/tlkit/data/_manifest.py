"""The split manifest, read without trusting it: limits, a schema, then where and whether to trust it.

:meth:`tlkit.data.Split.load` calls :func:`read_manifest` (a regular file of at
most ``max_bytes``, strict UTF-8, JSON nested at most :data:`MAX_JSON_DEPTH`
deep, no ``NaN``/``Infinity``, no repeated keys), then :func:`parse_manifest`
(every field checked for its exact type and range), then the trust checks:
:func:`resolve_root` (the image folder is confined to the manifest's own
folder unless the caller names it), :func:`check_inside` per entry (no symlink
leads out of the root) and :func:`edit_problems` (the stored assignment is
re-derived from the stored seed, settings, labels and groups). Every failure is
a :class:`~tlkit.errors.ManifestError` naming the manifest and the field.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from tlkit.data._grouping import SPLIT_NAMES, assign_groups, split_targets
from tlkit.data._sample import Sample
from tlkit.data._scan import SKIP_CODES, SkippedFile
from tlkit.errors import ManifestError, TlkitError

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "MAX_JSON_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_TEXT_CHARS",
    "ParsedManifest",
    "check_inside",
    "edit_problems",
    "parse_manifest",
    "read_manifest",
    "resolve_root",
]

MANIFEST_FORMAT = "tlkit.split"
#: Version 2 records each skipped file's ``code``; version 1 (no codes) is still read,
#: its skips with the code ``"unknown"``.
MANIFEST_VERSION = 2
READ_VERSIONS = (1, 2)

#: Largest manifest read, in bytes (64 MiB: about 250,000 files). ``Split.load(max_bytes=...)``
#: raises it for one call; ``tlkit.data._manifest.MAX_MANIFEST_BYTES`` for all.
MAX_MANIFEST_BYTES = 64 * 2**20

#: Deepest nesting of JSON arrays and objects accepted (a manifest needs 3).
MAX_JSON_DEPTH = 16

#: Longest string accepted in a path, class name, group key, reason or warning.
MAX_TEXT_CHARS = 4096

_MAX_PIXELS_SIDE = 2**31 - 1
_MAX_SEED = 2**64 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOP_KEYS = frozenset(
    {"format", "version", "root", "root_absolute", "class_names", "params", "samples"}
    | {"skipped", "warnings"}
)
_SAMPLE_KEYS = frozenset(
    {"path", "label", "split", "sha256", "orientation", "width", "height", "group"}
)
_REQUIRED_SAMPLE_KEYS = ("path", "label", "split", "sha256")


@dataclass(frozen=True)
class ParsedManifest:
    """A manifest whose every field has the type and range :meth:`Split.save` writes."""

    root: str | None
    root_absolute: str | None
    class_names: tuple[str, ...]
    params: dict[str, Any]
    entries: tuple[tuple[Sample, str], ...]  # (sample, part name), in file order
    skipped: tuple[SkippedFile, ...]
    warnings: tuple[str, ...]


# -- reading -----------------------------------------------------------------------------------


def read_manifest(path: Path, max_bytes: int) -> Any:
    """The JSON value in ``path``: a regular file of at most ``max_bytes``, strict UTF-8 JSON."""
    where = repr(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ManifestError(f"manifest {where} does not exist") from None
    except OSError as exc:
        raise ManifestError(f"cannot open manifest {where}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(
                f"manifest {where} is not a regular file (a folder, pipe or device)"
            )
        if st.st_size > max_bytes:
            raise ManifestError(_too_big(where, st.st_size, max_bytes))
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {where}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise ManifestError(_too_big(where, len(raw), max_bytes))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {where} is not UTF-8 text: {exc}") from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ManifestError(
            f"manifest {where} nests JSON {depth} levels deep; a split manifest needs 3 and "
            f"at most {MAX_JSON_DEPTH} are read. It is not a tlkit manifest."
        )
    try:
        return json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except ManifestError as exc:
        raise ManifestError(f"manifest {where} is not valid: {exc}") from None
    except (ValueError, RecursionError, OverflowError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestError(f"manifest {where} is not valid JSON: {exc}") from None


def _too_big(where: str, size: int, max_bytes: int) -> str:
    return (
        f"manifest {where} is {size:,} bytes, over the {max_bytes:,}-byte limit; if you trust "
        "it, pass max_bytes= to Split.load (or raise tlkit.data._manifest.MAX_MANIFEST_BYTES)"
    )


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside strings (linear time, no recursion)."""
    code = _STRING.sub("", text).encode("utf-8")
    a = np.frombuffer(code, dtype=np.uint8)
    idx = np.flatnonzero((a == 0x5B) | (a == 0x7B) | (a == 0x5D) | (a == 0x7D))
    if not len(idx):
        return 0
    b = a[idx]
    steps = np.where((b == 0x5B) | (b == 0x7B), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def _no_constant(name: str) -> Any:
    raise ManifestError(f"{name} is not a number a manifest may hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ManifestError(f"{text} is out of range for a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ManifestError(f"the key {k!r} appears twice in one object")
        out[k] = v
    return out


# -- the schema --------------------------------------------------------------------------------


def parse_manifest(data: Any, path: Path) -> ParsedManifest:
    """Check every field of a decoded manifest for its exact type and range."""
    where = repr(str(path))

    def bad(field: str, want: str, got: Any) -> ManifestError:
        return ManifestError(
            f"manifest {where}: {field} must be {want}, got {_show(got)}; the file was "
            "edited or damaged. Re-split the folder (tlkit split) to write a new one."
        )

    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(
            f'{where} is not a tlkit split manifest (no "format": "{MANIFEST_FORMAT}")'
        )
    version = data.get("version")
    if type(version) is not int or version not in READ_VERSIONS:
        raise ManifestError(
            f"manifest {where} has version {_show(version)}; this tlkit reads versions "
            f"{', '.join(map(str, READ_VERSIONS))}"
        )
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ManifestError(
            f"manifest {where} has unknown field(s) {unknown}; expected only {sorted(_TOP_KEYS)}"
        )
    for key in ("class_names", "samples"):
        if key not in data:
            raise ManifestError(f"manifest {where} has no {key!r} field")
    root = data.get("root")
    root_abs = data.get("root_absolute")
    for key, value in (("root", root), ("root_absolute", root_abs)):
        if value is not None and not _is_text(value, nonempty=True):
            raise bad(key, "a path (a non-empty string without NUL) or null", value)

    names = data["class_names"]
    if not isinstance(names, list) or not all(_is_text(c, nonempty=True) for c in names):
        raise bad("class_names", "a list of non-empty strings", names)
    if len(set(names)) != len(names):
        dup = next(c for c in names if names.count(c) > 1)
        raise ManifestError(f"manifest {where}: class name {dup!r} appears twice in class_names")
    if len(names) < 2:
        raise ManifestError(
            f"manifest {where} has {len(names)} class(es) {names}; a split needs at least 2"
        )

    params = data.get("params", {})
    if not isinstance(params, dict):
        raise bad("params", "an object", params)
    _check_params(params, bad)

    samples = data["samples"]
    if not isinstance(samples, list):
        raise bad("samples", "a list of objects", samples)
    if not samples:
        raise ManifestError(f"manifest {where} lists no files; re-split the folder")
    entries = [_parse_sample(i, d, len(names), bad, where) for i, d in enumerate(samples)]

    skipped = _parse_skipped(data.get("skipped", []), version, bad)
    warns = data.get("warnings", [])
    if not isinstance(warns, list) or not all(_is_text(w) for w in warns):
        raise bad("warnings", "a list of strings", warns)
    return ParsedManifest(
        root, root_abs, tuple(names), dict(params), tuple(entries), tuple(skipped), tuple(warns)
    )


def _parse_skipped(skipped_raw: Any, version: int, bad: Any) -> list[SkippedFile]:
    """The skipped files; a version-1 manifest has no codes (``"unknown"``, nothing guessed)."""
    if not isinstance(skipped_raw, list):
        raise bad("skipped", "a list of objects", skipped_raw)
    keys = {"path", "reason"} if version == 1 else {"path", "reason", "code"}
    want = 'an object {"path": string, "reason": string' + (
        "}" if version == 1 else f', "code": one of {list(SKIP_CODES)}}}'
    )
    skipped = []
    for i, d in enumerate(skipped_raw):
        if (
            not isinstance(d, dict)
            or set(d) != keys
            or not _is_text(d["path"])
            or not _is_text(d["reason"])
            or (version > 1 and (type(d["code"]) is not str or d["code"] not in SKIP_CODES))
        ):
            raise bad(f"skipped[{i}]", want, d)
        skipped.append(SkippedFile(d["path"], d["reason"], d.get("code", "unknown")))
    return skipped


def _parse_sample(i: int, d: Any, n_classes: int, bad: Any, where: str) -> tuple[Sample, str]:
    field = f"samples[{i}]"
    if not isinstance(d, dict):
        raise bad(field, "an object", d)
    missing = [k for k in _REQUIRED_SAMPLE_KEYS if k not in d]
    if missing:
        raise ManifestError(f"manifest {where}: {field} has no {missing[0]!r} field")
    unknown = sorted(set(d) - _SAMPLE_KEYS)
    if unknown:
        raise ManifestError(f"manifest {where}: {field} has unknown field(s) {unknown}")
    rel = d["path"]
    if not isinstance(rel, str) or len(rel) > MAX_TEXT_CHARS:
        raise bad(f"{field}.path", f"a relative path (a string of <= {MAX_TEXT_CHARS})", rel)
    check_relative(rel, where)
    field = f"{field} ({rel!r})"
    label = d["label"]
    if type(label) is not int:
        raise bad(f"{field}.label", "an integer class index", label)
    if not 0 <= label < n_classes:
        raise ManifestError(
            f"manifest {where}: {rel!r} has label {label}, outside 0..{n_classes - 1}"
        )
    part = d["split"]
    if not isinstance(part, str) or part not in SPLIT_NAMES:
        raise ManifestError(
            f"manifest {where}: {rel!r} has split {_show(part)}; expected one of "
            f"{', '.join(SPLIT_NAMES)}"
        )
    sha = d["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise ManifestError(
            f"manifest {where}: {rel!r} has sha256 {_show(sha)}; every file needs its "
            "64-digit lowercase hex SHA-256 (an empty or missing hash would skip the check "
            "that the file is the one split). Re-split the folder to write a new manifest."
        )
    orientation = d.get("orientation", 1)
    if type(orientation) is not int or not 1 <= orientation <= 8:
        raise bad(f"{field}.orientation", "an EXIF orientation, an integer 1 to 8", orientation)
    size = []
    for key in ("width", "height"):
        v = d.get(key, 0)
        if type(v) is not int or not 0 <= v <= _MAX_PIXELS_SIDE:
            raise bad(f"{field}.{key}", f"an integer 0 to {_MAX_PIXELS_SIDE}", v)
        size.append(v)
    group = d.get("group", "")
    if not _is_text(group):
        raise bad(f"{field}.group", "a string", group)
    return Sample(rel, label, sha, orientation, size[0], size[1], group), part


def _check_params(params: dict[str, Any], bad: Any) -> None:
    """The splitter's settings: exact types and ranges; other keys hold plain JSON scalars."""
    for key, value in params.items():
        field = f"params.{key}"
        if key in ("val", "test"):
            if type(value) is float:
                if not 0.0 <= value < 1.0:
                    raise bad(field, "a fraction in [0, 1) or an image count", value)
            elif type(value) is not int or not 0 <= value <= 2**62:
                raise bad(field, "a fraction in [0, 1) or an image count", value)
        elif key == "seed":
            if type(value) is not int or not 0 <= value <= _MAX_SEED:
                raise bad(field, f"an integer 0 to {_MAX_SEED}", value)
        elif key in ("verify", "allow_small_classes"):
            if type(value) is not bool:
                raise bad(field, "true or false", value)
        elif key in ("groups_on", "near_duplicates", "on_conflict", "labels_from"):
            allowed = {
                "groups_on": ("name", "path"),
                "near_duplicates": (None, "report", "group"),
                "on_conflict": ("error", "drop", "keep_first"),
                "labels_from": ("folders",),
            }[key]
            if value not in allowed or type(value) not in (str, type(None)):
                raise bad(field, f"one of {list(allowed)}", value)
        elif key == "groups":
            if value is not None and not _is_text(value):
                raise bad(field, "a string or null", value)
        elif key.startswith(("groups_", "near_duplicate_pairs")):
            if type(value) is not int or not 0 <= value <= 2**62:
                raise bad(field, "a count (an integer >= 0)", value)
        elif not (
            value is None
            or (
                type(value) in (bool, int, float)
                and (type(value) is not int or abs(value) <= 2**63)
            )
            or _is_text(value)
        ):
            raise bad(field, "a string, number, true, false or null", value)
    fractions = [params[k] for k in ("val", "test") if type(params.get(k)) is float]
    if sum(fractions) >= 1.0:
        raise bad("params.val + params.test", "below 1 (they leave no training data)", fractions)


def _is_text(value: Any, nonempty: bool = False) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= MAX_TEXT_CHARS
        and "\x00" not in value
        and (bool(value) or not nonempty)
    )


def _show(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 80 else text[:77] + "...") + f" ({type(value).__name__})"


def check_relative(rel: str, where: str) -> None:
    """Refuse an entry that is not a plain relative path below its root."""
    p = PurePosixPath(rel)
    if (
        not rel
        or p.is_absolute()
        or "\\" in rel
        or "\x00" in rel
        or (len(rel) > 1 and rel[1] == ":")
        or any(part in ("", ".", "..") for part in rel.split("/"))
    ):
        raise ManifestError(
            f"manifest {where} lists {rel!r}, which points outside its dataset root; "
            "entries must be relative paths without '..'. Refusing to load it."
        )


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
    ``val``/``test`` shares and the seed (:func:`~tlkit.data._grouping.assign_groups`),
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
