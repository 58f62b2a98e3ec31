"""The boundary cache: phases that train the top groups run on cached outputs of the frozen part.

One epoch on the cache must give the weights one epoch on images gives (one batch
holding every image, dropout 0, same seed), in memory or spilled to a memory-mapped
file; where no single tensor separates the frozen layers from the trainable ones,
the phase runs on images and says why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pytest

from tlkit import DatasetSplitter, FineTuner, Split, schedules
from tlkit.augment import Views
from tlkit.backbones import Backbone, BackboneConfig, LayerGroup, get_backbone
from tlkit.datasets import make_synthetic_dataset
from tlkit.finetune import _boundary
from tlkit.finetune._data import as_data
from tlkit.finetune._fit import _trainable_groups

SIZE = 32


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("bc") / "photos", {"a": 10, "b": 8, "c": 6}, image_size=SIZE
    )
    return DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(root)


def tiny_backbone(**options) -> Backbone:
    keras.utils.set_random_seed(0)  # the backbone is built before the FineTuner seeds
    return get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(4, 8, 8), **options)


def fit_top_two(split: Split, pooling: str = "avg", **kwargs) -> FineTuner:
    """One epoch of the top 2 of 3 groups, BatchNorm training, one batch of every image."""
    t = FineTuner(
        tiny_backbone(pooling=pooling),
        schedule=schedules.GradualUnfreezing({0: 2}, epochs=1, train_bn=True),
        seed=0, verbose=0, batch_size=64, dropout=0.0, restore_best=False, **kwargs,
    )  # fmt: skip
    t.fit(split.train)
    return t


def max_diff(a: FineTuner, b: FineTuner) -> float:
    return max(
        float(np.abs(x - y).max())
        for x, y in zip(a.model.get_weights(), b.model.get_weights(), strict=True)
    )


def test_cut_is_the_one_tensor_below_the_trainable_groups() -> None:
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    tiny = tiny_backbone()
    lite = get_backbone("efficientnet_lite0", weights=None, image_size=SIZE)
    for bb, k, where in ((tiny, 2, "'block1_pool'"), (tiny, 1, "'block2_pool'"),
                         (lite, 3, "'block10_add'")):  # fmt: skip
        cut = _boundary.find_cut(bb, k)
        assert not isinstance(cut, str), cut
        assert cut.where == f"output of {where}"
        whole = bb.model.predict_on_batch(x)
        np.testing.assert_array_equal(
            cut.top.predict_on_batch(cut.bottom.predict_on_batch(x)), whole
        )
        # the sub-models share the backbone's layer objects: trained in place
        assert {id(w) for w in cut.top.weights} <= {id(w) for w in bb.model.weights}
    assert "no frozen part" in _boundary.find_cut(tiny, 3)


def test_one_epoch_on_the_cache_equals_one_epoch_on_images(
    split: Split, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    images = fit_top_two(split, cache_features=False)
    assert images.phase_log[0]["cached_boundary"] is False
    monkeypatch.setattr(_boundary, "CACHE_DTYPE", np.float32)
    exact = fit_top_two(split)
    assert exact.phase_log[0]["cached_boundary"] is True
    assert max_diff(images, exact) < 1e-5  # float32 cache: summation order only
    assert np.allclose(images.history.history["loss"], exact.history.history["loss"], atol=1e-5)
    # float16, and over the memory budget: spilled to a memory-mapped file, removed after fit
    monkeypatch.setattr(_boundary, "CACHE_DTYPE", np.float16)
    folders: list[str] = []

    def mkdtemp(prefix: str = "") -> str:
        folders.append(str(tmp_path / f"{prefix}{len(folders)}"))
        Path(folders[-1]).mkdir()
        return folders[-1]

    monkeypatch.setattr(_boundary.tempfile, "mkdtemp", mkdtemp)
    half = fit_top_two(split, memory_budget_mb=0)
    assert folders and not any(Path(f).exists() for f in folders)
    # Adam's first step is about lr * sign(gradient): float16 rounding may flip the sign of a
    # near-zero gradient (a 2 * lr difference), but almost every weight agrees closely
    diffs = np.concatenate(
        [
            np.abs(x - y).ravel()
            for x, y in zip(images.model.get_weights(), half.model.get_weights(), strict=True)
        ]
    )
    assert diffs.max() <= 2.01 * images.learning_rate
    assert np.mean(diffs < 1e-4) > 0.97


def test_every_blocks_pooled_features_cross_the_cut_beside_the_feature_map(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pooling="blocks"``: the frozen blocks' pooled features are cached as vectors."""
    bb = tiny_backbone(pooling="blocks")
    cut = _boundary.find_cut(bb, 2)
    assert not isinstance(cut, str)
    assert cut.shapes == [(8, 8, 4), (4,)]  # block1's pooled map, and its pooled tap
    assert cut.where == "output of 'block1_pool' and 1 pooled vector from below"
    x = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(
        cut.top.predict_on_batch(cut.bottom.predict_on_batch(x)),
        bb.model.predict_on_batch(x), atol=1e-5,
    )  # fmt: skip
    one = _boundary.find_cut(bb, 1)
    assert not isinstance(one, str) and one.shapes == [(4, 4, 8), (4,), (8,)]
    # one epoch on the cache (a feature map and a vector per image) = one on images
    images = fit_top_two(split, pooling="blocks", cache_features=False)
    monkeypatch.setattr(_boundary, "CACHE_DTYPE", np.float32)
    cached = fit_top_two(split, pooling="blocks")
    assert cached.phase_log[0]["cached_boundary"] and not images.phase_log[0]["cached_boundary"]
    assert max_diff(images, cached) < 1e-4  # summation order, through the head's standardising
    assert np.allclose(images.history.history["loss"], cached.history.history["loss"], atol=1e-5)
    batches = _boundary.view_batches(
        [np.zeros((6, 2, 2, 1)), np.ones((6, 3))], np.arange(3), 2, 2, 0
    )
    (first, second), labels = next(iter(batches))
    assert first.shape == (2, 2, 2, 1) and second.shape == (2, 3) and labels.shape == (2,)


def test_a_frozen_operation_the_graph_lists_late_runs_below_the_cut() -> None:
    """A pooling of the raw images, listed after the trainable layers, is cached as a vector."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(2, 3, name="low_c")(inputs)
    x = keras.layers.Conv2D(3, 3, name="high_c")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    raw = keras.layers.GlobalAveragePooling2D(name="raw_pool")(inputs)  # listed last
    model = keras.Model(inputs, keras.layers.Concatenate(name="cat")([pooled, raw]))
    groups = [LayerGroup("low", (model.get_layer("low_c"),)),
              LayerGroup("high", (model.get_layer("high_c"), model.get_layer("pool")))]  # fmt: skip
    cfg = BackboneConfig("late", "Late", (SIZE, SIZE), "none", "none", "none", "n/a")
    bb = Backbone(model, cfg, image_size=(SIZE, SIZE), feature_dim=6, layer_groups=groups)
    cut = _boundary.find_cut(bb, 1)
    assert not isinstance(cut, str), cut
    assert cut.shapes == [(SIZE - 2, SIZE - 2, 2), (3,)]
    assert cut.where == "output of 'low_c' and 1 pooled vector from below"
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(
        cut.top.predict_on_batch(cut.bottom.predict_on_batch(x)), model.predict_on_batch(x),
        rtol=1e-5,
    )  # fmt: skip


def test_a_spilled_cache_gives_the_batches_of_one_in_memory(split: Split) -> None:
    t = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0, batch_size=8,
                  schedule=schedules.GradualUnfreezing({0: 2}, epochs=1))  # fmt: skip
    t.build()
    cut = _boundary.find_cut(t.backbone, 2)
    train, val = as_data(split.train, "train"), as_data(split.val, "val")
    memory = _boundary.BoundaryPhase(t, cut, train, val, Views("flip"))
    t.memory_budget_mb = 0
    disk = _boundary.BoundaryPhase(t, cut, train, val, Views("flip"))
    try:
        assert {s.where for s in memory.stores} == {"in memory"}
        assert all(isinstance(s.array, np.memmap) for s in disk.stores)
        for (xa, ya), (xb, yb) in zip(memory.train_dataset(3), disk.train_dataset(3), strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
        model = memory.model(t._head_layers, "m")
        np.testing.assert_array_equal(
            memory.val_probabilities(model)(), disk.val_probabilities(model)()
        )
        folder = disk.stores[0].folder
    finally:
        memory.close()
        disk.close()
    assert not Path(folder).exists()


def _twin_backbone() -> Backbone:
    """Two frozen branches feed two trainable layers: no single tensor separates them."""
    inputs = keras.Input((SIZE, SIZE, 3))
    a = keras.layers.Conv2D(2, 3, name="low_a")(inputs)
    b = keras.layers.Conv2D(2, 3, name="low_b")(inputs)
    c = keras.layers.Conv2D(2, 1, name="high_c")(a)
    d = keras.layers.Conv2D(2, 1, name="high_d")(b)
    out = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([c, d]))
    model = keras.Model(inputs, out)
    groups = [LayerGroup("low", (model.get_layer("low_a"), model.get_layer("low_b"))),
              LayerGroup("high", (model.get_layer("high_c"), model.get_layer("high_d")))]  # fmt: skip
    cfg = BackboneConfig("twin", "Twin", (SIZE, SIZE), "none", "none", "none", "n/a")
    return Backbone(model, cfg, image_size=(SIZE, SIZE), feature_dim=2, layer_groups=groups)


def test_no_single_crossing_tensor_falls_back_to_images_and_says_why(
    split: Split, caplog: pytest.LogCaptureFixture
) -> None:
    t = FineTuner(_twin_backbone(), class_names=split.class_names, verbose=0,
                  schedule=schedules.GradualUnfreezing({0: 1}, epochs=1))  # fmt: skip
    t.build()
    phase = t.phases[0]
    _trainable_groups(t, phase)
    with caplog.at_level(logging.INFO, logger="tlkit.finetune"):
        assert (
            _boundary.plan_boundary(t, 0, phase, as_data(split.train, "train"), None, None) is None
        )
    assert "trains on images: no single feature map separates the frozen layers" in caplog.text
    assert "from group 'high' (more than one crosses the boundary)" in caplog.text


def test_nothing_to_cache_below_a_group_without_weights_below_it() -> None:
    """A cut with no weights under it would save nothing: the reason names the group."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="low_scale")(inputs)
    x = keras.layers.Conv2D(2, 3, name="high_c")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    groups = [LayerGroup("low", (model.get_layer("low_scale"),)),
              LayerGroup("high", (model.get_layer("high_c"),))]  # fmt: skip
    cfg = BackboneConfig("flat", "Flat", (SIZE, SIZE), "none", "none", "none", "n/a")
    bb = Backbone(model, cfg, image_size=(SIZE, SIZE), feature_dim=2, layer_groups=groups)
    assert _boundary.find_cut(bb, 1) == (
        "nothing with weights lies below group 'high': nothing to save"
    )


def test_random_augmentation_stays_on_images(
    split: Split, caplog: pytest.LogCaptureFixture
) -> None:
    t = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0, augment="light",
                  schedule=schedules.GradualUnfreezing({0: 1}, epochs=1))  # fmt: skip
    t.build()
    phase = t.phases[0]
    with caplog.at_level(logging.INFO, logger="tlkit.finetune"):
        aug = Views("identity")  # a finite set is cached; a preset pipeline is not
        assert _boundary.plan_boundary(t, 0, phase, as_data(split.train, "t"), None, aug)
        from tlkit.augment import AugmentationPipeline

        light = AugmentationPipeline.preset("light", seed=0)
        assert _boundary.plan_boundary(t, 0, phase, as_data(split.train, "t"), None, light) is None
    assert "random augmentation runs on images" in caplog.text
    # a phase that trains every group has no boundary to cache: nothing said about one
    caplog.clear()
    everything = schedules.FullTraining(1).phases(len(t.backbone.layer_groups))[0]
    with caplog.at_level(logging.INFO, logger="tlkit.finetune"):
        assert (
            _boundary.plan_boundary(t, 0, everything, as_data(split.train, "t"), None, light)
            is None
        )
    assert "trains on images" not in caplog.text


def test_features_cached_per_view_equal_the_bottom_on_that_view(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_boundary, "CACHE_DTYPE", np.float32)
    t = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0, batch_size=8,
                  schedule=schedules.GradualUnfreezing({0: 2}, epochs=1))  # fmt: skip
    t.build()
    views = Views("dihedral")
    cut = _boundary.find_cut(t.backbone, 2)
    train = as_data(split.train, "train")
    cache = _boundary.BoundaryPhase(t, cut, train, None, views)
    try:
        n = len(train)
        x = np.concatenate([b[0] for b in split.train.to_dataset((SIZE, SIZE), batch_size=8,
                                                                  shuffle=False)])  # fmt: skip
        for v in range(len(views)):
            expected = cut.bottom.predict_on_batch(np.asarray(views.view(x, v)))
            np.testing.assert_allclose(cache.train.array[v * n : (v + 1) * n], expected, atol=1e-5)
    finally:
        cache.close()
    # each epoch draws one view per image: every image once, from one of its views
    cache = _boundary.BoundaryPhase(t, cut, train, None, views)
    rows = {tuple(np.round(r.ravel()[:8], 4)): i % n for i, r in enumerate(cache.train.array)}
    seen = [
        rows[tuple(np.round(r.ravel()[:8], 4))]
        for xb, _ in cache.train_dataset(0)
        for r in xb.numpy()
    ]
    cache.close()
    assert sorted(seen) == list(range(n))


def test_a_frozen_phase_caches_the_backbone_features_of_every_view(
    split: Split, caplog: pytest.LogCaptureFixture
) -> None:
    from tlkit.finetune._fit import _Context

    views = Views("flip")
    t = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0, batch_size=8,
                  augment=views, schedule=schedules.Frozen(1), seed=0)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="tlkit.finetune"):
        t.fit(split.train)
    assert "features of each of the 2 view(s) ('identity', 'hflip'), computed once" in caplog.text
    assert "cached features" in caplog.text
    train = as_data(split.train, "train")
    ctx = _Context(t, train, None, views, False, len(split.class_names))
    features = ctx.features("train")
    n = len(train)
    x = np.concatenate([b[0] for b in split.train.to_dataset((SIZE, SIZE), batch_size=8,
                                                              shuffle=False)])  # fmt: skip
    for v in range(len(views)):
        expected = t.backbone.model.predict_on_batch(np.asarray(views.view(x, v)))
        np.testing.assert_allclose(features[v * n : (v + 1) * n], expected, atol=1e-5)
    # every epoch: each image once, under one of its views
    seen = sorted(i % n for xb, _ in ctx.train_features() for i in _rows(features, xb.numpy()))
    assert seen == list(range(n))


def _rows(table: np.ndarray, batch: np.ndarray) -> list[int]:
    return [int(np.argmin(np.abs(table - r).sum(axis=1))) for r in batch]


def test_a_frozen_epoch_on_cached_view_features_equals_one_on_the_viewed_images(
    split: Split,
) -> None:
    """A single non-identity view is applied on both paths: the cache is not of plain images."""

    def fit(cache: bool) -> FineTuner:
        t = FineTuner(
            tiny_backbone(), schedule=schedules.Frozen(1), augment=Views(["hflip"]),
            cache_features=cache, seed=0, verbose=0, batch_size=64, dropout=0.0,
            restore_best=False, cache_images=None,
        )  # fmt: skip
        t.fit(split.train)
        return t

    cached, images = fit(True), fit(False)
    assert max_diff(cached, images) < 1e-4
    # and the cache holds the viewed images' features, not the plain ones
    from tlkit.finetune._fit import _Context

    train = as_data(split.train, "train")
    viewed = _Context(cached, train, None, Views(["hflip"]), False, 3).features("train")
    plain = _Context(cached, train, None, None, False, 3).features("train")
    assert np.abs(viewed - plain).max() > 100 * 1e-5


def _head_then_top_two(split: Split, views: Views | None) -> FineTuner:
    t = FineTuner(
        tiny_backbone(), schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze=2, warmup=0.0),
        augment=views, seed=0, verbose=0, batch_size=64, dropout=0.0, restore_best=False,
        cache_images=None,
    )  # fmt: skip
    t.fit(split.train, split.val)
    return t


def test_frozen_features_and_the_next_boundary_cache_come_from_one_pass(
    split: Split, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Head epochs then the top groups: the frozen part runs once per image and view.

    The head's features are the layers above the cut applied to the boundary cache,
    and the fit gives the weights of the two-pass path (float32 cache).
    """
    from tlkit.finetune import _fit

    views = Views("flip")
    monkeypatch.setattr(_boundary, "CACHE_DTYPE", np.float32)
    passes: list[tuple[str, int]] = []
    real_fill = _boundary.fill_views

    def counting_fill(arrays, model, tuner, data, views_):  # type: ignore[no-untyped-def]
        rows = len(arrays[0]) if isinstance(arrays, list) else len(arrays)
        passes.append((model.name, rows))
        return real_fill(arrays, model, tuner, data, views_)

    monkeypatch.setattr(_boundary, "fill_views", counting_fill)
    monkeypatch.setattr(_fit, "fill_views", counting_fill)
    with caplog.at_level(logging.INFO, logger="tlkit.finetune"):
        one = _head_then_top_two(split, views)
    n, m, v = len(split.train), len(split.val), len(views)
    below = [name for name, _ in passes]
    assert passes == [(below[0], n * v), (below[0], m)] and below[0].endswith("_below_cut")
    assert one.phase_log[1]["cached_boundary"] and one.phase_log[1]["cached_boundary_shared"]
    assert "filled with the frozen phases' features" in caplog.text
    # the same fit with the two passes (features from images, then the boundary)
    passes.clear()
    monkeypatch.setattr(_fit, "shared_cut", lambda *a: None)
    two = _head_then_top_two(split, views)
    # the backbone on the training views, then the boundary's two fills
    assert [name.endswith("_below_cut") for name, _ in passes] == [False, True, True]
    assert not two.phase_log[1]["cached_boundary_shared"]
    assert max_diff(one, two) < 1e-4
    assert np.allclose(one.history.history["loss"], two.history.history["loss"], atol=1e-4)


def test_a_shared_boundary_cache_whose_phase_never_runs_is_closed(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlkit.finetune._fit import _Context

    monkeypatch.setattr(_boundary, "CACHE_DTYPE", np.float32)
    t = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0, batch_size=8,
                  schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze=2))  # fmt: skip
    t.build()
    train = as_data(split.train, "train")
    ctx = _Context(t, train, None, None, False, len(split.class_names))
    ctx.shared = _boundary.shared_cut(t, t.phases, train, None)
    assert ctx.shared is not None and ctx.shared[0] == 1
    features = ctx.features("train")
    x = np.concatenate([b[0] for b in split.train.to_dataset((SIZE, SIZE), batch_size=8,
                                                              shuffle=False)])  # fmt: skip
    np.testing.assert_allclose(features, t.backbone.model.predict_on_batch(x), atol=1e-5)
    stores = list(ctx._boundary.stores)  # type: ignore[union-attr]
    assert all(s.array is not None for s in stores)
    assert ctx.take_boundary(0) is None  # only its own phase takes it
    ctx.close()
    assert all(s.array is None for s in stores)
    one = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0,
                    schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze=1))  # fmt: skip
    one.build()
    shared_one = _boundary.shared_cut(one, one.phases, train, None)
    assert shared_one is not None and shared_one[1].where == "output of 'block2_pool'"
    # no cut to share: every group trains, or a frozen phase does not come first
    assert _boundary.shared_cut(t, [t.phases[1]], train, None) is None
    full = FineTuner(tiny_backbone(), class_names=split.class_names, verbose=0,
                     schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze="all"))  # fmt: skip
    full.build()
    assert _boundary.shared_cut(full, full.phases, train, None) is None
