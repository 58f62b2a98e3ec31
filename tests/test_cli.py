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
    captured = capsys.readouterr()
    assert "imbalance ratio" in captured.out  # results on stdout
    assert f"manifest written to {out}" in captured.err  # progress on stderr
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


def test_backbones_command_lists_offline_ones(capsys) -> None:
    assert main(["backbones", "efficientnet_lite*", "--pretrained"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["name", "input"]
    rows = [line.split() for line in out[2:]]
    assert [r[0] for r in rows] == [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ]
    assert rows[0][1:] == ["224x224", "lite", "installed"]


def test_backbones_command_no_match(capsys) -> None:
    assert main(["backbones", "vgg*"]) == 1
    assert "no backbone matches 'vgg*'" in capsys.readouterr().err


def test_the_commands_default_backbone_is_finetuners() -> None:
    """One default: ``tlkit train``, ``cv`` and ``learning-curve`` build what FineTuner() builds."""
    import inspect

    from tlkit import FineTuner
    from tlkit.cli import build_parser

    default = inspect.signature(FineTuner).parameters["backbone"].default
    assert default == "efficientnet_lite2"
    parser = build_parser()
    for command in ("train", "cv", "learning-curve"):
        args = parser.parse_args([command, "s.json", "-o", "out"])
        assert args.backbone == default, command
