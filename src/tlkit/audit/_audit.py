"""audit(): near-duplicates across and within splits, likely label errors, and the small stuff."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tlkit._files import open_image
from tlkit._validation import (
    check_bool,
    check_int,
    check_number,
    check_seed,
    check_str,
    type_name,
)
from tlkit.audit._report import AuditReport, LabelIssue, NearDuplicate, SmallImage
from tlkit.data import (
    DEFAULT_HASH_SIZE,
    DEFAULT_HASH_THRESHOLD,
    DatasetSplitter,
    Split,
    cosine_pairs,
    hamming_pairs,
    perceptual_hashes,
)
from tlkit.errors import (
    ArgumentTypeError,
    AuditError,
    DatasetError,
    InvalidArgumentError,
    MissingDependencyError,
)

__all__ = ["DEFAULT_FEATURE_THRESHOLD", "audit", "load_images"]

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

FeatureSource = Callable[[np.ndarray], np.ndarray] | np.ndarray | None


def audit(
    split_or_folder: Split | str | os.PathLike[str],
    *,
    near_duplicates: bool = True,
    label_issues: bool = True,
    backbone: str | None = "efficientnet_lite0",
    features: FeatureSource = None,
    weights: str | os.PathLike[str] | None = "imagenet",
    image_size: int | None = None,
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
    near_duplicates : bool
        Look for near-duplicate pairs: identical bytes (SHA-256) and perceptual
        hashes (pHash, 256 bits; re-encoded, resized and grey copies) first,
        then, when ``feature_duplicates`` is on, cosine similarity of centred
        pooled features (crops and edits the hashes miss).
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
        ``(B, S, S, 3)`` of RGB images resized to ``image_size`` to a
        ``(B, D)`` array, or a precomputed ``(n, D)`` array whose rows follow
        ``split.train``, then ``split.val``, then ``split.test``.
    weights : str, path or None
        Passed to :func:`~tlkit.backbones.get_backbone`.
    image_size : int, optional
        Square size images are resized to for features, and the training size
        that "small image" is judged against (images under half of it are
        listed). Default: the backbone's default size (224 for a callable).
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
    for name, flag in [
        ("near_duplicates", near_duplicates),
        ("label_issues", label_issues),
        ("allow_small_classes", allow_small_classes),
    ]:
        check_bool(name, flag)
    if isinstance(feature_duplicates, str) and feature_duplicates != "auto":
        raise InvalidArgumentError(
            f"feature_duplicates must be True, False or 'auto', got {feature_duplicates!r}"
        )
    if not isinstance(feature_duplicates, (bool, str)):
        raise ArgumentTypeError(
            f"feature_duplicates must be True, False or 'auto', got {type_name(feature_duplicates)}"
        )
    _check_oof_type(oof)
    check_str("backbone", backbone, allow_none=True)
    image_size = check_int("image_size", image_size, minimum=1, allow_none=True)
    hash_threshold = check_int(
        "hash_threshold", hash_threshold, minimum=0, maximum=DEFAULT_HASH_SIZE**2
    )
    feature_threshold = check_number("feature_threshold", feature_threshold, low=-1.0, high=1.0)
    cv_folds = check_int("cv_folds", cv_folds, minimum=2)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    workers = check_int("workers", workers, minimum=1, allow_none=True)
    split = _as_split(split_or_folder, allow_small_classes=allow_small_classes)
    items = [(name, s) for name, part in split.parts.items() for s in part]
    paths = [str(Path(split.root, *s.path.split("/"))) for _, s in items]
    names = split.class_names
    labels = np.array([s.label for _, s in items], dtype=np.int64)
    notes: list[str] = []
    settings: dict[str, Any] = {"seed": seed, "feature_duplicates": feature_duplicates}
    oof_probs, oof_source = (None, "") if oof is None else _oof_rows(oof, items, names)

    has_source = features is not None or backbone is not None
    want_feature_dups = near_duplicates and (
        feature_duplicates is True or (feature_duplicates == "auto" and has_source)
    )
    need_features = (label_issues and oof_probs is None) or want_feature_dups
    feats: np.ndarray | None = None
    size = image_size
    if need_features and has_source:
        feats, size, ok_rows, source = _features(
            paths, features, backbone, weights, image_size, batch_size, workers
        )
        settings["features"] = source
        settings["image_size"] = size
        if ok_rows is not None and not ok_rows.all():
            notes.append(
                f"{int((~ok_rows).sum())} image(s) could not be decoded for features; "
                "they are left out of the feature checks"
            )
    else:
        ok_rows = None
    if not has_source:
        if label_issues and oof_probs is None:
            notes.append(
                "label issues not checked: no features (backbone=None, features=None) "
                "and no out-of-fold probabilities (oof=None)"
            )
        if near_duplicates and feature_duplicates is not False:
            notes.append(
                "feature near-duplicates not checked: no backbone or features "
                "(backbone=None, features=None); identical bytes and pHash only, and pHash "
                "misses most cropped copies"
            )
    if size is None:
        size = image_size or 224
        settings["image_size"] = size

    report = AuditReport(
        root=Path(split.root),
        class_names=tuple(names),
        class_counts=split.counts(),
        settings=settings,
        notes=notes,
    )
    conflicts, other = [], []
    for sk in split.skipped:
        (conflicts if sk.code == "label_conflict" else other).append(
            (sk.path, sk.reason)
        )
    report.label_conflicts = conflicts
    report.unreadable = other

    settings["small_side"] = size // 2
    report.small_images = [
        SmallImage(s.path, part, s.width, s.height)
        for part, s in items
        if s.width and s.height and min(s.width, s.height) < size // 2
    ]

    if near_duplicates:
        settings["hash_threshold"] = int(hash_threshold)
        settings["hash_bits"] = DEFAULT_HASH_SIZE**2
        use_feats = feats if (want_feature_dups and feats is not None) else None
        settings["feature_threshold"] = float(feature_threshold) if use_feats is not None else None
        settings["duplicate_methods"] = ["identical", "phash"] + (
            ["features"] if use_feats is not None else []
        )
        report.near_duplicates = _near_duplicates(
            items,
            names,
            paths,
            hash_threshold,
            use_feats,
            ok_rows,
            feature_threshold,
            workers,
            notes,
            settings,
            report.unreadable,
        )
    if label_issues and oof_probs is not None:
        report.label_issues = _label_issues_from(
            items,
            names,
            labels,
            oof_probs,
            f"out-of-fold probabilities passed as oof= ({oof_source})",
            notes,
            settings,
        )
    elif label_issues and feats is not None:
        report.label_issues = _label_issues(
            items, names, labels, feats, ok_rows, cv_folds, seed, notes, settings
        )
    return report


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


def load_images(
    paths: list[str], size: int, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode files as ``uint8`` RGB arrays resized to ``size x size``.

    Returns
    -------
    images : array of uint8, shape (n, size, size, 3)
        Black for files that cannot be decoded.
    ok : array of bool, shape (n,)

    Examples
    --------
    >>> load_images([], 32)[0].shape
    (0, 32, 32, 3)
    """
    out = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)

    def one(path: str) -> np.ndarray | None:
        from PIL import Image, ImageOps

        try:
            with open_image(path) as im:
                im.draft("RGB", (size * 2, size * 2))
                im = ImageOps.exif_transpose(im).convert("RGB")
                return np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8)
        except Exception:  # reported through ``ok``
            return None

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        for i, arr in enumerate(pool.map(one, paths)):
            if arr is not None:
                out[i] = arr
                ok[i] = True
    return out, ok


def _features(
    paths: list[str],
    features: FeatureSource,
    backbone: str | None,
    weights: Any,
    image_size: int | None,
    batch_size: int,
    workers: int | None,
) -> tuple[np.ndarray, int, np.ndarray | None, str]:
    if isinstance(features, np.ndarray) or (
        features is not None and not callable(features) and hasattr(features, "__len__")
    ):
        arr = np.asarray(features, dtype=np.float32)
        if arr.ndim != 2 or len(arr) != len(paths):
            raise AuditError(
                f"features has shape {arr.shape}; expected ({len(paths)}, D): one row per image "
                "of split.train, then split.val, then split.test"
            )
        if not np.isfinite(arr).all():
            raise AuditError("features contains NaN or infinite values")
        return arr, image_size or 224, None, f"precomputed array {arr.shape}"
    if features is not None and callable(features):
        fn = features
        size = int(image_size or 224)
        source = f"callable {getattr(features, '__name__', type(features).__name__)} at {size} px"
    else:
        from tlkit.backbones import get_backbone

        bb = get_backbone(str(backbone), weights=weights, image_size=image_size)
        size = int(bb.image_size[0])
        model = bb.model

        def fn(x: np.ndarray) -> np.ndarray:
            return np.asarray(model(x.astype(np.float32), training=False))

        source = (
            f"{backbone} ({'random init' if weights is None else weights}) at {size} px, pooled"
        )
    rows: list[np.ndarray] = []
    oks: list[np.ndarray] = []
    for a in range(0, len(paths), batch_size):
        imgs, ok = load_images(paths[a : a + batch_size], size, workers)
        f = np.asarray(fn(imgs), dtype=np.float32)
        if f.ndim != 2 or len(f) != len(imgs):
            raise AuditError(
                f"the feature function returned shape {f.shape} for a batch of {len(imgs)} "
                "images; it must return (batch, D)"
            )
        rows.append(f)
        oks.append(ok)
    if not rows:
        return np.zeros((0, 1), np.float32), size, np.zeros(0, bool), source
    feats = np.concatenate(rows)
    if not np.isfinite(feats).all():
        raise AuditError("the features contain NaN or infinite values")
    return feats, size, np.concatenate(oks), source


def _near_duplicates(
    items: list[tuple[str, Any]],
    names: tuple[str, ...],
    paths: list[str],
    hash_threshold: int,
    feats: np.ndarray | None,
    ok_rows: np.ndarray | None,
    feature_threshold: float,
    workers: int | None,
    notes: list[str],
    settings: dict[str, Any],
    unreadable: list[tuple[str, str]],
) -> list[NearDuplicate]:
    found: dict[tuple[int, int], tuple[str, float]] = {}
    by_sha: dict[str, list[int]] = defaultdict(list)
    for k, (_, s) in enumerate(items):
        if s.sha256:
            by_sha[s.sha256].append(k)
    for ks in by_sha.values():
        for x in range(len(ks)):
            for y in range(x + 1, len(ks)):
                found[(ks[x], ks[y])] = ("identical", 0.0)
    hashes, errors = perceptual_hashes(paths, workers=workers)
    good = np.array([e is None for e in errors], dtype=bool)
    if not good.all():
        notes.append(
            f"{int((~good).sum())} image(s) could not be decoded for hashing (listed as "
            "unreadable; they changed since the split was made)"
        )
        unreadable.extend((items[k][1].path, str(e)) for k, e in enumerate(errors) if e is not None)
    idx = np.nonzero(good)[0]
    res = hamming_pairs(hashes[idx], hash_threshold)
    settings["hash_comparisons"] = res.comparisons
    settings["hash_naive_comparisons"] = res.naive_comparisons
    for a, b, d in zip(
        idx[res.i].tolist(), idx[res.j].tolist(), res.distance.tolist(), strict=True
    ):
        found.setdefault((a, b), ("phash", float(d)))
    if feats is not None and len(feats) > 1:
        fidx = np.arange(len(feats)) if ok_rows is None else np.nonzero(ok_rows)[0]
        i, j, sim = cosine_pairs(feats[fidx], feature_threshold)
        before = len(found)
        for a, b, s in zip(fidx[i].tolist(), fidx[j].tolist(), sim.tolist(), strict=True):
            found.setdefault((a, b), ("features", round(1.0 - float(s), 6)))
        added = len(found) - before
        settings["feature_pairs"] = added
        if added > len(fidx):
            notes.append(
                f"features alone flagged {added} pairs, more than the {len(fidx)} images "
                "compared: the backbone sees many of these images as alike (look-alike data, "
                "such as ELPV's solar cells), so read the feature pairs as candidates, raise "
                "feature_threshold, or pass feature_duplicates=False"
            )
    pairs = []
    for (a, b), (method, dist) in found.items():
        (pa, sa), (pb, sb) = items[a], items[b]
        if sb.path < sa.path:
            (pa, sa), (pb, sb) = (pb, sb), (pa, sa)
        pairs.append(
            NearDuplicate(sa.path, sb.path, pa, pb, names[sa.label], names[sb.label], method, dist)
        )
    order = {"identical": 0, "phash": 1, "features": 2}
    pairs.sort(key=lambda p: (not p.across_splits, order[p.method], p.distance, p.path_a, p.path_b))
    return pairs


def _check_oof_type(oof: Any) -> None:
    if oof is None or isinstance(oof, (Mapping, np.ndarray, list, tuple)):
        return
    if all(hasattr(oof, a) for a in ("paths", "class_names", "oof_probabilities")):
        return
    raise ArgumentTypeError(
        "oof must be a CVResult (tlkit.evaluate.cross_validate), a mapping of relative path "
        f"to class probabilities, or an (n, K) array aligned with the split; got {type_name(oof)}"
    )


def _oof_rows(
    oof: Any, items: list[tuple[str, Any]], names: tuple[str, ...]
) -> tuple[np.ndarray, str]:
    """``oof`` as an ``(n, K)`` array in the split's order (train, val, test) and class order."""
    n, k = len(items), len(names)
    rels = [s.path for _, s in items]
    if isinstance(oof, (Mapping, np.ndarray, list, tuple)):
        given_names: tuple[str, ...] = names
        if isinstance(oof, Mapping):
            table = {str(p).replace(os.sep, "/"): v for p, v in oof.items()}
            source = f"mapping of {len(table)} paths"
        else:
            arr = _oof_array(oof, "oof")
            if arr.shape != (n, k):
                raise AuditError(
                    f"oof has shape {arr.shape}; expected ({n}, {k}): one row per image of "
                    "split.train, then split.val, then split.test, one column per class of "
                    f"split.class_names {list(names)}"
                )
            table = None
            source = f"array {arr.shape}"
    else:  # a CVResult, duck-typed (tlkit.evaluate sits above tlkit.audit)
        given_names = tuple(str(c) for c in oof.class_names)
        probs = _oof_array(oof.oof_probabilities, "oof.oof_probabilities")
        paths = [str(p) for p in oof.paths]
        if probs.ndim != 2 or probs.shape != (len(paths), len(given_names)):
            raise AuditError(
                f"oof.oof_probabilities has shape {probs.shape}; expected "
                f"({len(paths)}, {len(given_names)}): one row per path of oof.paths, one "
                "column per class of oof.class_names"
            )
        table = dict(zip(paths, probs, strict=True))
        source = f"{type(oof).__name__} over {len(paths)} images"
    if sorted(given_names) != sorted(names) or len(set(given_names)) != len(given_names):
        raise AuditError(
            f"oof's classes {list(given_names)} are not the split's {list(names)}; pass "
            "out-of-fold probabilities of a model trained on the same classes"
        )
    if table is not None:
        missing = [r for r in rels if r not in table]
        if missing:
            raise AuditError(
                f"oof has no probabilities for {len(missing)} of the {n} images of the split "
                f"(e.g. {missing[0]!r}); its paths must be relative to the split's root, as "
                "in split.train[i].path, and cover every image"
            )
        arr = _oof_array([table[r] for r in rels], "oof")
        if arr.shape != (n, len(given_names)):
            raise AuditError(
                f"oof's probability vectors have shape {arr.shape[1:]}; expected "
                f"({len(given_names)},): one probability per class"
            )
    arr = arr[:, [given_names.index(c) for c in names]]
    if ((arr < 0) | (arr > 1)).any() or not np.allclose(arr.sum(axis=1), 1.0, atol=1e-3):
        raise AuditError(
            "oof must hold probabilities: each value in [0, 1] and each row summing to 1 "
            "(softmax outputs, not logits)"
        )
    return arr, source


def _oof_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AuditError(
            f"{name} must hold numbers: one vector of class probabilities per image, all of "
            "one length"
        ) from None
    if arr.ndim != 2:
        raise AuditError(f"{name} must be 2-D (images, classes), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise AuditError(f"{name} contains NaN or infinite values")
    return arr


def _label_issues(
    items: list[tuple[str, Any]],
    names: tuple[str, ...],
    labels: np.ndarray,
    feats: np.ndarray,
    ok_rows: np.ndarray | None,
    cv_folds: int,
    seed: int,
    notes: list[str],
    settings: dict[str, Any],
) -> list[LabelIssue]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = np.arange(len(labels)) if ok_rows is None else np.nonzero(ok_rows)[0]
    y_all = labels[rows]
    present = np.unique(y_all)
    if len(present) < 2:
        notes.append("label issues not checked: fewer than 2 classes have images")
        return []
    remap = {int(c): k for k, c in enumerate(present)}
    y = np.array([remap[int(c)] for c in y_all])
    smallest = int(np.bincount(y).min())
    folds = min(cv_folds, smallest)
    if folds < 2:
        notes.append(
            "label issues not checked: a class has a single image, too few to cross-validate"
        )
        return []
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(labels), len(names)))
    probs[np.ix_(rows, present)] = cross_val_predict(
        probe, feats[rows], y, cv=cv, method="predict_proba"
    )
    return _label_issues_from(
        items,
        names,
        labels,
        probs,
        f"{folds}-fold cross-validated logistic regression (standardised features), "
        "out-of-sample probabilities",
        notes,
        settings,
        rows,
    )


def _label_issues_from(
    items: list[tuple[str, Any]],
    names: tuple[str, ...],
    labels: np.ndarray,
    probs_all: np.ndarray,
    source: str,
    notes: list[str],
    settings: dict[str, Any],
    rows: np.ndarray | None = None,
) -> list[LabelIssue]:
    """cleanlab's confident learning on out-of-sample ``(n, K)`` probabilities of ``rows``."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:  # pragma: no cover - cleanlab is in the dev extra
        raise MissingDependencyError(
            "label issues need the cleanlab package: pip install 'tlkit[audit]'"
        ) from None
    rows = np.arange(len(labels)) if rows is None else rows
    present = np.unique(labels[rows])
    if len(present) < 2:
        notes.append("label issues not checked: fewer than 2 classes have images")
        return []
    remap = {int(c): k for k, c in enumerate(present)}
    y = np.array([remap[int(c)] for c in labels[rows]])
    probs = probs_all[np.ix_(rows, present)]
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    settings["label_probe"] = (
        f"{source} -> cleanlab.filter.find_label_issues (prune_by_noise_rate), "
        "ranked by self-confidence"
    )
    settings["label_probe_accuracy"] = float((probs.argmax(1) == y).mean())
    ranked = find_label_issues(
        labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence"
    )
    out = []
    for r in np.asarray(ranked, dtype=np.int64).tolist():
        part, s = items[rows[r]]
        out.append(
            LabelIssue(
                s.path,
                part,
                names[int(present[y[r]])],
                names[int(present[int(probs[r].argmax())])],
                float(probs[r, y[r]]),
            )
        )
    return out
