"""Loading the inputs the commands share: a saved model and a split manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tlkit.cli._common import log

__all__ = ["load_model", "load_split"]


def load_model(path: Path) -> Any:
    """A :class:`~tlkit.finetune.FineTuner` from a ``.keras`` file it saved."""
    from tlkit.finetune import FineTuner

    log(f"loading {path}")
    return FineTuner.load(path)


def load_split(path: Path, *, skip_missing: bool = False) -> Any:
    """A :class:`~tlkit.data.Split` from its manifest, every file checked against its hash."""
    from tlkit.data import Split

    split = Split.load(path, on_mismatch="skip" if skip_missing else "error")
    if split.skipped and skip_missing:
        log(f"{path}: {len(split.skipped)} file(s) left out (missing, changed or skipped)")
    return split
