"""tlkit.audit: planted near-duplicates are found, distinct images are not, label flips rank high."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.audit_helpers import (
    VARIANTS,
    colour_features,
    planted_folder,
    split_with,
    thumb_features,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tlkit.audit import AuditReport, audit
from tlkit.data import DatasetSplitter, cosine_pairs, hamming_pairs
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import (
    ArgumentTypeError,
    AuditError,
    DatasetError,
    InvalidArgumentError,
    TlkitError,
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root, pairs = planted_folder(tmp_path_factory.mktemp("planted") / "d")
    copies = {d for _, d, _ in pairs}
    rows: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    for lab, cls in enumerate(("a", "b")):
        for k, p in enumerate(sorted((root / cls).iterdir())):
            rel = f"{cls}/{p.name}"
            # copies in test, originals in train, a few distinct images in val
            part = "test" if rel in copies else ("val" if k % 10 == 9 else "train")
            rows[part].append((rel, lab))
    return split_with(root, rows, ("a", "b")), pairs


def _found(report: AuditReport) -> dict[frozenset[str], str]:
    return {frozenset((p.path_a, p.path_b)): p.method for p in report.near_duplicates}


def test_every_planted_copy_found_across_splits_and_nothing_else(planted) -> None:
    split, pairs = planted
    report = audit(
        split, features=thumb_features, image_size=64, label_issues=False, feature_duplicates=True
    )
    found = _found(report)
    expected = {frozenset((a, b)) for a, b, _ in pairs}
    assert set(found) == expected, set(found) ^ expected  # all planted, no distinct image
    assert len(report.leaks) == len(pairs) == 2 * len(VARIANTS)
    for p in report.near_duplicates:
        assert "test" in (p.part_a, p.part_b) and p.across_splits
        assert p.method in ("phash", "features")
    assert report.settings["hash_comparisons"] <= report.settings["hash_naive_comparisons"]


def test_features_alone_find_the_crop(planted) -> None:
    split, pairs = planted
    # pHash off (threshold 0 keeps only bit-identical hashes: the grey copies)
    report = audit(
        split,
        features=thumb_features,
        image_size=64,
        label_issues=False,
        hash_threshold=0,
        feature_duplicates=True,
    )
    found = _found(report)
    for a, b, kind in pairs:
        if kind == "crop":
            assert found.get(frozenset((a, b))) == "features"
    assert set(found) <= {frozenset((a, b)) for a, b, _ in pairs}


def test_precomputed_features_and_bad_shapes(planted) -> None:
    split, _ = planted
    n = len(split)
    feats = np.random.default_rng(0).normal(size=(n, 16))
    report = audit(
        split, features=feats, label_issues=False, feature_duplicates=True, feature_threshold=0.999
    )
    assert report.settings["features"].startswith("precomputed")
    with pytest.raises(AuditError, match=r"expected \(88, D\)"):
        audit(split, features=feats[:-1])
    with pytest.raises(AuditError, match="NaN"):
        audit(split, features=np.full((n, 4), np.nan))
    with pytest.raises(AuditError, match="must return"):
        audit(split, features=lambda x: np.zeros(3), image_size=32)
    with pytest.raises(InvalidArgumentError, match="cv_folds"):
        audit(split, features=feats, cv_folds=1)
    with pytest.raises(DatasetError, match="does not exist"):
        audit(split.root / "nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"hash_threshold": 257},
            InvalidArgumentError,
            "hash_threshold must be an int >= 0 and <= 256",
        ),
        ({"hash_threshold": 8.0}, ArgumentTypeError, "hash_threshold must be an int"),
        ({"feature_threshold": 1.5}, InvalidArgumentError, "feature_threshold must be a number"),
        ({"feature_threshold": "0.9"}, ArgumentTypeError, "feature_threshold must be a number"),
        ({"cv_folds": True}, ArgumentTypeError, "cv_folds must be an int >= 2, got True"),
        ({"seed": -1}, InvalidArgumentError, "seed must be an int >= 0"),
        ({"batch_size": 0}, InvalidArgumentError, "batch_size must be an int >= 1"),
        ({"workers": 0}, InvalidArgumentError, "workers must be an int >= 1 or None"),
        ({"image_size": 0}, InvalidArgumentError, r"image_size must be an int or a \(height"),
        ({"image_size": (64, 0)}, InvalidArgumentError, "image_size must be an int or a"),
        ({"image_size": "64"}, ArgumentTypeError, "image_size must be an int or a"),
        ({"near_duplicates": "yes"}, InvalidArgumentError, "near_duplicates must be one of"),
        ({"near_duplicates": True}, ArgumentTypeError, "'report' or None.*True is now 'report'"),
        ({"near_duplicates": False}, ArgumentTypeError, "False is None"),
        ({"near_duplicates": "group"}, InvalidArgumentError, "the splitter's job"),
        ({"backbone": 3}, ArgumentTypeError, "backbone must be a string"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path: Path, kwargs, error, match) -> None:
    # The folder does not exist: the argument is checked first, so its error wins.
    with pytest.raises(error, match=match) as info:
        audit(tmp_path / "nope", **kwargs)
    assert isinstance(info.value, TlkitError)


def test_not_a_split_or_path_is_a_type_error() -> None:
    with pytest.raises(ArgumentTypeError, match="takes a Split, a manifest path or a dataset"):
        audit(42)


def test_input_size_the_old_name_of_image_size_is_refused(planted) -> None:
    split, _ = planted
    with pytest.raises(TypeError, match="input_size"):
        audit(split, features=thumb_features, input_size=64, label_issues=False)
    report = audit(
        split, features=thumb_features, image_size=64, label_issues=False, feature_duplicates=True
    )
    assert report.settings["image_size"] == 64 and report.settings["small_side"] == 32
    # Schema 2 stores the size under "image_size" ("input_size" in schema 1).
    data = json.loads(report.to_json())
    assert data["schema"] == "tlkit.audit/2" and "input_size" not in data["settings"]
    assert "half the 64 px training size" in report.summary()


def test_near_duplicates_takes_the_splitters_words(planted) -> None:
    split, _ = planted
    report = audit(split, label_issues=False, backbone=None)  # default "report": look
    assert len(report.near_duplicates) > 0
    assert report.settings["duplicate_methods"] == ["identical", "phash"]
    quiet = audit(split, label_issues=False, backbone=None, near_duplicates=None)
    assert quiet.near_duplicates == [] and "duplicate_methods" not in quiet.settings
    assert not any("near-duplicates not checked" in n for n in quiet.notes)
    with pytest.raises(InvalidArgumentError, match="splitter's job") as info:
        audit(split, near_duplicates="group")
    assert "DatasetSplitter(near_duplicates='group')" in str(info.value)
    assert info.value.argument == "near_duplicates"


def test_image_size_is_an_int_or_a_height_width_pair(planted) -> None:
    split, _ = planted
    shapes: set[tuple[int, ...]] = set()

    def features(x: np.ndarray) -> np.ndarray:
        shapes.add(x.shape[1:])
        return x[:, ::8, ::8].reshape(len(x), -1).astype(float)

    square = audit(split, features=features, image_size=64, feature_duplicates=False)
    assert shapes == {(64, 64, 3)}
    assert square.settings["image_size"] == 64 and square.settings["small_side"] == 32
    assert square.settings["features"].endswith("at 64 px")
    same = audit(split, features=features, image_size=(64, 64), feature_duplicates=False)
    assert same.settings == square.settings
    shapes.clear()
    wide = audit(split, features=features, image_size=(48, 64), feature_duplicates=False)
    assert shapes == {(48, 64, 3)}  # (height, width), as FineTuner(image_size=) reads it
    assert wide.settings["image_size"] == [48, 64] and wide.settings["small_side"] == 24
    assert wide.settings["features"].endswith("at 48x64 px")
    assert "half the 48x64 px training size" in wide.summary()
    # without features the size still sets what a small image is
    hashed = audit(split, backbone=None, label_issues=False, image_size=[40, 80])
    assert hashed.settings["image_size"] == [40, 80] and hashed.settings["small_side"] == 20


def test_label_flips_rank_near_the_top(tmp_path: Path) -> None:
    root = make_synthetic_dataset(
        tmp_path / "d", {"a": 40, "b": 40, "c": 40}, image_size=32, seed=3
    )
    rng = np.random.default_rng(0)
    names = ("a", "b", "c")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    flipped = set(rng.choice(len(files), size=8, replace=False).tolist())
    pairs = []
    for k, p in enumerate(files):
        lab = names.index(p.parent.name)
        if k in flipped:
            lab = (lab + 1 + int(rng.integers(0, 2))) % 3
        pairs.append((p, names[lab]))
    split = DatasetSplitter(seed=0).split_samples(pairs, root=root, class_names=names)
    report = audit(split, features=colour_features, image_size=32, near_duplicates=None)
    flipped_paths = {files[k].relative_to(root).as_posix() for k in flipped}
    top = [x.path for x in report.label_issues[: len(flipped_paths)]]
    # nearly every flip is flagged, and nothing but flips ranks in the top 8
    assert len(flipped_paths & set(top)) >= len(flipped_paths) - 1, (top, flipped_paths)
    assert set(top) <= flipped_paths
    scores = [x.score for x in report.label_issues]
    assert scores == sorted(scores)
    # the suggested class is the true folder for the flips found
    truth = {files[k].relative_to(root).as_posix(): files[k].parent.name for k in flipped}
    hits = [x for x in report.label_issues if x.path in truth]
    assert all(x.suggested == truth[x.path] for x in hits)
    assert report.settings["label_probe_accuracy"] > 0.85


def test_small_images_conflicts_unreadable_and_outputs(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "d", {"a": 12, "b": 12}, image_size=32, seed=1)
    Image.new("RGB", (8, 40), "red").save(root / "a" / "tiny.png")
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    first = sorted((root / "a").glob("*.jpeg")) or sorted((root / "a").glob("*.png"))
    (root / "b" / "same_as_a.bin.png").write_bytes(first[0].read_bytes())
    report = audit(root, features=colour_features, image_size=32, cv_folds=3)
    assert [x.path for x in report.small_images] == ["a/tiny.png"]
    assert any("b/broken.jpg" == p for p, _ in report.unreadable)
    assert len(report.label_conflicts) == 1
    text = report.summary()
    assert "identical files under several classes: 1" in text
    assert "unreadable or skipped files: 1" in text
    files = report.save(tmp_path / "out")
    assert [f.name for f in files] == ["audit.html", "audit.md", "audit.json"]
    html = files[0].read_text()
    assert "data:image/png;base64," in html and "tiny.png" in html
    assert "http" not in html.split("<body>")[1]  # self-contained: nothing fetched
    data = json.loads(files[2].read_text())
    assert data["schema"] == "tlkit.audit/2" and data["small_images"][0]["width"] == 8
    assert "# Data audit" in files[1].read_text()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 80),
    words=st.sampled_from([1, 4]),
    r=st.integers(0, 70),
    flips=st.integers(0, 60),
)
def test_hamming_pairs_equals_brute_force(seed, n, words, r, flips) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=(n, words), dtype=np.int64).astype(np.uint64)
    base[: n // 3] = base[0]  # exact duplicates too
    near = base.copy()
    for row in near:  # flip up to ``flips`` random bits
        for _ in range(int(rng.integers(0, flips + 1))):
            w = int(rng.integers(0, words))
            row[w] ^= np.uint64(1) << np.uint64(int(rng.integers(0, 64)))
    h = np.concatenate([base, near])
    if True:
        got = hamming_pairs(h, r)
        d = np.bitwise_count(h[:, None, :] ^ h[None, :, :]).sum(axis=2)
        i, j = np.nonzero(np.triu(d <= r, k=1))
        assert got.i.tolist() == i.tolist() and got.j.tolist() == j.tolist()
        assert got.distance.tolist() == d[i, j].tolist()
        assert got.comparisons <= h.shape[1] * 4 * got.naive_comparisons  # once per chunk


def test_cosine_pairs_blocked_equals_dense() -> None:
    f = np.random.default_rng(2).normal(size=(300, 8))
    f[100] = f[7] + 0.01
    i, j, s = cosine_pairs(f, 0.8, block=64)
    c = f - f.mean(0)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    d = c @ c.T
    ei, ej = np.nonzero(np.triu(d >= 0.8, k=1))
    assert i.tolist() == ei.tolist() and j.tolist() == ej.tolist()
    np.testing.assert_allclose(s, d[ei, ej], rtol=1e-5)


def test_cosine_pairs_keeps_each_images_most_similar_pairs_only() -> None:
    """Look-alike images must not give n**2 pairs: each image keeps its top pairs (i < j)."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 16))
    f = np.vstack([base + 0.01 * rng.normal(size=(40, 16)), rng.normal(size=(40, 16)) * 5])
    i, j, s = cosine_pairs(f, 0.5, block=7, center=False, max_per_image=3)
    assert np.all(i < j)
    assert np.bincount(i, minlength=80).max() <= 3
    every_i, _, every_s = cosine_pairs(f, 0.5, block=7, center=False, max_per_image=None)
    assert len(every_i) > 3 * 39  # the 40 look-alikes alone make 780 pairs
    for a in range(40):  # the kept pairs of image a are its most similar ones
        kept = np.sort(s[i == a])[::-1]
        best = np.sort(every_s[every_i == a])[::-1][: len(kept)]
        np.testing.assert_allclose(kept, best, rtol=1e-6)
        assert len(kept) == min(3, int((every_i == a).sum()))
