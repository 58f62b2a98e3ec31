"""The data layer's contract with augmentation: any ``tlkit.protocols.Augmenter``, no
import of ``tlkit.augment``; and one error for one bad seed across data, datasets, augment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tlkit.data import Sample, to_dataset  # noqa: E402
from tlkit.errors import ArgumentTypeError, InvalidArgumentError, TlkitError  # noqa: E402
from tlkit.protocols import Augmenter  # noqa: E402


class Invert:
    """A hand-written augmenter: no Keras layer, no tlkit.augment."""

    seed = None
    layers = ("invert",)
    mixes_labels = False

    def __init__(self) -> None:
        self.calls = 0

    def clone(self) -> Invert:
        return Invert()

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def apply(self, images, labels=None, seed=None):
        assert seed is not None and seed.shape == (2,)  # one stateless seed per batch
        return 255.0 - images, labels


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], Path]:
    from tlkit.datasets import make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path_factory.mktemp("aug"), {"a": 3, "b": 3}, image_size=12)
    samples = [Sample(f"{c}/{p.name}", k) for k, c in enumerate("ab") for p in (root / c).iterdir()]
    return sorted(samples, key=lambda s: s.path), root


def test_a_hand_written_augmenter_is_applied(folder) -> None:
    samples, root = folder
    assert isinstance(Invert(), Augmenter)
    plain = np.concatenate([x.numpy() for x, _ in to_dataset(samples, 12, 4, root=root)])
    ds = to_dataset(samples, 12, 4, augment=Invert(), root=root, seed=0)
    augmented = np.concatenate([x.numpy() for x, _ in ds])
    np.testing.assert_allclose(augmented, 255.0 - plain)
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert labels.tolist() == [s.label for s in samples]


def test_an_empty_augmenter_means_no_augmentation(folder) -> None:
    samples, root = folder

    class Nothing(Invert):
        layers = ()

        def apply(self, images, labels=None, seed=None):  # pragma: no cover - never called
            raise AssertionError("an augmenter without layers must not be called")

    plain = np.concatenate([x.numpy() for x, _ in to_dataset(samples, 12, 4, root=root)])
    out = np.concatenate([x.numpy() for x, _ in to_dataset(samples, 12, 4, Nothing(), root=root)])
    np.testing.assert_array_equal(out, plain)


def test_an_incomplete_augmenter_is_named(folder) -> None:
    samples, root = folder

    class NoClone:
        seed = None
        layers = ("x",)
        mixes_labels = False

        def output_size(self, size):
            return size

        def apply(self, images, labels=None, seed=None):
            return images, labels

    with pytest.raises(ArgumentTypeError, match=r"NoClone, which lacks clone$"):
        to_dataset(samples, 12, 4, augment=NoClone(), root=root)


def test_the_data_layer_does_not_import_augment(folder) -> None:
    samples, root = folder
    code = (
        "import sys; from tlkit.data import Sample, to_dataset; "
        f"ds = to_dataset([Sample({samples[0].path!r}, 0)], 12, 1, root={str(root)!r}); "
        "next(iter(ds)); "
        "print(sorted(m for m in sys.modules if m.startswith('tlkit.augment')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _seed_calls(root: Path, samples: list[Sample]):
    from tlkit import DatasetSplitter
    from tlkit.augment import AugmentationPipeline
    from tlkit.datasets import make_synthetic_dataset

    x = np.zeros((1, 8, 8, 3), np.float32)
    return {
        "DatasetSplitter": lambda seed: DatasetSplitter(seed=seed),
        "to_dataset": lambda seed: to_dataset(samples, 8, 2, root=root, seed=seed),
        "AugmentationPipeline": lambda seed: AugmentationPipeline([], seed=seed),
        "AugmentationPipeline.preset": lambda seed: AugmentationPipeline.preset("light", seed=seed),
        "AugmentationPipeline.apply": lambda seed: AugmentationPipeline.preset("light").apply(
            x, seed=seed
        ),
        "AugmentationPipeline.preview": lambda seed: AugmentationPipeline.preset("light").preview(
            x, n=1, per_image=1, path=root / "p.png", seed=seed
        ),
        "make_synthetic_dataset": lambda seed: make_synthetic_dataset(
            root / "syn", {"a": 1}, seed=seed
        ),
    }


@pytest.mark.parametrize(
    ("seed", "error", "message"),
    [
        ("42", ArgumentTypeError, r"seed must be an int >= 0( or None)?, got '42' \(str\)"),
        (True, ArgumentTypeError, r"seed must be an int >= 0( or None)?, got True \(bool\)"),
        (1.5, ArgumentTypeError, r"seed must be an int >= 0( or None)?, got 1\.5 \(float\)"),
        (-1, InvalidArgumentError, r"seed must be an int >= 0( or None)?, got -1"),
    ],
)
def test_a_bad_seed_gives_the_same_error_everywhere(folder, seed, error, message) -> None:
    samples, root = folder
    for name, call in _seed_calls(root, samples).items():
        with pytest.raises(error, match=message) as info:
            call(seed)
        assert isinstance(info.value, TlkitError), name
