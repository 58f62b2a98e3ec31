"""Arguments the benchmark scripts share (imported as ``_args``: a script's folder is on its path)."""

from __future__ import annotations

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
