"""``pooling="blocks"``: every block's pooled features, concatenated with the last layer's."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tlkit import DatasetSplitter, FineTuner, schedules
from tlkit.backbones import block_taps, get_backbone, pool_blocks
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import InvalidArgumentError


@pytest.mark.parametrize(
    "name, count, first, last, width",
    [
        ("efficientnet_lite0", 15, "block1_expand_relu6", "block15_expand_relu6", 1280),
        ("mobilenet_v2", 16, "block_1_expand_relu", "block_16_expand_relu", 1280),
        ("efficientnet_b0", 15, "block2a_expand_activation", "block7a_expand_activation", 1280),
        ("resnet50", 16, "conv2_block1_out", "conv5_block3_out", 2048),
        ("mobilenet", 6, "conv1_relu", "conv_pw_13_relu", 1024),  # no pattern: group outputs
    ],
)
def test_taps_are_each_blocks_layer_from_stem_to_head(
    name: str, count: int, first: str, last: str, width: int
) -> None:
    bb = get_backbone(name, weights=None, image_size=64, pooling="blocks")
    taps = block_taps(bb)
    assert (len(taps), taps[0], taps[-1]) == (count, first, last)
    channels = sum(bb.model.get_layer(t).output.shape[-1] for t in taps)
    *pooled, last_layer = bb.model.get_layer("blocks_features").input
    assert len(pooled) == count and last_layer.shape[-1] == width
    assert bb.feature_dim == channels + width == bb.model.output_shape[-1]
    assert bb.options == {"pooling": "blocks"} and bb.model.name.endswith("_blocks")


def test_features_are_the_pooled_taps_then_the_pooled_last_layer() -> None:
    bb = get_backbone("efficientnet_lite0", weights=None, image_size=64, pooling="blocks")
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    maps = keras.Model(
        bb.model.inputs,
        [bb.model.get_layer(t).output for t in block_taps(bb)]
        + [bb.model.get_layer("avg_pool").output],
    ).predict_on_batch(x)
    expected = np.concatenate([m.mean(axis=(1, 2)) for m in maps[:-1]] + [maps[-1]], axis=1)
    np.testing.assert_allclose(bb.model.predict_on_batch(x), expected, rtol=1e-5, atol=1e-5)
    # the same layers, groups and weights as the backbone below it: freezing still works
    weights = {id(w) for g in bb.layer_groups for layer in g for w in layer.weights}
    assert weights == {id(w) for w in bb.model.weights}


def test_refused_where_there_is_nothing_to_pool() -> None:
    bb = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(4,), pooling=None)
    with pytest.raises(InvalidArgumentError, match="pooling='blocks' needs pooled features"):
        pool_blocks(bb)
    with pytest.raises(InvalidArgumentError, match="'avg', 'max', None, 'blocks'"):
        get_backbone("scratch_cnn", weights=None, image_size=32, pooling="every")


def test_fine_tuner_standardises_block_features_and_saves_them(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "data", {"a": 8, "b": 6, "c": 6}, image_size=32)
    split = DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(root)

    def tuner(pooling: str) -> FineTuner:
        keras.utils.set_random_seed(0)
        bb = get_backbone(
            "scratch_cnn", weights=None, image_size=32, widths=(4, 8), pooling=pooling
        )
        return FineTuner(bb, class_names=split.class_names, schedule=schedules.Frozen(2),
                         seed=0, verbose=0, batch_size=8)  # fmt: skip

    plain, blocks = tuner("avg"), tuner("blocks")
    assert "head_standardize" not in [layer.name for layer in plain.model.layers]
    blocks.fit(split.train, split.val)
    names = [layer.name for layer in blocks.model.layers]
    assert names[-3:] == ["head_standardize", "head_dropout", "classifier"]
    assert blocks.model.get_layer("head_standardize").moving_mean.numpy().any()  # it learnt
    blocks.save(tmp_path / "m.keras")
    loaded = FineTuner.load(tmp_path / "m.keras")
    assert loaded.backbone.options == {"widths": [4, 8], "pooling": "blocks"}
    np.testing.assert_allclose(
        loaded.predict(split.test).probabilities,
        blocks.predict(split.test).probabilities,
        atol=1e-6,
    )
    from tlkit.export import export

    report = export(loaded, tmp_path / "m.tflite", check_data=split.test, latency_runs=1)
    assert report.n_checked == len(split.test) and report.max_prob_diff < 1e-4
