"""Likely label errors: cleanlab's confident learning on out-of-sample probabilities."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tlkit._validation import type_name
from tlkit.audit._images import AuditImages
from tlkit.audit._report import AuditReport, LabelIssue
from tlkit.errors import ArgumentTypeError, AuditError, MissingDependencyError

__all__ = ["check_oof_type", "find_label_issues", "oof_rows"]


def check_oof_type(oof: Any) -> None:
    if oof is None or isinstance(oof, (Mapping, np.ndarray, list, tuple)):
        return
    if all(hasattr(oof, a) for a in ("paths", "class_names", "oof_probabilities")):
        return
    raise ArgumentTypeError(
        "oof must be a CVResult (tlkit.evaluate.cross_validate), a mapping of relative path "
        f"to class probabilities, or an (n, K) array aligned with the split; got {type_name(oof)}"
    )


def oof_rows(
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


def find_label_issues(
    report: AuditReport,
    images: AuditImages,
    oof: tuple[np.ndarray, str] | None,
    feats: np.ndarray | None,
    ok_rows: np.ndarray | None,
    cv_folds: int,
    seed: int,
) -> list[LabelIssue]:
    """Likely label errors, ranked.

    From ``oof`` (the rows and their source, from :func:`oof_rows`) when given,
    else from a cross-validated probe on ``feats``; none without either.
    """
    if oof is not None:
        probs, source = oof
        return _rank_label_issues(
            report, images, probs, f"out-of-fold probabilities passed as oof= ({source})"
        )
    if feats is not None:
        return _probe_label_issues(report, images, feats, ok_rows, cv_folds, seed)
    return []


def _probe_label_issues(
    report: AuditReport,
    images: AuditImages,
    feats: np.ndarray,
    ok_rows: np.ndarray | None,
    cv_folds: int,
    seed: int,
) -> list[LabelIssue]:
    """Rank with the out-of-sample probabilities of a cross-validated linear probe on ``feats``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = images.labels
    rows = np.arange(len(labels)) if ok_rows is None else np.nonzero(ok_rows)[0]
    y_all = labels[rows]
    present = np.unique(y_all)
    if len(present) < 2:
        report.notes.append("label issues not checked: fewer than 2 classes have images")
        return []
    remap = {int(c): k for k, c in enumerate(present)}
    y = np.array([remap[int(c)] for c in y_all])
    smallest = int(np.bincount(y).min())
    folds = min(cv_folds, smallest)
    if folds < 2:
        report.notes.append(
            "label issues not checked: a class has a single image, too few to cross-validate"
        )
        return []
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(labels), len(images.names)))
    probs[np.ix_(rows, present)] = cross_val_predict(
        probe, feats[rows], y, cv=cv, method="predict_proba"
    )
    return _rank_label_issues(
        report,
        images,
        probs,
        f"{folds}-fold cross-validated logistic regression (standardised features), "
        "out-of-sample probabilities",
        rows,
    )


def _rank_label_issues(
    report: AuditReport,
    images: AuditImages,
    probs_all: np.ndarray,
    source: str,
    rows: np.ndarray | None = None,
) -> list[LabelIssue]:
    """cleanlab's confident learning on out-of-sample ``(n, K)`` probabilities of ``rows``."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:  # pragma: no cover - cleanlab is in the dev extra
        raise MissingDependencyError(
            "label issues need the cleanlab package: pip install 'tlkit[audit]'"
        ) from None
    labels, names, settings = images.labels, images.names, report.settings
    rows = np.arange(len(labels)) if rows is None else rows
    present = np.unique(labels[rows])
    if len(present) < 2:
        report.notes.append("label issues not checked: fewer than 2 classes have images")
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
        part, s = images.items[rows[r]]
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
