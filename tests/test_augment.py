"""Tests of AugmentationPipeline: presets, seeding, config round trip, repr, preview."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import tlkit  # noqa: E402
from tlkit.augment import PRESETS, AugmentationPipeline  # noqa: E402
from tlkit.data import Sample, to_dataset  # noqa: E402

COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    base = np.stack([xx * 10, yy * 10, (xx + yy) * 5], -1).astype(np.float32)
    return np.stack([base + rng.uniform(0, 10, base.shape) for _ in range(6)]).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], Path]:
    root = tmp_path_factory.mktemp("aug")
    samples = []
    for k, colour in enumerate(COLOURS):
        (root / f"c{k}").mkdir()
        for i in range(4):
            arr = np.zeros((20, 30, 3), np.uint8)
            arr[:] = colour
            arr[:5, :5] = 255  # a corner mark that flips and rotations move
            Image.fromarray(arr).save(root / f"c{k}" / f"{i}.png")
            samples.append(Sample(f"c{k}/{i}.png", k))
    return samples, root


def test_exported_from_tlkit_lazily() -> None:
    assert tlkit.AugmentationPipeline is AugmentationPipeline


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build_and_keep_shape(name: str, images: np.ndarray) -> None:
    aug = AugmentationPipeline.preset(name, seed=0)
    out = aug(images, seed=1)
    assert out.shape == images.shape and out.dtype == tf.float32
    assert aug.output_size((24, 24)) == (24, 24)
    if name == "none":
        np.testing.assert_array_equal(out, images)
    else:
        assert not np.allclose(out, images)


def test_preset_contents_and_validation() -> None:
    assert AugmentationPipeline.preset("none").layers == ()
    assert AugmentationPipeline.preset("standard").names() == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomContrast",
    ]
    standard = AugmentationPipeline.preset("standard", interpolation="bilinear")
    assert standard.layers[1].interpolation == "bilinear"
    with pytest.raises(ValueError, match="'none', 'light', 'standard', 'heavy'"):
        AugmentationPipeline.preset("extreme")
    with pytest.raises(ValueError, match="'nearest', 'bilinear'"):
        AugmentationPipeline.preset("light", interpolation="cubic")
    with pytest.raises(TypeError, match=r"layers\[1\] must be a keras layer"):
        AugmentationPipeline([keras.layers.RandomFlip(), "flip"])
    with pytest.raises(TypeError, match="list of keras layers"):
        AugmentationPipeline(keras.layers.RandomFlip())
    with pytest.raises(ValueError, match="seed"):
        AugmentationPipeline([], seed=-1)


def test_same_seed_same_output_different_seed_different(images: np.ndarray) -> None:
    a = AugmentationPipeline.preset("heavy", seed=0)
    b = AugmentationPipeline.preset("heavy", seed=123)  # layer seeds differ: unused when seeded
    x1 = a(images, seed=42).numpy()
    np.testing.assert_array_equal(x1, a(images, seed=42).numpy())
    np.testing.assert_array_equal(x1, b(images, seed=42).numpy())
    assert not np.array_equal(x1, a(images, seed=43).numpy())
    assert not np.array_equal(x1, a(images).numpy())  # unseeded: the layers' own generators


def test_seeded_output_is_the_same_in_a_graph(images: np.ndarray) -> None:
    aug = AugmentationPipeline.preset("standard", seed=0)
    eager = aug(images, seed=tf.constant([5, 9], tf.int64)).numpy()
    graph = tf.function(lambda x, s: aug(x, seed=s))(tf.constant(images), tf.constant([5, 9]))
    np.testing.assert_allclose(eager, graph.numpy(), atol=1e-3)


def test_layers_keep_their_own_generators_after_seeded_use(images: np.ndarray) -> None:
    aug = AugmentationPipeline.preset("standard", seed=0)
    before = [layer.generator for layer in aug.layers]
    aug(images, seed=1)
    assert [layer.generator for layer in aug.layers] == before


def test_config_round_trips_through_json(images: np.ndarray) -> None:
    aug = AugmentationPipeline(
        [
            keras.layers.RandomFlip("horizontal_and_vertical"),
            keras.layers.RandomRotation(0.2, fill_mode="constant", interpolation="nearest"),
            keras.layers.RandomTranslation(0.1, (-0.2, 0.05)),
            keras.layers.RandomBrightness((-0.3, 0.1)),
            keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.4),
        ],
        seed=11,
    )
    text = json.dumps(aug.get_config())
    back = AugmentationPipeline.from_config(json.loads(text))
    assert back == aug
    assert back.seed == 11 and back.names() == aug.names()
    assert back.layers[1].fill_mode == "constant"
    assert back.layers[2].width_factor == [-0.2, 0.05]
    np.testing.assert_allclose(back(images, seed=3), aug(images, seed=3), atol=1e-3)
    assert aug != AugmentationPipeline.preset("light")
    assert AugmentationPipeline.preset("light", seed=1) == AugmentationPipeline.preset(
        "light", seed=1
    )
    assert AugmentationPipeline.preset("light", seed=1) != AugmentationPipeline.preset(
        "light", seed=2
    )
    with pytest.raises(ValueError, match="get_config"):
        AugmentationPipeline.from_config({"seed": 1})


def test_repr_lists_layers_and_parameters() -> None:
    text = repr(AugmentationPipeline.preset("standard", seed=4))
    assert text.startswith("AugmentationPipeline(seed=4, layers=[")
    assert "RandomFlip(mode='horizontal')" in text
    assert "RandomRotation(factor=(-0.05, 0.05), fill_mode='reflect'" in text
    assert "interpolation='nearest'" in text
    assert "RandomZoom(height_factor=0.1" in text
    assert "RandomContrast(factor=(0.1, 0.1), value_range=(0, 255))" in text
    assert repr(AugmentationPipeline()) == "AugmentationPipeline(seed=None, layers=[])"


def test_augmentation_inside_dataset_is_deterministic_and_parallel_safe(folder) -> None:
    samples, root = folder
    aug = AugmentationPipeline.preset("heavy", seed=9)

    def run(parallel: int | None) -> np.ndarray:
        ds = to_dataset(samples, 20, 4, augment=aug, root=root, num_parallel_calls=parallel)
        return np.concatenate([x.numpy() for x, _ in ds])

    a = run(None)
    np.testing.assert_array_equal(a, run(1))
    plain = np.concatenate([x.numpy() for x, _ in to_dataset(samples, 20, 4, root=root)])
    assert not np.array_equal(a, plain)
    # the pipeline object itself is not consumed: a second dataset starts afresh
    np.testing.assert_array_equal(a, run(None))


def test_dataset_seed_seeds_an_unseeded_pipeline(folder) -> None:
    samples, root = folder
    aug = AugmentationPipeline.preset("standard")  # no seed of its own

    def run(seed: int) -> np.ndarray:
        ds = to_dataset(samples, 16, 6, augment=aug, seed=seed, root=root)
        return np.concatenate([x.numpy() for x, _ in ds])

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_augmenting_validation_data_warns(folder) -> None:
    from tlkit.data import SplitPart

    samples, root = folder
    part = SplitPart("val", root, ("c0", "c1", "c2"), tuple(samples))
    with pytest.warns(UserWarning, match="meant for training data"):
        part.to_dataset(image_size=8, augment=AugmentationPipeline.preset("light"))


def test_mixup_makes_labels_one_hot_and_mixes_them(folder) -> None:
    samples, root = folder
    aug = AugmentationPipeline([keras.layers.MixUp(alpha=0.4)], seed=0)
    assert aug.mixes_labels
    ds = to_dataset(
        samples, 8, 12, augment=aug, root=root, class_names=("c0", "c1", "c2"), shuffle=True, seed=0
    )
    assert ds.element_spec[1].shape.as_list() == [None, 3]
    _x, y = next(iter(ds))
    y = y.numpy()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert ((y > 0.01) & (y < 0.99)).any()  # some labels are mixtures
    with pytest.raises(ValueError, match="one-hot labels"):
        aug.apply(np.zeros((2, 8, 8, 3), np.float32))


def test_random_crop_sets_the_output_size(folder) -> None:
    samples, root = folder
    aug = AugmentationPipeline([keras.layers.RandomCrop(12, 14)], seed=0)
    assert aug.output_size((20, 20)) == (12, 14)
    ds = to_dataset(samples, 20, 4, augment=aug, root=root)
    assert ds.element_spec[0].shape.as_list() == [None, 12, 14, 3]
    assert next(iter(ds))[0].shape == (4, 12, 14, 3)


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_preview_from_samples_and_from_dataset(folder, tmp_path: Path) -> None:
    samples, root = folder
    aug = AugmentationPipeline.preset("standard", seed=0)
    out = aug.preview(
        samples, n=8, path=tmp_path / "grid.png", per_image=4, root=root, image_size=32
    )
    w, h = _png_size(out)
    assert w > h  # 2 rows of 5 tiles
    ds = to_dataset(samples, 32, 5, root=root)
    out2 = aug.preview(ds, n=9, path=tmp_path / "sub" / "grid2.png", per_image=3)
    _w2, h2 = _png_size(out2)
    assert h2 > h  # 3 rows
    arr = np.asarray(Image.open(out2).convert("RGB"))
    assert arr.std() > 10  # not blank
    with pytest.raises(ValueError, match="n must be"):
        aug.preview(samples, n=0, root=root)
    with pytest.raises(TypeError, match="source must be"):
        aug.preview(42)
