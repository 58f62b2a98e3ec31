"""EXIF-rotated photos through shuffle plus cache: each arrives upright, with its own label.

With a cache, the pipeline permutes paths, orientations and labels up front (the
cache then keeps one order). If the orientations were not permuted with the
paths, a photo would be turned by another photo's EXIF tag and arrive sideways,
while labels stayed aligned and every other test still passed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from tlkit.data import Sample, inspect_file, to_dataset  # noqa: E402

# Image.transpose that stores an upright picture so that EXIF tag k turns it back.
_STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _upright() -> np.ndarray:
    """24x40, no rotation or mirror maps it to itself: red top band, green left block."""
    up = np.zeros((24, 40, 3), np.uint8)
    up[:] = (20, 20, 220)
    up[:8] = (220, 20, 20)
    up[8:, :10] = (20, 220, 20)
    return up


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample]]:
    """16 JPEGs, orientations 1..8 twice; label i for the i-th file."""
    root = tmp_path_factory.mktemp("phones")
    samples = []
    for i in range(16):
        orientation = i % 8 + 1
        stored = Image.fromarray(_upright())
        if orientation != 1:
            stored = stored.transpose(_STORE[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        name = f"p{i:02d}_o{orientation}.jpg"
        stored.save(root / name, "JPEG", quality=95, exif=exif)
        info = inspect_file(root / name)
        assert info.orientation == orientation
        samples.append(Sample(name, i, orientation=info.orientation))
    return root, samples


@pytest.mark.parametrize("cache", ["memory", "file"])
def test_rotated_photos_arrive_upright_under_shuffle_and_cache(
    phones: tuple[Path, list[Sample]], cache: str, tmp_path: Path
) -> None:
    root, samples = phones
    ds = to_dataset(
        samples,
        image_size=(24, 40),
        batch_size=5,
        shuffle=True,
        seed=3,
        cache="memory" if cache == "memory" else tmp_path / "cache",
        root=root,
        class_names=[f"c{i}" for i in range(16)],
    )
    up = _upright().astype(np.float32)
    orders = []
    for _epoch in range(2):
        labels = []
        for x, y in ds:
            for image, label in zip(x.numpy(), y.numpy(), strict=True):
                err = float(np.abs(image - up).mean())
                name = samples[int(label)].path
                assert err < 6.0, f"{name} arrived turned the wrong way (mean abs error {err:.1f})"
                labels.append(int(label))
        assert sorted(labels) == list(range(16))
        orders.append(labels)
    # the shuffle really reorders (otherwise this test could not see a misalignment)
    assert orders[0] != list(range(16))
