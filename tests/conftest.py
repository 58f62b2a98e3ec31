"""Shared test helpers: small image files written on the fly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first (stable order otherwise).

    pytest-xdist hands tests to its workers in collection order; a two-minute test
    handed out last keeps one worker busy while the others have finished. Started
    first, it runs beside the many short ones.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def write_image(
    path: Path, size: tuple[int, int] = (8, 8), color: int = 0, mode: str = "RGB", fmt: str = "PNG"
) -> Path:
    """Write a small image whose pixels depend on ``color`` (so contents differ)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(color)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode) if mode != "RGB" else Image.fromarray(arr)
    img.save(path, fmt)
    return path


def jpeg_bytes(size: tuple[int, int] = (16, 16), seed: int = 0, **save_kwargs: object) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **save_kwargs)
    return buf.getvalue()


def make_tree(root: Path, counts: dict[str, int], start: int = 0) -> Path:
    """A folder-per-class tree of distinct PNG files."""
    k = start
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(root / cls / f"{cls}_{i:03d}.png", color=k)
            k += 1
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"a": 30, "b": 20, "c": 10})
