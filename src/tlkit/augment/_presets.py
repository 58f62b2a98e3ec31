"""The named augmentation presets: lists of Keras 3 layers."""

from __future__ import annotations

import keras

from tlkit.errors import InvalidArgumentError

__all__ = ["PRESETS", "preset_layers"]

#: Preset names, weakest first.
PRESETS = ("none", "light", "standard", "heavy")


def preset_layers(name: str, seed: int | None, interpolation: str) -> list[keras.layers.Layer]:
    """Fresh layers of preset ``name``; layer ``i`` gets seed ``seed + i`` (if a seed is set).

    Geometric warps reflect at the borders and run after resizing, at the
    output size. The cheap flip comes first and the photometric layer last.
    """
    counter = iter(range(100))

    def s() -> int | None:
        i = next(counter)
        return None if seed is None else seed + i

    warp = {"fill_mode": "reflect", "interpolation": interpolation}
    L = keras.layers
    if name == "none":
        return []
    if name == "light":
        return [
            L.RandomFlip("horizontal", seed=s()),
            L.RandomTranslation(0.05, 0.05, seed=s(), **warp),
        ]
    if name == "standard":
        return [
            L.RandomFlip("horizontal", seed=s()),
            L.RandomRotation(0.05, seed=s(), **warp),
            L.RandomZoom(0.1, seed=s(), **warp),
            L.RandomContrast((0.1, 0.1), seed=s()),
        ]
    if name == "heavy":
        return [
            L.RandomFlip("horizontal", seed=s()),
            L.RandomRotation(0.1, seed=s(), **warp),
            L.RandomZoom(0.2, seed=s(), **warp),
            L.RandomTranslation(0.1, 0.1, seed=s(), **warp),
            L.RandomContrast((0.2, 0.2), seed=s()),
            L.RandomBrightness(0.2, seed=s()),
        ]
    raise InvalidArgumentError(
        f"preset must be one of {', '.join(map(repr, PRESETS))}; got {name!r}"
    )
