"""Near-duplicate pairs: identical bytes, perceptual hashes, then backbone features."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tlkit.audit._images import AuditImages
from tlkit.audit._report import AuditReport, NearDuplicate
from tlkit.data import DEFAULT_HASH_SIZE, Sample, cosine_pairs, hamming_pairs, perceptual_hashes

__all__ = ["find_near_duplicates"]


def find_near_duplicates(
    report: AuditReport,
    images: AuditImages,
    hash_threshold: int,
    feats: np.ndarray | None,
    ok_rows: np.ndarray | None,
    feature_threshold: float,
    workers: int | None,
) -> list[NearDuplicate]:
    """Near-duplicate pairs: identical bytes, then pHash, then (with ``feats``) features."""
    settings = report.settings
    settings["hash_threshold"] = int(hash_threshold)
    settings["hash_bits"] = DEFAULT_HASH_SIZE**2
    settings["feature_threshold"] = float(feature_threshold) if feats is not None else None
    settings["duplicate_methods"] = ["identical", "phash"] + (
        ["features"] if feats is not None else []
    )
    found: dict[tuple[int, int], tuple[str, float]] = _identical_pairs(images.items)
    _hash_pairs(found, report, images, hash_threshold, workers)
    if feats is not None and len(feats) > 1:
        _feature_pairs(found, report, feats, ok_rows, feature_threshold)
    return _as_near_duplicates(found, images)


def _identical_pairs(items: list[tuple[str, Sample]]) -> dict[tuple[int, int], tuple[str, float]]:
    """Pairs of rows with the same SHA-256: ``(i, j) -> ("identical", 0.0)``."""
    found: dict[tuple[int, int], tuple[str, float]] = {}
    by_sha: dict[str, list[int]] = defaultdict(list)
    for k, (_, s) in enumerate(items):
        if s.sha256:
            by_sha[s.sha256].append(k)
    for ks in by_sha.values():
        for x in range(len(ks)):
            for y in range(x + 1, len(ks)):
                found[(ks[x], ks[y])] = ("identical", 0.0)
    return found


def _hash_pairs(
    found: dict[tuple[int, int], tuple[str, float]],
    report: AuditReport,
    images: AuditImages,
    hash_threshold: int,
    workers: int | None,
) -> None:
    """Add the pHash pairs within ``hash_threshold``; files that no longer decode are unreadable."""
    hashes, errors = perceptual_hashes(images.paths, workers=workers)
    good = np.array([e is None for e in errors], dtype=bool)
    if not good.all():
        report.notes.append(
            f"{int((~good).sum())} image(s) could not be decoded for hashing (listed as "
            "unreadable; they changed since the split was made)"
        )
        report.unreadable.extend(
            (images.items[k][1].path, str(e)) for k, e in enumerate(errors) if e is not None
        )
    idx = np.nonzero(good)[0]
    res = hamming_pairs(hashes[idx], hash_threshold)
    report.settings["hash_comparisons"] = res.comparisons
    report.settings["hash_naive_comparisons"] = res.naive_comparisons
    for a, b, d in zip(
        idx[res.i].tolist(), idx[res.j].tolist(), res.distance.tolist(), strict=True
    ):
        found.setdefault((a, b), ("phash", float(d)))


def _feature_pairs(
    found: dict[tuple[int, int], tuple[str, float]],
    report: AuditReport,
    feats: np.ndarray,
    ok_rows: np.ndarray | None,
    feature_threshold: float,
) -> None:
    """Add the pairs whose centred features are at least ``feature_threshold`` alike."""
    fidx = np.arange(len(feats)) if ok_rows is None else np.nonzero(ok_rows)[0]
    i, j, sim = cosine_pairs(feats[fidx], feature_threshold)
    before = len(found)
    for a, b, s in zip(fidx[i].tolist(), fidx[j].tolist(), sim.tolist(), strict=True):
        found.setdefault((a, b), ("features", round(1.0 - float(s), 6)))
    added = len(found) - before
    report.settings["feature_pairs"] = added
    if added > len(fidx):
        report.notes.append(
            f"features alone flagged {added} pairs, more than the {len(fidx)} images "
            "compared: the backbone sees many of these images as alike (look-alike data, "
            "such as ELPV's solar cells), so read the feature pairs as candidates, raise "
            "feature_threshold, or pass feature_duplicates=False"
        )


def _as_near_duplicates(
    found: dict[tuple[int, int], tuple[str, float]], images: AuditImages
) -> list[NearDuplicate]:
    """The pairs as records, those across splits first, then by method and distance."""
    pairs = []
    for (a, b), (method, dist) in found.items():
        (pa, sa), (pb, sb) = images.items[a], images.items[b]
        if sb.path < sa.path:
            (pa, sa), (pb, sb) = (pb, sb), (pa, sa)
        names = images.names
        pairs.append(
            NearDuplicate(sa.path, sb.path, pa, pb, names[sa.label], names[sb.label], method, dist)
        )
    order = {"identical": 0, "phash": 1, "features": 2}
    pairs.sort(key=lambda p: (not p.across_splits, order[p.method], p.distance, p.path_a, p.path_b))
    return pairs
