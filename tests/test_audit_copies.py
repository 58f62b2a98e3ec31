"""tlkit.audit: feature near-duplicates on by default ("auto"), and label issues from ``oof=``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tlkit.audit import audit
from tlkit.cli import main
from tlkit.data import DatasetSplitter, Split
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import ArgumentTypeError, AuditError, InvalidArgumentError


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("copies") / "d", {"a": 20, "b": 20}, image_size=32, seed=4
    )
    return DatasetSplitter(seed=0, progress=False).split(root)


def _rows(split: Split) -> list[tuple[str, int]]:
    """``(path, label)`` in the audit's order: train, then val, then test."""
    return [(s.path, s.label) for part in split.parts.values() for s in part]


def _pairs(report, method: str | None = None) -> set[frozenset[str]]:
    return {
        frozenset((p.path_a, p.path_b))
        for p in report.near_duplicates
        if method is None or p.method == method
    }


def _features_with_twins(n: int, twins: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """Random 64-d features (distinct rows are far apart) with rows ``j`` copying rows ``i``."""
    f = np.random.default_rng(seed).normal(size=(n, 64))
    for i, j in twins:
        f[j] = f[i]
    return f


# -- feature_duplicates="auto" ------------------------------------------------------------------


def test_auto_compares_features_when_there_are_features(split: Split) -> None:
    rows = _rows(split)
    twins = [(0, len(rows) - 1), (3, 5)]
    feats = _features_with_twins(len(rows), twins)
    hashes_only = audit(split, features=feats, label_issues=False, feature_duplicates=False)
    report = audit(split, features=feats, label_issues=False)  # the default: "auto"
    assert report.settings["feature_duplicates"] == "auto"
    assert report.settings["duplicate_methods"] == ["identical", "phash", "features"]
    assert report.settings["feature_threshold"] == pytest.approx(0.80)
    planted = {frozenset((rows[i][0], rows[j][0])) for i, j in twins}
    assert not planted & _pairs(hashes_only)  # pHash does not see them as copies ...
    assert _pairs(report, "features") == planted  # ... the features do, and nothing else
    for p in report.near_duplicates:
        if p.method == "features":
            assert p.distance == pytest.approx(0.0, abs=1e-5)
    assert "centred cosine of features >= 0.8" in report.summary()
    assert not any("feature" in n for n in report.notes)
    # the pairs and the methods that ran are in every output
    data = json.loads(report.to_json())
    assert data["settings"]["duplicate_methods"][-1] == "features"
    assert {p["method"] for p in data["near_duplicates"]} >= {"features"}


def test_auto_is_off_with_a_note_when_there_is_no_backbone(split: Split) -> None:
    report = audit(split, backbone=None, label_issues=False)
    assert report.settings["duplicate_methods"] == ["identical", "phash"]
    assert report.settings["feature_threshold"] is None
    assert "features" not in report.settings  # nothing was computed
    (note,) = report.notes
    assert "feature near-duplicates not checked" in note and "backbone=None" in note
    assert "features not compared" in report.summary()
    assert "note: feature near-duplicates not checked" in report.summary()
    # True without features says the same; False is a choice, so no note
    assert audit(split, backbone=None, label_issues=False, feature_duplicates=True).notes == [note]
    off = audit(split, backbone=None, label_issues=False, feature_duplicates=False)
    assert off.notes == [] and "(feature_duplicates=False)" in off.summary()


def test_auto_loads_a_registry_backbone_for_feature_pairs(split: Split) -> None:
    report = audit(
        split,
        backbone="scratch_cnn",
        weights=None,
        image_size=32,
        label_issues=False,
        feature_threshold=1.0,
    )
    assert report.settings["features"].startswith("scratch_cnn (random init) at 32 px")
    assert report.settings["duplicate_methods"] == ["identical", "phash", "features"]


def test_features_that_see_every_image_alike_are_noted(split: Split) -> None:
    n = len(split)
    rng = np.random.default_rng(1)
    alike = rng.normal(size=(1, 32)) * np.linspace(1, 2, n)[:, None] + rng.normal(
        scale=0.01, size=(n, 32)
    )
    report = audit(split, features=alike, label_issues=False)
    assert len(_pairs(report, "features")) > n
    assert report.settings["feature_pairs"] > n
    assert any("features alone flagged" in note for note in report.notes)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (
            "yes",
            InvalidArgumentError,
            "feature_duplicates must be True, False or 'auto', got 'yes'",
        ),
        (1, ArgumentTypeError, "feature_duplicates must be True, False or 'auto', got int"),
        (None, ArgumentTypeError, "feature_duplicates must be True, False or 'auto'"),
    ],
)
def test_feature_duplicates_takes_true_false_or_auto(tmp_path: Path, value, error, match) -> None:
    with pytest.raises(error, match=match):
        audit(tmp_path / "nope", feature_duplicates=value)


# -- oof= ---------------------------------------------------------------------------------------


def _oof(split: Split, flip: int) -> tuple[np.ndarray, str]:
    """Confident, correct out-of-fold probabilities, except for row ``flip``: confidently wrong."""
    labels = np.array([lab for _, lab in _rows(split)])
    probs = np.full((len(labels), 2), 0.03)
    probs[np.arange(len(labels)), labels] = 0.97
    probs[flip] = probs[flip, ::-1]
    return probs, _rows(split)[flip][0]


def test_oof_array_drives_the_label_issues_without_features(split: Split) -> None:
    probs, wrong = _oof(split, flip=7)
    report = audit(split, oof=probs, backbone=None, near_duplicates=None)
    assert [x.path for x in report.label_issues] == [wrong]
    issue = report.label_issues[0]
    assert issue.score == pytest.approx(0.03) and issue.suggested != issue.given
    assert "features" not in report.settings  # no backbone ran, none was needed
    assert report.settings["label_probe"].startswith("out-of-fold probabilities passed as oof=")
    assert report.settings["label_probe_accuracy"] == pytest.approx(1 - 1 / len(probs))
    assert "from out-of-fold probabilities passed as oof= (array (40, 2))" in report.summary()
    assert report.notes == []


def test_oof_from_a_cv_result_or_a_mapping_matches_by_path_and_class(split: Split) -> None:
    probs, wrong = _oof(split, flip=12)
    paths = [p for p, _ in _rows(split)]
    order = np.argsort(paths)[::-1]  # another row order, and the classes the other way round
    cv_like = SimpleNamespace(
        paths=tuple(paths[k] for k in order),
        class_names=("b", "a"),
        oof_probabilities=probs[order][:, ::-1],
    )
    by_cv = audit(split, oof=cv_like, backbone=None, near_duplicates=None)
    assert [x.path for x in by_cv.label_issues] == [wrong]
    assert "SimpleNamespace over 40 images" in by_cv.settings["label_probe"]
    mapping = {p: probs[k] for k, p in enumerate(paths)}
    mapping["a/not_in_the_split.png"] = np.array([0.5, 0.5])  # extra rows are ignored
    by_map = audit(split, oof=mapping, backbone=None, near_duplicates=None)
    assert [x.path for x in by_map.label_issues] == [wrong]


def test_oof_wins_over_the_feature_probe_and_features_still_find_pairs(split: Split) -> None:
    rows = _rows(split)
    probs, wrong = _oof(split, flip=0)
    feats = _features_with_twins(len(rows), [(1, 2)])
    report = audit(split, features=feats, oof=probs)
    assert [x.path for x in report.label_issues] == [wrong]
    assert "oof=" in report.settings["label_probe"]
    assert _pairs(report, "features") == {frozenset((rows[1][0], rows[2][0]))}


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p, paths: p[:-1], AuditError, r"oof has shape \(39, 2\); expected \(40, 2\)"),
        (lambda p, paths: p[:, :1], AuditError, r"oof has shape \(40, 1\); expected \(40, 2\)"),
        (lambda p, paths: p[0], AuditError, "oof must be 2-D"),
        (lambda p, paths: p * 3, AuditError, "oof must hold probabilities"),
        (lambda p, paths: np.log(p), AuditError, "oof must hold probabilities"),
        (lambda p, paths: np.where(p > 0.5, np.nan, p), AuditError, "oof contains NaN"),
        (
            lambda p, paths: {q: p[k] for k, q in enumerate(paths[1:], 1)},
            AuditError,
            r"oof has no probabilities for 1 of the 40 images of the split \(e\.g\. '",
        ),
        (
            lambda p, paths: {q: p[k, :1] for k, q in enumerate(paths)},
            AuditError,
            r"oof's probability vectors have shape \(1,\); expected \(2,\)",
        ),
        (
            lambda p, paths: SimpleNamespace(
                paths=paths, class_names=("a", "c"), oof_probabilities=p
            ),
            AuditError,
            r"oof's classes \['a', 'c'\] are not the split's \['a', 'b'\]",
        ),
        (
            lambda p, paths: SimpleNamespace(
                paths=paths[:3], class_names=("a", "b"), oof_probabilities=p
            ),
            AuditError,
            r"oof.oof_probabilities has shape \(40, 2\); expected \(3, 2\)",
        ),
        (lambda p, paths: "probs.csv", ArgumentTypeError, "oof must be a CVResult"),
        (lambda p, paths: 0.5, ArgumentTypeError, "oof must be a CVResult"),
    ],
)
def test_bad_oof_is_refused_naming_the_argument(split: Split, make, error, match) -> None:
    probs, _ = _oof(split, flip=0)
    paths = [p for p, _ in _rows(split)]
    with pytest.raises(error, match=match):
        audit(split, oof=make(probs, paths), backbone=None)


# -- the command --------------------------------------------------------------------------------


def test_cli_feature_duplicate_flags(split: Split, tmp_path: Path, capsys) -> None:
    assert main(["audit", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--feature-duplicates" in text and "--no-feature-duplicates" in text
    both = ["--feature-duplicates", "--no-feature-duplicates"]
    assert main(["audit", str(split.root), "-o", str(tmp_path), *both]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
