"""The ``tlkit split`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tlkit.cli import main


def test_split_command_writes_manifest(tree: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.json"
    code = main(["split", str(tree), "--val", "0.2", "--test", "6", "--seed", "3", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "imbalance ratio" in text and f"manifest written to {out}" in text
    data = json.loads(out.read_text())
    assert data["params"]["val"] == 0.2 and data["params"]["test"] == 6
    assert sum(1 for s in data["samples"] if s["split"] == "test") == 6


def test_split_command_default_manifest_path(tree: Path) -> None:
    assert main(["split", str(tree)]) == 0
    assert tree.with_name("photos.split.json").is_file()


def test_split_command_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["split", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tlkit split: error:") and "does not exist" in err


def test_console_script_entry_point(tree: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tlkit.cli", "split", str(tree), "--show-skipped"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "total" in proc.stdout
