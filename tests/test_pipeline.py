"""Tests of the input pipeline: tlkit.data.to_dataset and the in-graph decoder."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

tf = pytest.importorskip("tensorflow")

from tlkit import AugmentationPipeline, DatasetSplitter  # noqa: E402
from tlkit.data import Sample, SplitPart, inspect_file, to_dataset  # noqa: E402
from tlkit.data._decode import jpeg_ratio, load_image, orient, resize_with_policy  # noqa: E402
from tlkit.data._pipeline import decode_errors  # noqa: E402
from tlkit.errors import ImageDecodeError  # noqa: E402

COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]  # class k: channel k dominates
FORMATS = ["jpg", "png", "gif", "bmp"]
SIZES = [(30, 40), (48, 36), (25, 25), (40, 64)]


def _save(path: Path, arr: np.ndarray, fmt: str) -> None:
    im = Image.fromarray(arr)
    if fmt == "jpg":
        im.save(path, "JPEG", quality=92)
    elif fmt == "gif":
        im.convert("P", palette=Image.Palette.ADAPTIVE).save(path, "GIF")
    else:
        im.save(path, {"png": "PNG", "bmp": "BMP"}[fmt])


def _png16(path: Path, arr: np.ndarray) -> None:
    """Write a 16-bit RGB(A) PNG (Pillow cannot)."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def coloured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes whose colour encodes the label; mixed formats and sizes."""
    root = tmp_path_factory.mktemp("coloured")
    rng = np.random.default_rng(0)
    for k, colour in enumerate(COLOURS):
        (root / f"c{k}").mkdir()
        for i in range(8):
            h, w = SIZES[(i + k) % len(SIZES)]
            arr = np.clip(
                np.array(colour, np.float32) + rng.normal(0, 6, (h, w, 3)), 0, 255
            ).astype(np.uint8)
            fmt = FORMATS[(i + k) % len(FORMATS)]
            _save(root / f"c{k}" / f"{i:02d}.{fmt}", arr, fmt)
    return root


@pytest.fixture(scope="module")
def split(coloured: Path):
    return DatasetSplitter(val=3, test=3, seed=0).split(coloured)


def _batches(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


# -- shapes, dtypes, values, labels --------------------------------------------------------


def test_shapes_dtypes_and_value_range(split) -> None:
    ds = split.train.to_dataset(image_size=(20, 28), batch_size=5)
    spec_x, spec_y = ds.element_spec
    assert spec_x.shape.as_list() == [None, 20, 28, 3] and spec_x.dtype == tf.float32
    assert spec_y.shape.as_list() == [None] and spec_y.dtype == tf.int32
    sizes = []
    for x, y in ds:
        assert x.dtype == tf.float32 and y.dtype == tf.int32
        assert x.shape[1:] == (20, 28, 3) and x.shape[0] == y.shape[0]
        assert float(tf.reduce_min(x)) >= 0.0 and float(tf.reduce_max(x)) <= 255.0
        sizes.append(int(y.shape[0]))
    n = len(split.train)
    assert sum(sizes) == n and sizes[:-1] == [5] * (len(sizes) - 1)
    dropped = split.train.to_dataset(image_size=8, batch_size=5, drop_remainder=True)
    assert dropped.element_spec[0].shape.as_list() == [5, 8, 8, 3]
    assert sum(int(y.shape[0]) for _, y in dropped) == n - n % 5


def test_unshuffled_order_is_sample_order(split) -> None:
    for part in (split.train, split.val, split.test):
        _, labels = _batches(part.to_dataset(image_size=8, batch_size=4))
        np.testing.assert_array_equal(labels, part.labels)


def test_each_image_arrives_with_its_own_label(split) -> None:
    aug = AugmentationPipeline.preset("standard", seed=3)
    ds = split.train.to_dataset(image_size=16, batch_size=4, augment=aug, shuffle=True, seed=5)
    images, labels = _batches(ds)
    assert sorted(labels.tolist()) == sorted(split.train.labels.tolist())
    assert labels.tolist() != split.train.labels.tolist()  # really shuffled
    dominant = images.mean(axis=(1, 2)).argmax(axis=-1)
    np.testing.assert_array_equal(dominant, labels)


def test_pipelines_run_without_the_autotune_thread(split) -> None:
    """Deleting an iterator waited up to 60 s for tf.data's autotuning thread (a race in
    TensorFlow: benchmarks/iterator_teardown.py); tlkit's pipelines have it off, and
    ``without_autotune_thread`` turns it off unless the dataset's options chose."""
    from tlkit.data._pipeline import without_autotune_thread

    for kwargs in ({}, {"cache": "memory", "shuffle": True, "seed": 0}):
        assert (
            split.train.to_dataset(24, batch_size=4, **kwargs).options().autotune.enabled is False
        )
    plain = tf.data.Dataset.range(4).batch(2)
    assert plain.options().autotune.enabled is None
    off = without_autotune_thread(plain)
    assert off.options().autotune.enabled is False
    assert list(off.as_numpy_iterator())[1].tolist() == [2, 3]  # the same elements
    for chosen in (True, False):
        options = tf.data.Options()
        options.autotune.enabled = chosen
        mine = plain.with_options(options)
        assert without_autotune_thread(mine) is mine  # the user's choice stands


def test_function_form_needs_root_and_matches_part(split, coloured: Path) -> None:
    samples = list(split.val)
    with pytest.raises(ValueError, match="root="):
        to_dataset(samples, image_size=8)
    a, la = _batches(to_dataset(samples, image_size=8, batch_size=2, root=coloured))
    b, lb = _batches(split.val.to_dataset(image_size=8, batch_size=2))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)


def test_empty_part_gives_empty_dataset(coloured: Path) -> None:
    part = SplitPart("val", coloured, ("a", "b"), ())
    ds = part.to_dataset(image_size=8)
    assert list(ds) == []
    assert ds.element_spec[0].shape.as_list() == [None, 8, 8, 3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resize": "squash"}, "resize must be one of 'stretch', 'crop', 'pad'"),
        ({"image_size": 0}, "image_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed must be an int >= 0 or None, got -1"),
        ({"num_parallel_calls": 0}, "num_parallel_calls"),
    ],
)
def test_arguments_are_validated_early(split, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=re.escape(match) if "'" in match else match):
        split.train.to_dataset(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # A wrong type is an ArgumentTypeError (a TypeError) since the structure pass (issue 11).
        ({"cache": 3}, "cache must be None, 'memory' or a folder path, got 3 (int)"),
        ({"seed": "42"}, "seed must be an int >= 0 or None, got '42' (str)"),
        ({"image_size": "big"}, "image_size must be an int or a (height, width) pair"),
        ({"image_size": (8, 8, 3)}, "image_size must be an int or a (height, width) pair"),
        ({"shuffle": "yes"}, "shuffle must be True or False"),
        # The data layer does not import tlkit.augment: names and layer lists are refused,
        # saying what to pass instead.
        (
            {"augment": "light"},
            "augment='light': pass tlkit.augment.AugmentationPipeline.preset('light', seed=...)",
        ),
        ({"augment": [object()]}, "pass tlkit.augment.AugmentationPipeline([...layers]"),
        ({"augment": 3}, "augment must be an Augmenter"),
        ({"samples": "photos/"}, "samples must be a SplitPart"),
    ],
)
def test_wrong_types_are_argument_type_errors(split, kwargs: dict, match: str) -> None:
    from tlkit.errors import ArgumentTypeError

    kwargs = {"samples": split.train, **kwargs}
    with pytest.raises(ArgumentTypeError, match=re.escape(match)):
        to_dataset(**kwargs)


# -- formats -------------------------------------------------------------------------------


def _reference_rgb(path: Path) -> np.ndarray:
    """What the pipeline promises, computed with Pillow: RGB, alpha over white, 16 to 8 bits."""
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):
        gray = np.asarray(im).astype(np.float64) / 257.0
        return np.repeat(np.round(gray)[..., None], 3, axis=-1)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")).astype(np.float64)
    return np.asarray(im.convert("RGB")).astype(np.float64)


@pytest.fixture(scope="module")
def format_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = np.stack([xx * 8, yy * 10, 255 - xx * 4], -1).astype(np.uint8)
    alpha = (np.linspace(0, 255, 32)[None, :] * np.ones((24, 1))).astype(np.uint8)
    files: dict[str, Path] = {}

    def add(name: str, im: Image.Image, fmt: str, **kw: object) -> None:
        files[name] = d / name
        im.save(files[name], fmt, **kw)

    add("rgb.jpg", Image.fromarray(rgb), "JPEG", quality=95)
    add("gray.jpg", Image.fromarray(rgb).convert("L"), "JPEG", quality=95)
    add("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    add("gray.png", Image.fromarray(rgb).convert("L"), "PNG")
    add("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG")
    add("la.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA").convert("LA"), "PNG")
    add("palette.png", Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    add("palette_transparent.png", pal, "PNG", transparency=0)
    add("gray16.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "PNG")
    files["rgb16.png"] = d / "rgb16.png"
    rgb16 = rgb.astype(np.uint16) * 257 + rng.integers(0, 200, rgb.shape).astype(np.uint16)
    _png16(files["rgb16.png"], rgb16)
    files["rgba16.png"] = d / "rgba16.png"
    _png16(files["rgba16.png"], np.dstack([rgb16, alpha.astype(np.uint16) * 257]))
    frames = [Image.fromarray(rgb).convert("P"), Image.fromarray(255 - rgb).convert("P")]
    files["animated.gif"] = d / "animated.gif"
    frames[0].save(files["animated.gif"], "GIF", save_all=True, append_images=frames[1:])
    add("rgb.bmp", Image.fromarray(rgb), "BMP")
    add("gray.bmp", Image.fromarray(rgb).convert("L"), "BMP")
    add("palette.bmp", Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE), "BMP")
    add("rgba.bmp", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "BMP")
    return files


ZOO = [
    "rgb.jpg",
    "gray.jpg",
    "cmyk.jpg",
    "gray.png",
    "rgba.png",
    "la.png",
    "palette.png",
    "palette_transparent.png",
    "gray16.png",
    "rgb16.png",
    "rgba16.png",
    "animated.gif",
    "rgb.bmp",
    "gray.bmp",
    "palette.bmp",
    "rgba.bmp",
]


def test_every_format_gives_three_channels_matching_pillow(format_zoo: dict[str, Path]) -> None:
    names = ZOO
    samples = [Sample(n, 0, orientation=inspect_file(format_zoo[n]).orientation) for n in names]
    root = format_zoo["rgb.jpg"].parent
    images, _ = _batches(to_dataset(samples, image_size=(24, 32), batch_size=len(names), root=root))
    assert images.shape == (len(names), 24, 32, 3)
    for name, image in zip(names, images, strict=True):
        ref = _reference_rgb(format_zoo[name])
        # Same size in and out: only decoder differences (JPEG IDCT, 16-bit rounding).
        tol = 12 if name.endswith(".jpg") else 1
        err = np.abs(image - ref).max()
        assert err <= tol, f"{name}: max abs difference {err} from Pillow"


def test_alpha_is_composited_onto_white(tmp_path: Path) -> None:
    clear = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    image = load_image(tf.constant(str(tmp_path / "clear.png")), 1, (8, 8), "stretch")
    assert np.all(image.numpy() == 255)


def test_gif_gives_first_frame(format_zoo: dict[str, Path]) -> None:
    first = np.asarray(Image.open(format_zoo["animated.gif"]).convert("RGB"))
    image = load_image(tf.constant(str(format_zoo["animated.gif"])), 1, (24, 32), "stretch")
    assert np.abs(image.numpy().astype(int) - first.astype(int)).max() <= 1


# -- EXIF orientation ----------------------------------------------------------------------

_PIL_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PIL_INVERSE = {**_PIL_TRANSPOSE, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@settings(max_examples=40, deadline=None)
@given(
    orientation=st.integers(1, 8),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_orient_equals_pillow_exif_transpose(orientation: int, h: int, w: int, seed: int) -> None:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    im.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(orient(tf.constant(arr), orientation).numpy(), expected)


def _upright() -> np.ndarray:
    """A 24x40 image no rotation or mirror maps to itself: red top band, green left block."""
    up = np.zeros((24, 40, 3), np.uint8)
    up[:] = (20, 20, 220)
    up[:8] = (220, 20, 20)
    up[8:, :10] = (20, 220, 20)
    return up


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_jpeg_arrives_upright(tmp_path: Path, orientation: int) -> None:
    up = _upright()
    stored = Image.fromarray(up)
    if orientation != 1:
        stored = stored.transpose(_PIL_INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone_{orientation}.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    info = inspect_file(path)  # what the split stores
    assert info.orientation == orientation
    assert (info.width, info.height) == stored.size
    sample = Sample(path.name, 0, orientation=info.orientation)
    images, _ = _batches(to_dataset([sample], image_size=(24, 40), root=tmp_path))
    err = np.abs(images[0] - up.astype(np.float32)).mean()
    assert err < 6.0, f"orientation {orientation}: mean abs error {err}"


# -- resizing ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    th=st.integers(1, 40),
    tw=st.integers(1, 40),
    policy=st.sampled_from(["stretch", "crop", "pad"]),
    orientation=st.integers(1, 8),
)
def test_resize_policies_give_exact_target_shape(
    h: int, w: int, th: int, tw: int, policy: str, orientation: int
) -> None:
    image = tf.random.uniform((h, w, 3), 0, 255)
    out = resize_with_policy(image, (th, tw), policy, orientation)
    assert out.shape.as_list() == [th, tw, 3]
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0


def test_pad_letterboxes_and_crop_keeps_the_centre() -> None:
    wide = np.full((20, 40, 3), 200, np.float32)
    wide[:, :10] = 0.0  # dark left quarter
    padded = resize_with_policy(tf.constant(wide), (16, 16), "pad").numpy()
    assert np.all(padded[:4] == 0) and np.all(padded[-4:] == 0)  # black bars top and bottom
    assert padded[8, 12:].min() > 150  # image in the middle
    cropped = resize_with_policy(tf.constant(wide), (16, 16), "crop").numpy()
    assert cropped.min() > 150  # the dark left quarter was cut away
    stretched = resize_with_policy(tf.constant(wide), (16, 16), "stretch").numpy()
    assert stretched[:, 0].max() < 50  # still there, squeezed


def test_resize_policies_through_files(split) -> None:
    for policy in ("stretch", "crop", "pad"):
        images, _ = _batches(split.test.to_dataset(image_size=(12, 20), resize=policy))
        assert images.shape == (len(split.test), 12, 20, 3)


@pytest.mark.parametrize(
    ("hw", "size", "policy", "ratio"),
    [
        ((3000, 4000), (224, 224), "stretch", 8),
        ((3000, 4000), (224, 224), "crop", 8),
        ((375, 500), (224, 224), "stretch", 1),
        ((750, 1000), (224, 224), "stretch", 2),
        ((750, 1000), (224, 224), "pad", 4),  # fits 224 wide: 1000 / 4 = 250 >= 224
        ((1800, 1800), (224, 224), "stretch", 8),
        ((1700, 1700), (224, 224), "stretch", 4),  # 1700 / 8 = 212.5 < 224
    ],
)
def test_jpeg_dct_ratio_is_the_largest_that_keeps_the_size(
    hw: tuple[int, int], size: tuple[int, int], policy: str, ratio: int
) -> None:
    assert int(jpeg_ratio(hw[0], hw[1], tf.constant(size), policy)) == ratio


def test_large_jpeg_decoded_at_reduced_scale_matches_full_decode(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:1200, 0:1600].astype(np.float32)
    smooth = np.stack(
        [128 + 100 * np.sin(xx / 90), 128 + 100 * np.cos(yy / 70), (xx + yy) / 11], -1
    )
    Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(tmp_path / "big.jpg", quality=90)
    assert int(jpeg_ratio(1200, 1600, tf.constant((100, 120)), "stretch")) == 8
    fast = load_image(tf.constant(str(tmp_path / "big.jpg")), 1, (100, 120), "stretch").numpy()
    full = tf.image.resize(
        tf.io.decode_jpeg(tf.io.read_file(str(tmp_path / "big.jpg"))), (100, 120), method="area"
    ).numpy()
    assert np.abs(fast.astype(np.float32) - full).mean() < 2.0


# -- shuffling, determinism, caching ---------------------------------------------------------


def test_same_seed_same_batches_and_epochs_differ(split) -> None:
    def make(seed: int, parallel: int | None = None):
        return split.train.to_dataset(
            image_size=12,
            batch_size=4,
            augment=AugmentationPipeline.preset("standard", seed=seed),
            shuffle=True,
            seed=seed,
            num_parallel_calls=parallel,
        )

    ds = make(7)
    a1, la1 = _batches(ds)
    a2, la2 = _batches(ds)  # second epoch of the same dataset
    b1, lb1 = _batches(make(7, parallel=1))  # rebuilt, sequential: same batches
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(la1, lb1)
    assert not np.array_equal(la1, la2) or not np.array_equal(a1, a2)
    c1, _ = _batches(make(8))
    assert not np.array_equal(a1, c1)


def test_memory_cache_gives_the_same_images(split) -> None:
    plain, lp = _batches(split.train.to_dataset(image_size=10, batch_size=4))
    ds = split.train.to_dataset(image_size=10, batch_size=4, cache="memory")
    for _ in range(2):  # first epoch fills the cache, second reads it
        cached, lc = _batches(ds)
        np.testing.assert_array_equal(plain, cached)
        np.testing.assert_array_equal(lp, lc)


def test_file_cache_is_read_back_and_keyed_by_settings(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    for i in range(3):
        _save(root / "a" / f"{i}.png", np.full((9, 9, 3), 40 * i, np.uint8), "png")
    samples = [Sample(f"a/{i}.png", 0) for i in range(3)]
    cache = tmp_path / "cache"
    first, _ = _batches(to_dataset(samples, image_size=6, root=root, cache=cache))
    assert any(cache.iterdir())
    for i in range(3):
        (root / "a" / f"{i}.png").unlink()
    again, _ = _batches(
        to_dataset(samples, image_size=6, root=root, cache=cache, check_files=False)
    )
    np.testing.assert_array_equal(first, again)  # read from the cache: the files are gone
    with pytest.raises(ImageDecodeError), decode_errors():  # another size: not the same cache
        _batches(to_dataset(samples, image_size=7, root=root, cache=cache, check_files=False))


def test_shuffle_with_file_cache_keeps_labels_aligned(split, tmp_path: Path) -> None:
    ds = split.train.to_dataset(
        image_size=8, batch_size=4, shuffle=True, seed=1, cache=tmp_path / "c"
    )
    for _ in range(2):
        images, labels = _batches(ds)
        np.testing.assert_array_equal(images.mean(axis=(1, 2)).argmax(-1), labels)
        assert sorted(labels.tolist()) == sorted(split.train.labels.tolist())


# -- errors --------------------------------------------------------------------------------


@pytest.fixture()
def fragile(tmp_path: Path) -> tuple[list[Sample], Path]:
    root = tmp_path / "fragile"
    (root / "a").mkdir(parents=True)
    for i in range(6):
        _save(root / "a" / f"{i}.jpg", np.full((16, 16, 3), 30 * i, np.uint8), "jpg")
    return [Sample(f"a/{i}.jpg", 0) for i in range(6)], root


def test_missing_file_is_named_when_building(fragile) -> None:
    samples, root = fragile
    (root / "a" / "2.jpg").unlink()
    with pytest.raises(ImageDecodeError, match=re.escape(str(root / "a" / "2.jpg"))):
        to_dataset(samples, image_size=8, root=root)


def test_file_deleted_after_building_is_named(fragile) -> None:
    samples, root = fragile
    ds = to_dataset(samples, image_size=8, batch_size=2, root=root)
    victim = root / "a" / "3.jpg"
    victim.unlink()
    with pytest.raises(tf.errors.OpError, match=re.escape(str(victim))):
        _batches(ds)  # the raw TensorFlow error already names the file
    with pytest.raises(ImageDecodeError, match="missing or unreadable") as info, decode_errors():
        _batches(ds)
    assert info.value.path == str(victim)


def test_corrupted_file_is_named(fragile) -> None:
    samples, root = fragile
    ds = to_dataset(samples, image_size=8, batch_size=2, root=root)
    victim = root / "a" / "4.jpg"
    victim.write_bytes(victim.read_bytes()[:40] + b"\x00not a jpeg any more" * 20)
    with pytest.raises(ImageDecodeError, match="cannot decode image file") as info, decode_errors():
        _batches(ds)
    assert info.value.path == str(victim)
    victim.write_bytes(b"plain text, not an image")  # not even a known format
    with pytest.raises(ImageDecodeError) as info, decode_errors():
        _batches(ds)
    assert info.value.path == str(victim)


def test_path_with_quotes_and_unicode_is_recovered(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    name = "it's café.jpg"
    _save(root / "a" / name, np.zeros((8, 8, 3), np.uint8), "jpg")
    ds = to_dataset([Sample(f"a/{name}", 0)], image_size=4, root=root)
    os.remove(root / "a" / name)
    with pytest.raises(ImageDecodeError) as info, decode_errors():
        _batches(ds)
    assert info.value.path == str(root / "a" / name)


def test_importing_tlkit_data_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tlkit, tlkit.data; from tlkit.data import to_dataset, class_weights; "
        "assert 'tensorflow' not in sys.modules and 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cardinality_is_known(split) -> None:
    n = len(split.train)
    from tlkit.augment import AugmentationPipeline

    light = AugmentationPipeline.preset("light")
    for kwargs in ({}, {"augment": light, "shuffle": True, "seed": 0}, {"drop_remainder": True}):
        ds = split.train.to_dataset(16, batch_size=8, **kwargs)
        expected = n // 8 if kwargs.get("drop_remainder") else -(-n // 8)
        assert int(ds.cardinality()) == expected
        assert sum(1 for _ in ds) == expected
