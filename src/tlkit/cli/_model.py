"""Loading the inputs the commands share: a saved model and a split manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlkit.cli._common import log

__all__ = ["add_manifest_args", "load_model", "load_split", "manifest_options"]


#: What a command says when a model file cannot be used, by ModelFileError.code (the
#: library's messages name the Python functions that make and open model files).
_MODEL_FILE_ADVICE = {
    "not_keras": "{where} is not a .keras model file (not a zip archive: truncated, corrupt, or "
    "another format); save models with tlkit train",
    "not_tlkit": "{where} is a Keras model without tlkit metadata; tlkit commands read models "
    "saved by tlkit train (FineTuner.save)",
    "old_format": "{where} was written by an older tlkit, whose model file format this tlkit "
    "does not read: train the model again with tlkit train, or use the tlkit that wrote it",
    "unknown_backbone": "{where} was trained on a backbone this tlkit does not know (a "
    "backbone registered in the Python session that trained it?): see tlkit backbones for the "
    "ones it knows",
}


def load_model(path: Path) -> Any:
    """A :class:`~tlkit.finetune.FineTuner` from a ``.keras`` file it saved."""
    from tlkit.errors import ModelFileError
    from tlkit.finetune import FineTuner

    log(f"loading {path}")
    try:
        return FineTuner.load(path)
    except ModelFileError as exc:
        advice = _MODEL_FILE_ADVICE.get(exc.code or "")
        if advice is None:
            raise
        where = repr(str(path))
        raise ModelFileError(advice.format(where=where), code=exc.code) from exc


def add_manifest_args(p: argparse.ArgumentParser) -> None:
    """``--root DIR`` and ``--on-edit``, for the commands that read a split manifest."""
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help="dataset folder of the manifest; needed when the manifest is not in that folder "
        "or above it (a manifest only reaches images below its own folder unless you say so)",
    )
    p.add_argument(
        "--on-edit",
        default="error",
        choices=["error", "warn"],
        help="a manifest edited by hand (files moved between parts, relabelled): fail "
        "(default) or warn and use it as written",
    )


def manifest_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`load_split` keywords from the flags of :func:`add_manifest_args`."""
    return {
        "skip_missing": bool(getattr(args, "skip_missing", False)),
        "root": getattr(args, "root", None),
        "on_edit": getattr(args, "on_edit", "error"),
    }


def load_split(
    path: Path, *, skip_missing: bool = False, root: Path | None = None, on_edit: str = "error"
) -> Any:
    """A :class:`~tlkit.data.Split` from its manifest, every file checked against its hash."""
    from tlkit.data import Split

    split = Split.load(
        path, root=root, on_mismatch="skip" if skip_missing else "error", on_edit=on_edit
    )
    if split.skipped and skip_missing:
        log(f"{path}: {len(split.skipped)} file(s) left out (missing, changed or skipped)")
    return split
