"""Arguments the benchmark scripts share (imported as ``_args``: a script's folder is on its path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def augment_arg(text: str, seed: int) -> Any:
    """``--augment``: a preset name, ``none`` (no augmentation), or ``views:SET`` (finite views).

    ``none`` gives ``None`` rather than the empty preset, so phases that can use a
    feature or boundary cache do.
    """
    if text == "none":
        return None
    if text.startswith("views:"):
        from tlkit.augment import Views

        return Views(text.removeprefix("views:"), seed=seed)
    return text


def add_study_runs(p: Any) -> None:
    """``RUN [RUN ...]`` (study output folders, ``--out``) and ``--root`` (their images)."""
    from pathlib import Path

    p.add_argument("runs", nargs="+", type=Path, help="study output folders (--out)")
    p.add_argument("--root", type=Path, help="the split's image folder (default: ELPV's)")


def study_models(runs: Any, root: Any = None) -> Iterator[tuple[Any, Any, Any, Any]]:
    """``(run folder, split, model file, loaded FineTuner)`` for every model of saved study runs.

    ``root`` is the folder of the images the splits name (default: the images of the
    ``elpv-dataset`` package, the study's data); the models are quiet (``verbose=0``).
    """
    from pathlib import Path

    from tlkit import FineTuner
    from tlkit.data import Split

    if root is None:
        import elpv_dataset

        root = Path(elpv_dataset.__file__).parent / "data" / "images"
    for run in runs:
        split = Split.load(run / "split.json", root=root)
        for path in sorted(run.glob("*.keras")):
            tuner = FineTuner.load(path)
            tuner.verbose = 0
            yield run, split, path, tuner
