"""keras.applications backbones: baked-in preprocessing, layer groups, weights, offline failure."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import applications as apps

from tlkit.backbones import (
    ImagePreprocessing,
    _keras_apps,
    backbone_config,
    get_backbone,
    list_backbones,
)
from tlkit.errors import (
    BackboneError,
    InvalidArgumentError,
    WeightsFileError,
    WeightsUnavailableError,
)

# name -> (plain constructor, the family's own preprocess_input, extra constructor kwargs,
#          number of stages between stem and head). Written out here, independently of the
# registry's tables, so the test checks them.
PLAIN: dict[
    str, tuple[Callable[..., keras.Model], Callable[[np.ndarray], Any], dict[str, Any], int]
] = {
    "mobilenet": (apps.MobileNet, apps.mobilenet.preprocess_input, {}, 5),
    "mobilenet_v2": (apps.MobileNetV2, apps.mobilenet_v2.preprocess_input, {}, 7),
    "mobilenet_v3_small": (apps.MobileNetV3Small, apps.mobilenet_v3.preprocess_input, {}, 5),
    "mobilenet_v3_large": (apps.MobileNetV3Large, apps.mobilenet_v3.preprocess_input, {}, 6),
    "efficientnet_b0": (apps.EfficientNetB0, apps.efficientnet.preprocess_input, {}, 7),
    "efficientnet_b1": (apps.EfficientNetB1, apps.efficientnet.preprocess_input, {}, 7),
    "efficientnet_b2": (apps.EfficientNetB2, apps.efficientnet.preprocess_input, {}, 7),
    "efficientnet_b3": (apps.EfficientNetB3, apps.efficientnet.preprocess_input, {}, 7),
    "efficientnet_v2_b0": (apps.EfficientNetV2B0, apps.efficientnet_v2.preprocess_input, {}, 6),
    "resnet50": (apps.ResNet50, apps.resnet50.preprocess_input, {}, 4),
    "resnet50_v2": (apps.ResNet50V2, apps.resnet_v2.preprocess_input, {}, 4),
    "densenet121": (apps.DenseNet121, apps.densenet.preprocess_input, {}, 4),
    "convnext_tiny": (apps.ConvNeXtTiny, apps.convnext.preprocess_input, {}, 4),
}
SIZE = 64


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test here may touch the network or the user's Keras cache."""
    monkeypatch.setenv("TLKIT_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home").mkdir()
    return tmp_path / "keras_home"


def pixels(n: int = 2, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, size=(n, size, size, 3)).astype(np.float32)


def test_every_required_backbone_is_registered() -> None:
    assert set(PLAIN) <= set(list_backbones())
    assert set(PLAIN) == set(_keras_apps.KERAS_APP_CONSTRUCTORS)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_registry_model_equals_plain_app_on_preprocess_input(name: str) -> None:
    """Same weights: registry model(raw pixels) == plain application(preprocess_input(pixels))."""
    constructor, preprocess_input, extra, n_stages = PLAIN[name]
    keras.utils.set_random_seed(0)
    bb = get_backbone(name, weights=None, image_size=SIZE)
    plain = constructor(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg", **extra
    )
    weights = bb.model.get_weights()
    assert [w.shape for w in weights] == [w.shape for w in plain.get_weights()]
    plain.set_weights(weights)

    x = pixels()
    got = np.asarray(bb.model(x, training=False))
    want = np.asarray(plain(preprocess_input(x.copy()), training=False))
    assert got.shape == (2, bb.feature_dim)
    scale = float(np.abs(want).max())
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)

    # The comparison has teeth: where the family needs preprocess_input, skipping it changes
    # the output; where it does not (a pass-through), the Keras model preprocesses inside.
    config = backbone_config(name)
    if np.allclose(preprocess_input(x.copy()), x):
        assert config.preprocessing == "none"
        assert "inside the Keras model" in config.preprocessing_detail
    else:
        assert config.preprocessing in ("tf", "torch", "caffe")
        assert isinstance(bb.model.get_layer("preprocessing"), ImagePreprocessing)
        raw = np.asarray(plain(x, training=False))
        assert np.abs(raw - want).max() > 1e-2 * scale

    # layer groups: stem, stage1..stageN, head; every layer with weights in exactly one group
    names = [g.name for g in bb.layer_groups]
    assert names == ["stem", *[f"stage{i}" for i in range(1, n_stages + 1)], "head"]
    grouped = [layer for g in bb.layer_groups for layer in g]
    assert len(grouped) == len({id(layer) for layer in grouped})
    with_weights = {id(layer) for layer in bb.model.layers if layer.weights}
    assert with_weights <= {id(layer) for layer in grouped}
    assert sum(g.count_params() for g in bb.layer_groups) == bb.model.count_params()
    assert all(len(g) for g in bb.layer_groups)
    keras.backend.clear_session()


def test_include_top_gives_a_1000_class_classifier() -> None:
    bb = get_backbone("mobilenet_v3_small", weights=None, image_size=SIZE, include_top=True)
    probs = np.asarray(bb.model(pixels(), training=False))
    assert probs.shape == (2, 1000) and bb.include_top
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    logits = get_backbone(
        "resnet50", weights=None, image_size=SIZE, include_top=True, classifier_activation=None
    )
    assert logits.model.output_shape == (None, 1000) and logits.feature_dim == 2048
    assert logits.layer_groups[-1].name == "head"
    assert "predictions" in [layer.name for layer in logits.layer_groups[-1]]
    keras.backend.clear_session()


def test_pooling_options() -> None:
    fmap = get_backbone("mobilenet_v2", weights=None, image_size=SIZE, pooling=None)
    assert fmap.model.output_shape == (None, 2, 2, 1280) and fmap.feature_dim == 1280
    peak = get_backbone("mobilenet_v2", weights=None, image_size=SIZE, pooling="max")
    assert peak.model.output_shape == (None, 1280)
    with pytest.raises(InvalidArgumentError, match="pooling must be"):
        get_backbone("mobilenet_v2", weights=None, pooling="mean")
    keras.backend.clear_session()


def test_alpha_option_is_validated() -> None:
    small = get_backbone("mobilenet_v2", weights=None, image_size=SIZE, alpha=0.35)
    full = get_backbone("mobilenet_v2", weights=None, image_size=SIZE)
    assert small.model.count_params() < full.model.count_params() / 3
    # no ImageNet weights for this alpha: valid arguments that cannot go together
    with pytest.raises(BackboneError, match=r"alpha in \[0\.35, 0\.5, 0\.75, 1\.0, 1\.3, 1\.4\]"):
        get_backbone("mobilenet_v2", weights="imagenet", alpha=0.6)
    with pytest.raises(InvalidArgumentError, match=r"alpha must be a number > 0, got -1") as info:
        get_backbone("mobilenet", weights=None, alpha=-1)
    assert info.value.argument == "alpha" and str(info.value).startswith("mobilenet: alpha")
    with pytest.raises(InvalidArgumentError, match=r"does not take option.*alpha"):
        get_backbone("resnet50", weights=None, alpha=0.5)
    with pytest.raises(BackboneError, match="needs image_size=224"):
        get_backbone("resnet50", include_top=True, image_size=128)
    keras.backend.clear_session()


# --------------------------------------------------------------------------- offline weights


@pytest.mark.parametrize(
    "name, options, fname",
    [
        ("mobilenet_v2", {}, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        ("mobilenet", {"alpha": 0.5}, "mobilenet_5_0_224_tf_no_top.h5"),
        ("efficientnet_b0", {}, "efficientnetb0_notop.h5"),
        ("resnet50", {}, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ],
)
def test_missing_imagenet_weights_fail_fast_offline(
    offline: Path, name: str, options: dict[str, Any], fname: str
) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        get_backbone(name, weights="imagenet", **options)
    message = str(info.value)
    assert f"missing file: {fname}\n" in message
    assert f"put it in:    {offline / 'models'}\n" in message
    assert "TLKIT_OFFLINE" in message
    for lite_name in list_backbones(pretrained=True):
        assert lite_name in message
    assert list_backbones(pretrained=True)  # the message did name some
    models = offline / "models"
    assert not models.exists() or not list(models.iterdir())  # nothing half-downloaded
    keras.backend.clear_session()


def test_unreachable_host_fails_without_downloading(
    monkeypatch: pytest.MonkeyPatch, offline: Path
) -> None:
    monkeypatch.delenv("TLKIT_OFFLINE")
    calls: list[Any] = []

    def no_network(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise OSError("Network is unreachable")

    def keras_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Keras's downloader must not be called when the host is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(keras.utils, "get_file", keras_download)
    with pytest.raises(WeightsUnavailableError, match="unreachable"):
        get_backbone("mobilenet_v2", weights="imagenet", alpha=0.35, image_size=96)
    assert calls and calls[0][0][1] == 443  # (host, port) probed once, with a timeout
    keras.backend.clear_session()


def test_failed_download_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLKIT_OFFLINE")
    monkeypatch.setattr(_keras_apps, "_host_reachable", lambda origin, timeout=5.0: (True, ""))

    def failing_download(*args: Any, **kwargs: Any) -> Any:
        raise Exception("URL fetch failure on https://example.invalid: 403 -- Forbidden")

    monkeypatch.setattr(keras.utils, "get_file", failing_download)
    with pytest.raises(WeightsUnavailableError, match="download failed: URL fetch failure"):
        get_backbone("mobilenet_v2", weights="imagenet", alpha=0.35, image_size=96)
    keras.backend.clear_session()


def write_legacy_h5(model: keras.Model, path: Path) -> None:
    """Write weights the way keras.applications files are stored (legacy Keras h5 layout)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_imagenet_weights_load_from_the_keras_cache_offline(offline: Path) -> None:
    """A file already in $KERAS_HOME/models (read at call time) is used without a network."""
    keras.utils.set_random_seed(3)
    source = apps.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None, pooling="avg"
    )
    source.set_weights([w + 0.01 for w in source.get_weights()])  # distinct from a fresh init
    (offline / "models").mkdir()
    write_legacy_h5(
        source,
        offline / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5",
    )
    bb = get_backbone("mobilenet_v2", weights="imagenet", alpha=0.35, image_size=96)
    for got, want in zip(bb.model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert bb.weights == "imagenet"
    keras.backend.clear_session()


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the mismatching file
def test_weights_from_a_local_file_are_checked(tmp_path: Path) -> None:
    bb = get_backbone("mobilenet_v2", weights=None, image_size=SIZE, alpha=0.35)
    path = tmp_path / "mine.weights.h5"
    bb.model.save_weights(path)
    again = get_backbone("mobilenet_v2", weights=str(path), image_size=SIZE, alpha=0.35)
    x = pixels()
    np.testing.assert_array_equal(np.asarray(bb.model(x)), np.asarray(again.model(x)))
    assert again.weights == str(path)
    with pytest.raises(
        WeightsFileError, match=r"mine\.weights\.h5 does not fit backbone 'mobilenet_v2'"
    ):
        get_backbone("mobilenet_v2", weights=path, image_size=SIZE, alpha=1.0)
    keras.backend.clear_session()


# --------------------------------------------------------------------------- pinned weights files


def keras_weights_request(constructor: Callable[..., Any], **kwargs: Any) -> tuple[Any, ...]:
    """What the installed Keras passes to get_file when building with weights="imagenet".

    Reads Keras internals on purpose (tests may): the applications call
    ``keras.src.utils.file_utils.get_file``; the call is caught before any download.
    """
    from keras.src.utils import file_utils

    class Caught(Exception):
        pass

    seen: list[tuple[Any, ...]] = []

    def fake_get_file(fname: Any = None, origin: Any = None, **kw: Any) -> Any:
        seen.append((fname, origin, kw.get("file_hash"), kw.get("cache_subdir")))
        raise Caught

    original = file_utils.get_file
    file_utils.get_file = fake_get_file
    try:
        with pytest.raises(Caught):
            constructor(weights="imagenet", **kwargs)
    finally:
        file_utils.get_file = original
    assert len(seen) == 1
    return seen[0]


def pinned_cases() -> list[tuple[str, bool, float | None, int]]:
    """Every pinned file of the fixed-size families; MobileNet v1/v2 along each axis."""
    cases = []
    for name in sorted(PLAIN):
        files = backbone_config(name).weights_files
        for f in files:
            if name in ("mobilenet", "mobilenet_v2"):
                alphas = {g.alpha for g in files}
                sizes = {g.image_size for g in files}
                if (f.alpha != 1.0 and f.image_size != 224) or (
                    f.include_top and (f.alpha, f.image_size) != (1.0, 224)
                ):
                    continue  # headless files along both axes (every alpha at 224, every
                    # size at alpha 1.0); the classifier files at (1.0, 224)
                assert len(alphas) >= 4 and len(sizes) >= 4
            size = f.image_size or backbone_config(name).default_image_size[0]
            cases.append((name, f.include_top, f.alpha, size))
    return cases


@pytest.mark.parametrize("name, include_top, alpha, size", pinned_cases())
def test_pinned_weights_files_match_what_keras_downloads(
    name: str, include_top: bool, alpha: float | None, size: int
) -> None:
    constructor = PLAIN[name][0]
    kwargs: dict[str, Any] = {"include_top": include_top, "input_shape": (size, size, 3)}
    if alpha is not None:
        kwargs["alpha"] = alpha
    if name.startswith("mobilenet_v3"):
        kwargs["include_preprocessing"] = True
    fname, origin, file_hash, subdir = keras_weights_request(constructor, **kwargs)
    pinned = backbone_config(name).weights_file(
        include_top=include_top, alpha=alpha, image_size=size
    )
    assert pinned is not None
    assert (pinned.fname, pinned.origin, pinned.file_hash) == (fname, origin, file_hash)
    assert subdir == "models"
    keras.backend.clear_session()


def test_every_keras_backbone_pins_its_files() -> None:
    for name in PLAIN:
        files = backbone_config(name).weights_files
        assert {f.include_top for f in files} == {False, True}, name
        assert len({f.fname for f in files}) == len(files), name
        assert all(f.origin.startswith("https://storage.googleapis.com/") for f in files)
        assert all(f.origin.endswith("/" + f.fname) for f in files)
    # MobileNet v1/v2: one file per alpha and size, as Keras names them
    assert len(backbone_config("mobilenet").weights_files) == 4 * 4 * 2
    assert len(backbone_config("mobilenet_v2").weights_files) == 6 * 5 * 2
    # a size with no file of its own gets the 224 file, as Keras does
    f = backbone_config("mobilenet_v2").weights_file(include_top=False, alpha=0.35, image_size=100)
    assert f is not None and f.fname.endswith("_0.35_224_no_top.h5")


def test_efficientnet_imagenet_scale_matches_keras(
    monkeypatch: pytest.MonkeyPatch, offline: Path
) -> None:
    """Keras adds a Rescaling to EfficientNet only with weights="imagenet"; tlkit folds it in.

    Pins that Keras behaviour: the same weights file gives the same outputs as
    Keras's own ``EfficientNetB0(weights="imagenet")``.
    """
    from keras.src.applications import efficientnet as keras_efficientnet
    from keras.src.utils import file_utils

    assert tuple(keras_efficientnet.IMAGENET_STDDEV_RGB) == _keras_apps._EFFICIENTNET_STDDEV_RGB
    keras.utils.set_random_seed(5)
    source = apps.EfficientNetB0(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg"
    )
    norm = next(la for la in source.layers if isinstance(la, keras.layers.Normalization))
    norm.set_weights([np.array([0.4, 0.5, 0.45]), np.array([0.05, 0.06, 0.07]), np.int64(0)])
    (offline / "models").mkdir()
    path = offline / "models" / "efficientnetb0_notop.h5"
    write_legacy_h5(source, path)

    monkeypatch.setattr(_keras_apps, "_hash_matches", lambda *args: True)  # a stand-in file
    ours = get_backbone("efficientnet_b0", weights="imagenet", image_size=SIZE)
    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(path))
    theirs = apps.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3), pooling="avg"
    )
    x = pixels()
    want = np.asarray(theirs(x, training=False))
    got = np.asarray(ours.model(x, training=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    unfolded = np.asarray(source(x, training=False))  # same file, no extra scale
    assert np.abs(unfolded - want).max() > 1e-2 * np.abs(want).max()
    keras.backend.clear_session()


def test_corrupt_cached_file_is_not_used_offline(offline: Path) -> None:
    (offline / "models").mkdir()
    bad = offline / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    bad.write_bytes(b"half a download")
    with pytest.raises(WeightsUnavailableError) as info:
        get_backbone("resnet50", weights="imagenet")
    message = str(info.value)
    assert "exists but its hash is not 4d473c1dd8becc155b73f8504c6f6626" in message
    assert (
        "TLKIT_OFFLINE is set" in message and "its MD5: 4d473c1dd8becc155b73f8504c6f6626" in message
    )
    assert bad.read_bytes() == b"half a download"  # left for the user to see


def test_download_goes_through_keras_get_file(
    monkeypatch: pytest.MonkeyPatch, offline: Path
) -> None:
    """With a network, the file comes from the public keras.utils.get_file, into $KERAS_HOME."""
    monkeypatch.delenv("TLKIT_OFFLINE")
    monkeypatch.setattr(_keras_apps, "_host_reachable", lambda origin, timeout=5.0: (True, ""))
    keras.utils.set_random_seed(4)
    source = apps.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None, pooling="avg"
    )
    source.set_weights([w + 0.02 for w in source.get_weights()])
    calls: list[tuple[Any, ...]] = []

    def download(fname: str, origin: str, **kwargs: Any) -> str:
        calls.append((fname, origin, kwargs))
        target = Path(kwargs["cache_dir"]) / kwargs["cache_subdir"] / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        write_legacy_h5(source, target)
        return str(target)

    monkeypatch.setattr(keras.utils, "get_file", download)
    bb = get_backbone("mobilenet_v2", weights="imagenet", alpha=0.35, image_size=96)
    fname = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    assert calls == [
        (
            fname,
            "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + fname,
            {"file_hash": None, "cache_subdir": "models", "cache_dir": str(offline)},
        )
    ]
    for got, want in zip(bb.model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # now cached: a second build makes no call, even with the network gone
    monkeypatch.setenv("TLKIT_OFFLINE", "1")
    get_backbone("mobilenet_v2", weights="imagenet", alpha=0.35, image_size=96)
    assert len(calls) == 1
    keras.backend.clear_session()


def test_keras_cache_dir_follows_keras_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tlkit.backbones import keras_cache_dir

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))  # read at each call, created if missing
    assert keras_cache_dir() == str(tmp_path / "kh" / "models")
    assert (tmp_path / "kh").is_dir()
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert keras_cache_dir() == str(tmp_path / "home" / ".keras" / "models")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("KERAS_HOME", str(locked))
    if not os.access(locked, os.W_OK):  # (root can write anywhere)
        assert keras_cache_dir() == os.path.join("/tmp", ".keras", "models")


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["mobilenet", "mobilenet_v2"]),
    h=st.integers(32, 512),
    w=st.integers(32, 512),
    include_top=st.booleans(),
    data=st.data(),
)
def test_weights_file_follows_keras_size_rule(
    name: str, h: int, w: int, include_top: bool, data: st.DataObject
) -> None:
    """Keras's rule: the file for ``rows`` if the input is square and rows has a file, else 224."""
    config = backbone_config(name)
    alpha = data.draw(st.sampled_from(sorted({f.alpha for f in config.weights_files})))
    sizes = {f.image_size for f in config.weights_files}
    f = config.weights_file(include_top=include_top, alpha=alpha, image_size=h if h == w else None)
    assert f is not None and f.alpha == alpha and f.include_top == include_top
    assert f.image_size == (h if h == w and h in sizes else 224)
    if h == w:  # and the file name carries that size
        assert str(f.image_size) in f.fname
