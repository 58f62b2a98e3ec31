"""The same tree and seed give the same split in any process (PYTHONHASHSEED differs).

The splitter orders tied groups by a blake2b digest of seed and path. Python's
own ``hash()`` of a string changes from process to process, so a splitter that
used it would pass every in-process test and still split differently in the next
run; this test runs the split in fresh interpreters with different hash seeds and
also pins the expected assignment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tlkit
from tlkit.datasets import make_synthetic_dataset

SRC = str(Path(tlkit.__file__).resolve().parent.parent)

CHILD = """
import json, sys
from tlkit import DatasetSplitter
split = DatasetSplitter(val=0.2, test=0.2, seed=42, executor="thread").split(sys.argv[1])
print(json.dumps({name: list(part.paths) for name, part in split.parts.items()}))
"""

# DatasetSplitter(val=0.2, test=0.2, seed=42) on make_synthetic_dataset(root,
# {"a": 12, "b": 9, "c": 7}, image_size=8, seed=3): the files of the val and test parts.
PINNED = {
    "val": [
        "a/a_0000.jpg",
        "a/a_0009.png",
        "b/b_0000.jpg",
        "b/b_0001.png",
        "c/c_0001.png",
        "c/c_0002.jpg",
    ],
    "test": ["a/a_0004.jpg", "a/a_0008.jpg", "b/b_0004.jpg", "b/b_0007.png", "c/c_0005.png"],
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("determinism") / "photos"
    return make_synthetic_dataset(root, {"a": 12, "b": 9, "c": 7}, image_size=8, seed=3)


def _split_in_subprocess(root: Path, hash_seed: str) -> dict[str, list[str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONHASHSEED"] = hash_seed
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        name: [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
        for name, paths in parts.items()
    }


def test_same_split_in_processes_with_different_hash_seeds(tree: Path) -> None:
    first = _split_in_subprocess(tree, "0")
    second = _split_in_subprocess(tree, "987654321")
    assert first == second
    assert sum(map(len, first.values())) == 28
    assert {name: first[name] for name in PINNED} == PINNED
