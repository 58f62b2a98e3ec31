"""DatasetSplitter on folder trees: behaviour, options and argument validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tree, write_image

from tlkit import DatasetSplitter
from tlkit.errors import DatasetError, LabelConflictError, SmallClassError


def test_split_covers_every_file_once(tree: Path) -> None:
    split = DatasetSplitter(val=0.2, test=0.2, seed=3).split(tree)
    paths = [s.path for part in split.parts.values() for s in part]
    assert len(paths) == len(set(paths)) == 60
    on_disk = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.png"))
    assert sorted(paths) == on_disk
    assert split.class_names == ("a", "b", "c")
    assert split.counts() == {
        "a": {"train": 18, "val": 6, "test": 6},
        "b": {"train": 12, "val": 4, "test": 4},
        "c": {"train": 6, "val": 2, "test": 2},
    }
    assert split.skipped == ()


def test_labels_match_folders(tree: Path) -> None:
    split = DatasetSplitter(seed=0).split(tree)
    for part in split.parts.values():
        for s in part:
            assert s.path.split("/")[0] == split.class_names[s.label]


def test_same_seed_same_split_other_seed_differs(tree: Path) -> None:
    a = DatasetSplitter(seed=1).split(tree)
    b = DatasetSplitter(seed=1).split(tree)
    c = DatasetSplitter(seed=2).split(tree)
    assert a.test.paths == b.test.paths and a.val.paths == b.val.paths
    assert a.test.paths != c.test.paths


def test_split_independent_of_root_location(tree: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tree, moved)
    a = DatasetSplitter(seed=5).split(tree)
    b = DatasetSplitter(seed=5).split(moved)
    assert [s.path for s in a.test] == [s.path for s in b.test]


def test_nested_subfolders_count_for_top_level_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"a": 10, "b": 10})
    for i in range(5):
        write_image(root / "a" / "deep" / "er" / f"n{i}.png", color=1000 + i)
    split = DatasetSplitter(val=0.2, test=0.2, seed=0).split(root)
    nested = [s for p in split.parts.values() for s in p if "/deep/er/" in s.path]
    assert len(nested) == 5 and all(s.label == 0 for s in nested)
    assert sum(split.counts()["a"].values()) == 15


def test_absolute_counts_are_exact_and_stratified(tree: Path) -> None:
    split = DatasetSplitter(val=12, test=6, seed=0).split(tree)
    assert (len(split.val), len(split.test), len(split.train)) == (12, 6, 42)
    counts = split.counts()
    for c, n in (("a", 30), ("b", 20), ("c", 10)):
        assert abs(counts[c]["val"] - n * 12 / 60) < 1
        assert abs(counts[c]["test"] - n * 6 / 60) < 1


def test_zero_val_gives_empty_val(tree: Path) -> None:
    split = DatasetSplitter(val=0.0, test=0.2, seed=0).split(tree)
    assert len(split.val) == 0 and len(split.test) == 12


def test_duplicates_within_a_class_stay_together(tree: Path) -> None:
    for i in range(4):
        shutil.copy(tree / "a" / "a_000.png", tree / "a" / f"copy_{i}.png")
    for seed in range(10):
        split = DatasetSplitter(val=0.2, test=0.2, seed=seed).split(tree)
        where = {s.path: name for name, part in split.parts.items() for s in part}
        homes = {where[f"a/copy_{i}.png"] for i in range(4)} | {where["a/a_000.png"]}
        assert len(homes) == 1
        assert "groups kept inside one split (duplicates, groups=): 1" in split.summary()


def test_group_regex_keeps_bursts_together(tmp_path: Path) -> None:
    root = tmp_path / "d"
    k = 0
    for cls in ("a", "b", "c"):
        for burst in range(10):
            for shot in range(3):
                write_image(root / cls / f"IMG_{burst:04d}_{shot}.png", color=k)
                k += 1
    for seed in range(5):
        split = DatasetSplitter(
            val=0.2, test=0.2, seed=seed, groups=r"([abc])/IMG_(\d+)_", groups_on="path"
        ).split(root)
        where = {s.path: name for name, part in split.parts.items() for s in part}
        for cls in ("a", "b", "c"):
            for burst in range(10):
                homes = {where[f"{cls}/IMG_{burst:04d}_{shot}.png"] for shot in range(3)}
                assert len(homes) == 1, (cls, burst, homes)
        # Whole groups of 3: per class 10 groups -> 6/2/2 groups -> 18/6/6 images.
        assert split.counts()["b"] == {"train": 18, "val": 6, "test": 6}


def test_group_callable(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"a": 20, "b": 20})
    subject = lambda p: int(p.rsplit("_", 1)[1].split(".")[0]) // 4  # noqa: E731
    split = DatasetSplitter(val=0.2, test=0.2, seed=1, groups=subject).split(root)
    for part_a in split.parts.values():
        for other_name, other in split.parts.items():
            if other is part_a:
                continue
            assert not {subject(s.path) for s in part_a} & {subject(s.path) for s in other}, (
                other_name
            )


def test_groups_argument_validation() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        DatasetSplitter(groups="(unclosed")
    with pytest.raises(TypeError, match="groups must be"):
        DatasetSplitter(groups=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val": 0.5, "test": 0.5}, r"val=0.5 and test=0.5 leave no training data"),
        ({"val": 0.7, "test": 0.6}, r"sum to 1.3 >= 1"),
        ({"val": -0.1}, r"val=-0.1 is not a valid fraction"),
        ({"test": 1.5}, r"test=1.5 is not a valid fraction"),
        ({"val": -3}, r"val=-3 must not be negative"),
        ({"on_conflict": "merge"}, r"on_conflict must be one of 'error', 'drop', 'keep_first'"),
        ({"workers": 0}, r"workers must be an int >= 1 or None, got 0"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DatasetSplitter(**kwargs)


def test_non_numeric_share_and_seed() -> None:
    with pytest.raises(TypeError, match="val must be a fraction"):
        DatasetSplitter(val="0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed must be an int"):
        DatasetSplitter(seed=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": "42"}, r"^seed must be an int >= 0, got '42' \(str\)$"),
        ({"seed": True}, r"^seed must be an int >= 0, got True \(bool\)$"),
        ({"verify": 1}, r"^verify must be True or False, got 1 \(int\)$"),
        ({"workers": 2.0}, r"^workers must be an int >= 1 or None, got 2\.0 \(float\)$"),
        ({"groups": 3}, r"^groups must be a regex string, a callable or None, got 3 \(int\)$"),
        ({"val": "0.1"}, r"^val must be a fraction \(float\) or a count \(int\), got '0\.1'"),
    ],
)
def test_wrong_types_are_argument_type_errors(kwargs: dict, match: str) -> None:
    from tlkit.errors import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match=match):
        DatasetSplitter(**kwargs)


def test_a_negative_seed_is_an_invalid_argument() -> None:
    from tlkit.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"^seed must be an int >= 0, got -1$"):
        DatasetSplitter(seed=-1)


def test_split_samples_checks_its_pairs(tree: Path) -> None:
    from tlkit.errors import ArgumentTypeError

    splitter = DatasetSplitter(seed=0)
    with pytest.raises(ArgumentTypeError, match=r"pairs\[1\] must be a \(path, label\) pair"):
        splitter.split_samples([("a/1.png", "a"), ("a/2.png",)], root=tree)
    with pytest.raises(ArgumentTypeError, match="pairs must be an iterable"):
        splitter.split_samples("a/1.png", root=tree)
    with pytest.raises(ArgumentTypeError, match="class_names must hold strings only"):
        splitter.split_samples([("a/1.png", "a")], root=tree, class_names=["a", 1])
    with pytest.raises(ArgumentTypeError, match="root must be a path"):
        splitter.split_samples([("a/1.png", "a")], root=3)


def test_absolute_count_larger_than_dataset(tree: Path) -> None:
    with pytest.raises(ValueError, match="test=100 images, but only 60 valid images"):
        DatasetSplitter(val=0.1, test=100).split(tree)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        DatasetSplitter().split(tmp_path / "nope")


def test_small_class_is_named_error_or_warning(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"big": 40, "tiny": 3})
    with pytest.raises(SmallClassError, match=r"class 'tiny' has 3 image\(s\).*none in (val|test)"):
        DatasetSplitter(val=0.15, test=0.15).split(root)
    with pytest.warns(UserWarning, match="class 'tiny' has 3"):
        split = DatasetSplitter(val=0.15, test=0.15, allow_small_classes=True).split(root)
    tiny = split.counts()["tiny"]
    assert sum(tiny.values()) == 3 and tiny["train"] >= 1 and 0 in tiny.values()
    assert any("tiny" in w for w in split.warnings)


def test_split_samples_explicit_pairs(tree: Path) -> None:
    pairs = [(p, p.parent.name) for p in sorted(tree.rglob("*.png"))]
    a = DatasetSplitter(seed=4).split_samples(pairs)
    b = DatasetSplitter(seed=4).split(tree)
    assert a.root == tree
    assert a.test.paths == b.test.paths and a.class_names == b.class_names


def test_split_samples_validation(tree: Path) -> None:
    p = next(tree.rglob("*.png"))
    with pytest.raises(DatasetError, match="no \\(path, label\\) pairs"):
        DatasetSplitter().split_samples([])
    with pytest.raises(DatasetError, match="listed more than once"):
        DatasetSplitter().split_samples([(p, "a"), (p, "b")])
    with pytest.raises(DatasetError, match="not in class_names"):
        DatasetSplitter().split_samples([(p, "zzz")], class_names=["a", "b"])
    with pytest.raises(DatasetError, match="needs at least 2"):
        DatasetSplitter().split_samples([(p, "a")])


def test_label_conflict_policies(tree: Path) -> None:
    shutil.copy(tree / "a" / "a_001.png", tree / "b" / "stolen.png")
    with pytest.raises(LabelConflictError) as info:
        DatasetSplitter().split(tree)
    assert "'a/a_001.png'" in str(info.value) and "'b/stolen.png'" in str(info.value)

    dropped = DatasetSplitter(on_conflict="drop").split(tree)
    reasons = {s.path: s.reason for s in dropped.skipped}
    assert set(reasons) == {"a/a_001.png", "b/stolen.png"}
    assert all(r.startswith("label conflict") for r in reasons.values())
    assert {s.code for s in dropped.skipped} == {"label_conflict"}
    assert len(dropped) == 59

    kept = DatasetSplitter(on_conflict="keep_first").split(tree)
    assert [s.path for s in kept.skipped] == ["b/stolen.png"]
    assert "a/a_001.png" in {s.path for p in kept.parts.values() for s in p}
    assert any("on_conflict='keep_first'" in w for w in kept.warnings)


def test_summary_mentions_counts_imbalance_and_skips(tree: Path) -> None:
    (tree / "a" / "notes.txt").write_text("hello")
    split = DatasetSplitter(val=0.2, test=0.2, seed=0).split(tree)
    text = split.summary()
    assert "imbalance ratio (largest / smallest class): 3.00" in text
    assert "skipped files: 1" in text and "not an image" in text
    assert text.splitlines()[2].split()[:5] == ["a", "18", "6", "6", "30"]


def test_progress_bar_can_be_forced(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DatasetSplitter(progress=True).split(tree)
    assert "checking images" in capsys.readouterr().err


def test_single_worker_equals_parallel(tree: Path) -> None:
    a = DatasetSplitter(workers=1, seed=9).split(tree)
    b = DatasetSplitter(workers=4, seed=9).split(tree)
    assert a == b


def test_apportion_keeps_sums() -> None:
    from tlkit.data._grouping import apportion

    t = apportion(np.array([80, 20, 8]), np.array([0.7, 0.15, 0.15]))
    assert t.sum(axis=1).tolist() == [80, 20, 8]
    assert t.sum(axis=0).tolist() == [76, 16, 16]


def test_process_and_thread_executors_agree(tree: Path) -> None:
    import subprocess
    import sys

    (tree / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    # In a fresh interpreter: this test process may have TensorFlow loaded, and forking
    # it is exactly what executor="auto" avoids.
    code = (
        "import sys; from tlkit import DatasetSplitter as D; "
        "t = D(seed=2, executor='thread').split(sys.argv[1]); "
        "p = D(seed=2, executor='process').split(sys.argv[1]); "
        "print(t == p, [s.path for s in p.skipped], len(p))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tree)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True ['a/broken.jpg'] 60"


def test_auto_executor_forks_only_a_single_threaded_process() -> None:
    import threading

    from tlkit.data._scan import _fork_is_safe, choose_executor

    assert choose_executor("auto", 10, 4) == "thread"  # too few files to fork for
    assert choose_executor("thread", 10_000, 4) == "thread"
    assert choose_executor("process", 10, 1) == "thread"  # one worker: no pool at all
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert not _fork_is_safe()
        assert choose_executor("auto", 10_000, 4) == "thread"
    finally:
        stop.set()
        helper.join()
    with pytest.raises(ValueError, match="executor must be one of 'auto', 'thread', 'process'"):
        DatasetSplitter(executor="gpu")


def test_auto_executor_forks_in_a_clean_process_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from tlkit.data._scan import choose_executor as c; "
        "print(c('auto', 10_000, 2)); import tensorflow; print(c('auto', 10_000, 2))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["process", "thread"]


def test_every_skip_carries_its_code(tree: Path) -> None:
    from tlkit.data import SKIP_CODES

    (tree / "a" / ".DS_Store").write_bytes(b"x")
    (tree / "a" / "notes.txt").write_text("hello")
    (tree / "a" / "empty.png").write_bytes(b"")
    write_image(tree / "b" / "scan.tif", fmt="TIFF")
    good = (tree / "b" / "b_000.png").read_bytes()
    (tree / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    (tree / "README.md").write_text("photos")
    (tree / "c" / "gone.png").symlink_to(tree / "nowhere.png")
    split = DatasetSplitter(val=0.2, test=0.2, seed=0).split(tree)
    codes = {s.path: s.code for s in split.skipped}
    assert codes == {
        "a/.DS_Store": "hidden",
        "a/notes.txt": "not_an_image",
        "a/empty.png": "empty",
        "b/scan.tif": "unsupported_format",
        "b/cut.png": "undecodable",
        "README.md": "outside_class",
        "c/gone.png": "refused",  # a broken symlink inside a class is not read
    }
    assert set(codes.values()) <= set(SKIP_CODES)
