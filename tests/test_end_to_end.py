"""The user's story end to end: split, pipeline, pretrained backbone, honest comparison.

Small on purpose (tiny images, one epoch): it checks that the parts fit together,
not how well a model learns.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from tlkit import AugmentationPipeline, DatasetSplitter, ModelComparator, Split
from tlkit.backbones import get_backbone
from tlkit.data import class_weights
from tlkit.datasets import make_synthetic_dataset


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("e2e") / "photos",
        {"healthy": 60, "rust": 24, "scab": 12},
        image_size=48,
        seed=0,
    )
    s = DatasetSplitter(val=0.2, test=0.25, seed=42).split(root)
    return Split.load(s.save(root.parent / "photos.split.json"))


@pytest.mark.slow
def test_split_to_comparison_report(split: Split, tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    size = 64
    aug = AugmentationPipeline.preset("light", seed=42)
    train = split.train.to_dataset(
        image_size=size, batch_size=16, augment=aug, shuffle=True, seed=0
    )
    val = split.val.to_dataset(image_size=size, batch_size=16)

    backbone = get_backbone("efficientnet_lite0", image_size=size)  # offline ImageNet weights
    backbone.freeze()
    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.Dense(split.num_classes, activation="softmax")(backbone.model(inputs))
    pretrained = keras.Model(inputs, outputs)
    pretrained.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    weights = class_weights(split.train)
    assert weights[2] > weights[1] > weights[0]  # the rarest class weighs most
    history = pretrained.fit(
        train, validation_data=val, epochs=1, class_weight=weights, shuffle=False, verbose=0
    )
    assert set(history.history) >= {"loss", "val_loss"}

    report = (
        ModelComparator(split.test, baseline_labels=split.train.labels)
        .add("efficientnet_lite0", pretrained)
        .add_predictions("always healthy", np.zeros(len(split.test), dtype=int))
        .run()
    )
    text = report.to_markdown()
    assert "majority-class baseline" in text and "efficientnet_lite0" in text
    assert "model 'always healthy' never predicts classes 'rust', 'scab'" in text
    data = json.loads(report.to_json())
    assert data["schema"] == "tlkit.comparison/3"
    written = {p.name: p for p in report.save(tmp_path / "report")}
    assert written["report.html"].stat().st_size > 10_000
    assert "confusion_efficientnet_lite0.png" in written
