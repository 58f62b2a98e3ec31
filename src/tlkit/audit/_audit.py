"""audit(): near-duplicates across and within splits, likely label errors, and the small stuff.

The steps, in order: check the arguments, load the split's images
(:class:`~tlkit.audit._images.AuditImages`), compute features when a check needs
them, list the files the split skipped and the small images, find near-duplicate
pairs (:mod:`tlkit.audit._duplicates`), rank likely label errors
(:mod:`tlkit.audit._labels`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._validation import (
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_number,
    check_seed,
    check_str,
    type_name,
)
from tlkit.audit._duplicates import find_near_duplicates
from tlkit.audit._images import AuditImages, FeatureSource, features_of
from tlkit.audit._labels import check_oof_type, find_label_issues, oof_rows
from tlkit.audit._report import AuditReport, SmallImage
from tlkit.data import DEFAULT_HASH_SIZE, DEFAULT_HASH_THRESHOLD, DatasetSplitter, Split
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError

__all__ = ["DEFAULT_FEATURE_THRESHOLD", "audit"]

#: Smallest centred cosine similarity of pooled backbone features that counts as a
#: near-duplicate. Chosen on real photos, efficientnet_lite0 at 160 px, 120 photos + 12
#: planted copies per run (``python benchmarks/audit_copies.py --data
#: ../shared/data/hymenoptera/train --seed S``, S = 0..3): the closest unplanted pairs
#: score 0.67-0.76, 6% crops 0.63-0.93 (10 of 12 at >= 0.80, 4 of 12 at >= 0.90).
#: Reported on the disjoint ``val/`` photos (``--data .../val``, seeds 0 and 1): 24 of 24
#: planted copies found, no unplanted pair (hashes alone: 18 of 24, no crop). Look-alike
#: data (ELPV's solar cells) has 2.4% of its distinct pairs at >= 0.80: the report notes
#: when features flag more pairs than there are images (docs/guide/audit.rst).
DEFAULT_FEATURE_THRESHOLD = 0.80


def audit(
    split_or_folder: Split | str | os.PathLike[str],
    *,
    near_duplicates: str | None = "report",
    label_issues: bool = True,
    backbone: str | None = "efficientnet_lite0",
    features: FeatureSource = None,
    weights: str | os.PathLike[str] | None = "imagenet",
    image_size: int | tuple[int, int] | None = None,
    feature_duplicates: bool | str = "auto",
    oof: Any = None,
    hash_threshold: int = DEFAULT_HASH_THRESHOLD,
    feature_threshold: float = DEFAULT_FEATURE_THRESHOLD,
    cv_folds: int = 5,
    seed: int = 0,
    batch_size: int = 32,
    workers: int | None = None,
    allow_small_classes: bool = False,
) -> AuditReport:
    """Audit a dataset split for leaks and label errors before training on it.

    Parameters
    ----------
    split_or_folder : Split, or path to a manifest (``.json``) or a dataset folder
        A folder is split first with ``DatasetSplitter(on_conflict="keep_first")``
        (default fractions and seed), so pairs are reported against the split
        tlkit would make. A manifest is loaded with its files re-hashed; files
        missing or changed since the split are reported as skipped. A manifest
        kept outside its dataset folder's parent needs its root named: pass
        ``Split.load(path, root=...)`` here instead of the path.
    near_duplicates : "report" or None
        The words of :class:`~tlkit.data.DatasetSplitter`'s ``near_duplicates=``.
        ``"report"`` (default): find and report near-duplicate pairs: identical
        bytes (SHA-256) and perceptual hashes (pHash, 256 bits; re-encoded,
        resized and grey copies) first, then, when ``feature_duplicates`` is on,
        cosine similarity of centred pooled features (crops and edits the hashes
        miss). ``None``: do not look. (``"group"``, keeping near-duplicates
        inside one split, is the splitter's job and is refused here.)
    label_issues : bool
        Rank likely label errors with :func:`cleanlab.filter.find_label_issues`
        on out-of-sample class probabilities: ``oof`` when given, else those
        of a ``cv_folds``-fold cross-validated logistic regression on the
        frozen features.
    backbone : str or None
        Registry name of the feature extractor (:func:`tlkit.backbones.get_backbone`);
        ``None`` with ``features=None`` runs only the checks that need no
        features (and label issues from ``oof``).
    features : callable, array or None
        Instead of a backbone: a callable mapping a ``uint8`` batch
        ``(B, H, W, 3)`` of RGB images resized to ``image_size`` to a
        ``(B, D)`` array, or a precomputed ``(n, D)`` array whose rows follow
        ``split.train``, then ``split.val``, then ``split.test``.
    weights : str, path or None
        Passed to :func:`~tlkit.backbones.get_backbone`.
    image_size : int or (height, width), optional
        Size images are resized to for features (an int ``n`` means
        ``(n, n)``, as every ``image_size`` of tlkit), and the training size
        that "small image" is judged against (images whose shorter side is
        under half of its shorter side are listed). Default: the backbone's
        default size (224 for a callable).
    feature_duplicates : bool or "auto"
        Also report pairs whose centred features have a cosine similarity of
        at least ``feature_threshold`` (``O(n^2 d)`` flops in blocks: seconds
        per 10,000 images, on top of the features the label probe computes
        anyway). ``"auto"`` (default): on when a ``backbone`` or ``features``
        is given, off (with a note in the report) when both are ``None``.
        On real photos it finds the cropped copies pHash misses
        (docs/guide/audit.rst); on look-alike images (ELPV's solar cells)
        it flags many distinct pairs, and the report says so: pass ``False``
        there.
    oof : CVResult, mapping or array, optional
        Out-of-fold class probabilities to rank label issues with, instead of
        the feature probe (then no features are computed for label issues):

        * a :class:`tlkit.evaluate.CVResult` from
          :func:`~tlkit.evaluate.cross_validate` on the same images (anything
          with ``paths``, ``class_names`` and ``oof_probabilities``): rows are
          matched by relative path, columns by class name;
        * a mapping of relative path (``"cls/img.jpg"``, as in the split) to a
          length-``K`` probability vector in ``split.class_names`` order;
        * an ``(n, K)`` array whose rows follow ``split.train``, then
          ``split.val``, then ``split.test``.

        Every image of the split needs a row; each row must be ``K``
        probabilities (``0 <= p <= 1``) summing to 1.
    hash_threshold : int
        Largest pHash Hamming distance (of 256 bits) reported.
    feature_threshold : float
        Smallest centred cosine similarity reported.
    cv_folds : int
        Folds of the cross-validated probe (fewer when a class is smaller).
    seed : int
        Seed of the folds and the probe.
    batch_size : int
        Images per feature batch.
    workers : int, optional
        Threads that decode images.
    allow_small_classes : bool
        When a folder is split: keep a class too small to appear in every part
        (with a warning) instead of raising
        :class:`~tlkit.errors.SmallClassError` (see
        :class:`~tlkit.data.DatasetSplitter`). Ignored for a manifest, already split.

    Returns
    -------
    AuditReport

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        An option has a value the audit cannot use, e.g. ``seed=-1`` or
        ``batch_size=0`` (the message names the argument).
    tlkit.errors.AuditError
        ``features`` or ``oof`` has the wrong shape, classes or values (the
        message names the argument).
    tlkit.errors.ArgumentTypeError
        An argument has a type the audit does not take.

    Examples
    --------
    >>> import tempfile
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 20, "b": 20}, seed=0)
    >>> thumb = lambda x: x[:, ::8, ::8].reshape(len(x), -1).astype(float)
    >>> report = audit(root, features=thumb, image_size=32)
    >>> report.num_images, report.settings["duplicate_methods"]
    (40, ['identical', 'phash', 'features'])

    Thumbnails tell these generated images apart too poorly for near-duplicates
    (the report says so in a note); a backbone's features do better:

    >>> any("features alone flagged" in note for note in report.notes)
    True
    >>> report = audit(root, features=thumb, image_size=32, feature_duplicates=False)
    >>> len(report.leaks), report.settings["duplicate_methods"]
    (0, ['identical', 'phash'])

    Out-of-fold probabilities of a cross-validated model rank the label
    issues instead of the feature probe; here made up, aligned with the split:

    >>> split = DatasetSplitter(seed=0, progress=False).split(root)
    >>> probs = np.eye(2)[[s.label for part in split.parts.values() for s in part]]
    >>> probs[0] = probs[0, ::-1]  # the model is sure the first image is the other class
    >>> report = audit(split, oof=probs * 0.98 + 0.01, backbone=None)
    >>> [x.path for x in report.label_issues] == [split.train[0].path]
    True
    """
    _check_flags(near_duplicates, feature_duplicates, oof, backbone)
    for name, flag in [
        ("label_issues", label_issues),
        ("allow_small_classes", allow_small_classes),
    ]:
        check_bool(name, flag)
    size = check_image_size("image_size", image_size, minimum=1, allow_none=True)
    hash_threshold = check_int(
        "hash_threshold", hash_threshold, minimum=0, maximum=DEFAULT_HASH_SIZE**2
    )
    feature_threshold = check_number("feature_threshold", feature_threshold, low=-1.0, high=1.0)
    cv_folds = check_int("cv_folds", cv_folds, minimum=2)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    workers = check_int("workers", workers, minimum=1, allow_none=True)

    images = AuditImages.of(_as_split(split_or_folder, allow_small_classes=allow_small_classes))
    report = _new_report(images.split, {"seed": seed, "feature_duplicates": feature_duplicates})
    oof_given = None if oof is None else oof_rows(oof, images.items, images.names)
    need_probe = label_issues and oof_given is None  # label issues from features
    has_source = features is not None or backbone is not None
    want_feature_dups = near_duplicates == "report" and (
        feature_duplicates is True or (feature_duplicates == "auto" and has_source)
    )
    if not has_source:
        _note_missing_source(report, need_probe, near_duplicates, feature_duplicates)
    feats, ok_rows = None, None
    if has_source and (need_probe or want_feature_dups):
        feats, size, ok_rows = _compute_features(
            report, images.paths, features, backbone, weights, size, batch_size, workers
        )
    size = size or (224, 224)
    report.settings["image_size"] = _size_setting(size)
    _file_findings(report, images, size)
    if near_duplicates == "report":
        use_feats = feats if want_feature_dups else None
        report.near_duplicates = find_near_duplicates(
            report, images, hash_threshold, use_feats, ok_rows, feature_threshold, workers
        )
    if label_issues:
        report.label_issues = find_label_issues(
            report, images, oof_given, feats, ok_rows, cv_folds, seed
        )
    return report


def _check_flags(near_duplicates: Any, feature_duplicates: Any, oof: Any, backbone: Any) -> None:
    """The arguments that take a word, a bool or an object: ``near_duplicates`` as the splitter's."""
    if isinstance(near_duplicates, bool):
        raise ArgumentTypeError(
            f"near_duplicates must be 'report' or None, as DatasetSplitter(near_duplicates=) "
            f"takes, got {near_duplicates!r} (bool): near_duplicates=True is now 'report', "
            "False is None",
            argument="near_duplicates",
        )
    if near_duplicates == "group":
        raise InvalidArgumentError(
            "near_duplicates='group' is the splitter's job: the audit reports near-duplicates "
            "('report') or does not look (None); to keep them inside one split, split with "
            "DatasetSplitter(near_duplicates='group')",
            argument="near_duplicates",
        )
    check_choice("near_duplicates", near_duplicates, (None, "report"))
    if isinstance(feature_duplicates, str) and feature_duplicates != "auto":
        raise InvalidArgumentError(
            f"feature_duplicates must be True, False or 'auto', got {feature_duplicates!r}",
            argument="feature_duplicates",
        )
    if not isinstance(feature_duplicates, (bool, str)):
        raise ArgumentTypeError(
            f"feature_duplicates must be True, False or 'auto', got {type_name(feature_duplicates)}",
            argument="feature_duplicates",
        )
    check_oof_type(oof)
    check_str("backbone", backbone, allow_none=True)


def _new_report(split: Split, settings: dict[str, Any]) -> AuditReport:
    return AuditReport(
        root=Path(split.root),
        class_names=tuple(split.class_names),
        class_counts=split.counts(),
        settings=settings,
        notes=[],
    )


def _note_missing_source(
    report: AuditReport,
    label_issues_need_it: bool,
    near_duplicates: str | None,
    feature_duplicates: Any,
) -> None:
    """Say which checks a missing backbone (``backbone=None, features=None``) leaves out."""
    if label_issues_need_it:
        report.notes.append(
            "label issues not checked: no features (backbone=None, features=None) "
            "and no out-of-fold probabilities (oof=None)"
        )
    if near_duplicates == "report" and feature_duplicates is not False:
        report.notes.append(
            "feature near-duplicates not checked: no backbone or features "
            "(backbone=None, features=None); identical bytes and pHash only, and pHash "
            "misses most cropped copies"
        )


def _compute_features(
    report: AuditReport,
    paths: list[str],
    features: FeatureSource,
    backbone: str | None,
    weights: Any,
    image_size: tuple[int, int] | None,
    batch_size: int,
    workers: int | None,
) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None]:
    """Features of every image (``report`` notes those that cannot be decoded)."""
    feats, size, ok_rows, source = features_of(
        paths, features, backbone, weights, image_size, batch_size, workers
    )
    report.settings["features"] = source
    if ok_rows is not None and not ok_rows.all():
        report.notes.append(
            f"{int((~ok_rows).sum())} image(s) could not be decoded for features; "
            "they are left out of the feature checks"
        )
    return feats, size, ok_rows


def _size_setting(size: tuple[int, int]) -> int | list[int]:
    """An image size as the report's settings store it: ``160``, or ``[96, 128]`` when not square."""
    return size[0] if size[0] == size[1] else [size[0], size[1]]


def _file_findings(report: AuditReport, images: AuditImages, size: tuple[int, int]) -> None:
    """Identical files under several classes, unreadable or skipped files, small images."""
    for sk in images.split.skipped:
        found = report.label_conflicts if sk.code == "label_conflict" else report.unreadable
        found.append((sk.path, sk.reason))
    small = min(size) // 2
    report.settings["small_side"] = small
    report.small_images = [
        SmallImage(s.path, part, s.width, s.height)
        for part, s in images.items
        if s.width and s.height and min(s.width, s.height) < small
    ]


def _as_split(x: Split | str | os.PathLike[str], *, allow_small_classes: bool = False) -> Split:
    if isinstance(x, Split):
        return x
    if not isinstance(x, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"audit() takes a Split, a manifest path or a dataset folder, got {type_name(x)}"
        )
    p = Path(x)
    if p.is_dir():
        return DatasetSplitter(
            on_conflict="keep_first", allow_small_classes=allow_small_classes
        ).split(p)
    if p.exists():  # Split.load refuses what is not a regular file (a pipe would hang)
        return Split.load(p, on_mismatch="skip")
    raise DatasetError(
        f"{str(p)!r} does not exist; pass a dataset folder (one sub-folder per class) or a "
        "split manifest written by Split.save / tlkit split"
    )
