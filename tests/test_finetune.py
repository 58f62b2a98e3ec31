"""FineTuner: what each phase trains, at what rates, with which BatchNorm behaviour.

A tiny backbone (the scratch CNN at 32 px, 3 layer groups) keeps every fit to
seconds; the mechanics are the same for every registry backbone.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tlkit import DatasetSplitter, FineTuner, Split, schedules
from tlkit.backbones import get_backbone
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    ScheduleError,
    TlkitError,
    TrainingDivergedError,
)
from tlkit.protocols import TrainedClassifier

SIZE = 32


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("ft") / "photos", {"a": 24, "b": 18, "c": 12}, image_size=SIZE
    )
    return DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(root)


def tiny_backbone():
    return get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8, 16, 16))


def tuner(schedule, **kwargs) -> FineTuner:
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("batch_size", 16)
    return FineTuner(tiny_backbone(), schedule=schedule, **kwargs)


class TrainableCount(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.counts: list[int] = []

    def on_train_begin(self, logs=None) -> None:
        self.counts.append(int(sum(np.prod(w.shape) for w in self.model.trainable_weights)))


def _weights(layers) -> int:
    return int(sum(np.prod(w.shape) for layer in layers for w in layer.trainable_weights))


def test_trainable_weights_per_phase_match_the_schedule(split: Split) -> None:
    s = schedules.GradualUnfreezing({0: 0, 1: 1, 2: "all"}, epochs=3)
    t = tuner(s)
    seen = TrainableCount()
    t.fit(split.train, split.val, callbacks=[seen])
    head = _weights(t._head_layers)
    groups = t.backbone.layer_groups
    per_group = [_weights(g) for g in groups]
    assert per_group[-1] > 0
    assert seen.counts == [head, head + per_group[-1], head + sum(per_group)]
    assert [p["trainable_params"] for p in t.phase_log] == seen.counts
    assert [p["unfrozen_groups"] for p in t.phase_log] == [
        [],
        [groups[-1].name],
        [g.name for g in reversed(groups)],
    ]
    assert t.history.phases == ["head", "unfreeze-1", "full"]


def test_batchnorm_statistics_frozen_unless_train_bn(split: Split) -> None:
    def moving(t: FineTuner) -> list[np.ndarray]:
        return [
            np.asarray(w).copy()
            for layer in t.backbone.model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)
        ]

    frozen_bn = tuner(schedules.FullTraining(2), augment=None)
    before = moving(frozen_bn)
    frozen_bn.fit(split.train)
    assert all(np.array_equal(a, b) for a, b in zip(before, moving(frozen_bn), strict=False))
    convs = [
        layer for g in frozen_bn.backbone.layer_groups for layer in g if layer.name.endswith("conv")
    ]
    assert frozen_bn.phase_log[0]["trainable_params"] == _weights(
        frozen_bn._head_layers
    ) + _weights(convs)

    trained_bn = tuner(schedules.FullTraining(2, train_bn=True))
    before = moving(trained_bn)
    trained_bn.fit(split.train)
    assert not any(np.array_equal(a, b) for a, b in zip(before, moving(trained_bn), strict=False))


def test_discriminative_rates_are_real_per_group_steps(split: Split) -> None:
    # One Adam step moves each weight by about its group's rate (|m/sqrt(v)| = 1 at step 1),
    # so the largest change per group is the group's rate: Adam does not undo the rates.
    s = schedules.FreezeThenUnfreeze(
        0, 1, unfreeze="all", lr_factor=1.0, lr_decay=0.5, cosine=False
    )
    t = tuner(
        s, learning_rate=1e-2, batch_size=64, restore_best=False, dropout=0.0,
        class_names=split.class_names,
    )  # fmt: skip
    net = t.build()
    groups = ["classifier"] + [g.name for g in reversed(t.backbone.layer_groups)]
    layers = {"classifier": [net.get_layer("classifier")]}
    layers.update({g.name: list(g) for g in t.backbone.layer_groups})
    before = {
        g: [np.asarray(w).copy() for lay in layers[g] for w in lay.trainable_weights]
        for g in groups
    }
    t.fit(split.train)  # 32 training images, batch 64: exactly one step
    assert int(np.asarray(t._optimizers["classifier"].iterations)) == 1
    for depth, g in enumerate(groups):
        after = [np.asarray(w).copy() for lay in layers[g] for w in lay.trainable_weights]
        change = max(float(np.max(np.abs(a - b))) for a, b in zip(after, before[g], strict=False))
        assert change == pytest.approx(1e-2 * 0.5**depth, rel=0.02), g


def test_optimizer_state_kept_for_groups_that_keep_training(split: Split) -> None:
    s = schedules.GradualUnfreezing({0: 1, 1: 2}, epochs=2)
    t = tuner(s, batch_size=16)
    t.fit(split.train)
    steps = int(np.ceil(len(split.train) / 16))
    top = t.backbone.layer_groups[-1].name
    below = t.backbone.layer_groups[-2].name
    assert int(np.asarray(t._optimizers[top].iterations)) == 2 * steps  # both phases
    assert int(np.asarray(t._optimizers[below].iterations)) == steps  # joined in phase 2


def test_cached_features_give_the_slow_path_head(split: Split) -> None:
    results = []
    for cache in (True, False):
        t = tuner(schedules.Frozen(3), cache_features=cache, cache_images=None)
        t.fit(split.train, split.val)
        assert t.phase_log[0]["cached_features"] is cache
        results.append([np.asarray(w).copy() for layer in t._head_layers for w in layer.weights])
        results.append(t.history.history["loss"])
    fast_w, fast_loss, slow_w, slow_loss = results
    for a, b in zip(fast_w, slow_w, strict=False):
        np.testing.assert_allclose(a, b, atol=2e-5)
    np.testing.assert_allclose(fast_loss, slow_loss, rtol=1e-4)


def test_auto_caching_decision_is_logged(split: Split, capsys: pytest.CaptureFixture) -> None:
    s = schedules.FreezeThenUnfreeze(1, 1, unfreeze=1)
    t = tuner(s, augment="light", verbose=2)
    t.fit(split.train)
    err = capsys.readouterr().err
    assert "augmentation starts with the first phase that trains the backbone" in err
    assert [p["cached_features"] for p in t.phase_log] == [True, False]
    only_frozen = tuner(schedules.Frozen(1), augment="light")
    only_frozen.fit(split.train)
    assert only_frozen.phase_log[0]["cached_features"] is False


@pytest.mark.slow
def test_same_seed_gives_identical_weights(split: Split) -> None:
    s = schedules.FreezeThenUnfreeze(1, 1, unfreeze="all")
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(7)  # the built backbone's random weights, drawn before
        t = tuner(s, augment="light")
        t.fit(split.train, split.val)
        runs.append(t.model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))


def test_scratch_cnn_same_seed_gives_identical_initial_weights_whatever_ran_before() -> None:
    """Its backbone is built in the constructor: the seed must act before its weights are drawn."""
    import keras

    first = FineTuner.scratch_cnn(num_classes=3, image_size=32, widths=(4, 8), seed=0, verbose=0)
    keras.utils.set_random_seed(123)  # another seed, and draws, as other code might
    keras.random.normal((3,))
    second = FineTuner.scratch_cnn(num_classes=3, image_size=32, widths=(4, 8), seed=0, verbose=0)
    for a, b in zip(first.build().get_weights(), second.build().get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_class_weights_scale_the_loss_as_documented(split: Split) -> None:
    # fit(class_weight) multiplies each example's cross-entropy by its class's weight and
    # averages over the batch: loss = mean_i w[y_i] * -log p_i[y_i].
    weights = {0: 0.5, 1: 2.0, 2: 3.0}
    s = schedules.FullTraining(1, cosine=False)
    t = tuner(
        s, class_weight=weights, batch_size=64, dropout=0.0, learning_rate=1e-9,
        class_names=split.class_names,
    )  # fmt: skip
    net = t.build()
    x, y = next(iter(split.train.to_dataset(SIZE, batch_size=64)))
    p = np.asarray(net(x, training=False))[np.arange(len(y)), np.asarray(y)]
    expected = float(np.mean([weights[int(c)] for c in np.asarray(y)] * -np.log(p)))
    unweighted = float(np.mean(-np.log(p)))
    t.fit(split.train)
    assert t.history.history["loss"][0] == pytest.approx(expected, rel=1e-4)
    assert expected != pytest.approx(unweighted, rel=1e-2)
    balanced = tuner(s, class_weight="balanced", class_names=split.class_names)
    counts = np.bincount(split.train.labels, minlength=3)
    w = balanced.class_weight_dict(balanced_data(split))
    assert w == pytest.approx({i: len(split.train) / (3 * counts[i]) for i in range(3)})


def balanced_data(split: Split):
    from tlkit.finetune._data import as_data

    return as_data(split.train, "train")


def test_learns_generated_data(split: Split) -> None:
    cnn = FineTuner.scratch_cnn(
        class_names=split.class_names, image_size=SIZE, epochs=6, seed=0, verbose=0,
        widths=(16, 32), batch_size=8,
    )  # fmt: skip
    cnn.fit(split.train, split.val)
    assert cnn.evaluate(split.test)["accuracy"] >= 0.9
    assert cnn.history.phases == ["full"] * 6
    assert cnn.train_time_s > 0


@pytest.mark.slow
def test_tf_data_input_and_predict_forms(split: Split, tmp_path: Path) -> None:
    train = split.train.to_dataset(SIZE, batch_size=16, shuffle=True, seed=0)
    t = tuner(schedules.FreezeThenUnfreeze(1, 1, unfreeze=1), class_names=split.class_names)
    t.fit(train, split.val.to_dataset(SIZE, batch_size=16))
    assert t.phase_log[0]["cached_features"] is False  # a dataset may augment: not cached
    by_part = t.predict(split.test)
    paths = [str(split.test.root / s.path) for s in split.test]
    by_path = t.predict(paths)
    images = np.stack([x for x, _ in split.test.to_dataset(SIZE, batch_size=1).unbatch()])
    by_array = t.predict(images)
    for other in (by_path, by_array):
        np.testing.assert_allclose(other.probabilities, by_part.probabilities, atol=1e-5)
    labels, probs = by_part
    assert labels is by_part.labels and probs.shape == (len(split.test), 3)
    assert labels.dtype == np.int64 and np.array_equal(labels, probs.argmax(axis=1))
    assert by_part.names == [split.class_names[i] for i in labels]
    assert set(by_part.names) <= set(split.class_names)
    assert set(t.evaluate(split.test)) == {"loss", "accuracy", "balanced_accuracy", "macro_f1"}


def test_wrong_num_classes_and_bad_arguments(split: Split) -> None:
    with pytest.raises(ScheduleError, match="num_classes=2 but train has 3 classes"):
        tuner(schedules.Frozen(1), num_classes=2).fit(split.train)
    with pytest.raises(ScheduleError, match="made for"):
        tuner(schedules.Frozen(1), class_names=["x", "y", "z"]).fit(split.train)
    with pytest.raises(ScheduleError, match="label 2"):
        t = tuner(schedules.Frozen(1), num_classes=2)
        t.fit(split.train.to_dataset(SIZE, batch_size=8))
    for kwargs, match in [
        ({"monitor": "val_auc"}, "monitor must be one of"),
        ({"optimizer": "adagrad"}, "optimizer must be one of"),
        ({"class_weight": "inverse"}, "class_weight must be"),
        ({"dropout": 1.5}, "dropout"),
        ({"image_size": 8}, "image_size must be"),
        ({"class_names": ["a", "a"]}, "distinct"),
        ({"num_classes": 3, "class_names": ["a", "b"]}, "num_classes=3"),
        ({"cache_features": "yes"}, "cache_features"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"verbose": 3}, "verbose must be one of"),
    ]:
        with pytest.raises(InvalidArgumentError, match=match) as info:
            FineTuner("scratch_cnn", weights=None, **kwargs)
        assert not isinstance(info.value, ScheduleError)  # an argument error (#21)
    with pytest.raises(ScheduleError, match="one-phase"):
        tuner(schedules.FreezeThenUnfreeze(1, 1)).fit(split.train, epochs=3)
    # A wrong type is an ArgumentTypeError (a TypeError), naming the argument.
    with pytest.raises(ArgumentTypeError, match="SplitPart"):
        tuner(schedules.Frozen(1)).fit("photos/")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": 3}, "backbone must be a registry name"),
        ({"class_names": "abc"}, "class_names must be a list"),
        ({"num_classes": 2.0}, "num_classes must be an int"),
        ({"optimizer": 1}, "optimizer must be one of"),
        ({"class_weight": 1.0}, "class_weight must be None"),
        ({"dropout": "0.2"}, "dropout must be a number"),
        ({"dropout": True}, "dropout must be a number"),
        ({"image_size": "32"}, "image_size must be an int or a"),
        ({"batch_size": 8.0}, "batch_size must be an int"),
        ({"seed": "0"}, "seed must be an int"),
        ({"restore_best": 1}, "restore_best must be True or False"),
        ({"mixed_precision": "no"}, "mixed_precision must be True or False"),
        ({"schedule": 3}, "schedule must be a Schedule"),
    ],
)
def test_wrong_argument_types_are_type_errors(kwargs: dict, match: str) -> None:
    kwargs = {"backbone": "scratch_cnn", "weights": None, **kwargs}
    with pytest.raises(ArgumentTypeError, match=match) as info:
        FineTuner(**kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, TlkitError)


def test_input_size_the_old_name_of_image_size_is_refused() -> None:
    with pytest.raises(TypeError, match="input_size"):
        FineTuner("scratch_cnn", weights=None, num_classes=2, input_size=48)
    with pytest.raises(TypeError, match="input_size"):
        FineTuner.scratch_cnn(num_classes=2, input_size=40, epochs=1, widths=(8,))
    t = FineTuner("scratch_cnn", weights=None, num_classes=2, image_size=48)
    assert t.image_size == (48, 48) and not hasattr(t, "input_size")
    assert "image_size=(48, 48)" in repr(t)
    cnn = FineTuner.scratch_cnn(num_classes=2, image_size=40, epochs=1, widths=(8,))
    assert cnn.image_size == (40, 40) and cnn.model.input_shape == (None, 40, 40, 3)


def test_only_the_backbone_is_positional() -> None:
    """An old positional call (``FineTuner(name, 3)``) is a TypeError, not a silent misreading."""
    with pytest.raises(TypeError, match="positional"):
        FineTuner("scratch_cnn", 2)
    with pytest.raises(TypeError, match="positional"):
        FineTuner("scratch_cnn", None, ["a", "b"], None)
    with pytest.raises(TypeError, match="positional"):
        FineTuner.scratch_cnn(2)
    with pytest.raises(TypeError, match="positional"):
        FineTuner.scratch_cnn(None, ["a", "b"], 40)
    params = list(inspect.signature(FineTuner).parameters.values())
    assert params[0].name == "backbone"
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert all(p.default is not inspect.Parameter.empty for p in params)
    cnn = inspect.signature(FineTuner.scratch_cnn).parameters.values()
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in cnn)


def test_every_checked_setting_is_an_attribute() -> None:
    """The constructor assigns each setting ``_settings.settings`` checks, by the same name."""
    from tlkit.finetune import _settings

    t = FineTuner("scratch_cnn", weights=None, num_classes=2, image_size=48, dropout=0.1, seed=3)
    checked = _settings.settings(
        default_size=(224, 224), image_size=48, backbone_size=None, head_units=None, dropout=0.1,
        class_weight=None, label_smoothing=0.0, optimizer="adam", learning_rate=None,
        batch_size=32, cache_features="auto", cache_images="auto", memory_budget_mb=2048,
        monitor="val_balanced_accuracy", monitor_window=5, restore_best=True,
        early_stopping=None, mixed_precision=False, seed=3, verbose=1,
    )  # fmt: skip
    assert {name: getattr(t, name) for name in checked} == checked


def _report_row(run: TrainedClassifier) -> tuple[list[str], float | None]:
    """Typed to take the protocol: a type checker accepts a FineTuner here."""
    return list(run.class_names or []), run.train_time_s


def test_fine_tuner_is_a_trained_classifier(split: Split) -> None:
    t = tuner(schedules.Frozen(1), class_names=split.class_names)
    assert isinstance(t, TrainedClassifier)  # runtime_checkable: the five attributes exist
    assert _report_row(t) == (list(split.class_names), None)
    # Before fit: no history, no time, no export; the model is built on first use.
    assert t.history is None and t.train_time_s is None and t.tflite_path is None
    assert t.model.output_shape == (None, len(split.class_names))
    t.fit(split.train, split.val)
    assert isinstance(t, TrainedClassifier)
    assert len(t.history) == 1 and t.train_time_s > 0
    # The protocol's attributes are declared on the class, for readers and type checkers.
    declared = set(FineTuner.__annotations__) | {n for n in vars(FineTuner) if n == "model"}
    assert {"model", "class_names", "history", "train_time_s", "tflite_path"} <= declared
    assert not isinstance(object(), TrainedClassifier)


def test_nan_loss_names_the_phase_and_rate(split: Split) -> None:
    bad = tf.data.Dataset.from_tensor_slices(
        (np.full((8, SIZE, SIZE, 3), np.nan, np.float32), np.zeros(8, np.int32))
    ).batch(4)
    t = tuner(schedules.FullTraining(1), num_classes=3)
    with pytest.raises(TrainingDivergedError, match=r"phase 'full'.*learning rates: classifier"):
        t.fit(bad)


def test_lr_find_curve_and_plot(split: Split, tmp_path: Path) -> None:
    t = tuner(schedules.Frozen(1), class_names=split.class_names)
    t.build()
    before = [np.asarray(w).copy() for w in t.model.get_weights()]
    result = t.lr_find(split.train, min_lr=1e-5, max_lr=10.0, steps=30)
    assert len(result.learning_rates) == len(result.losses) >= 5
    assert result.learning_rates == sorted(result.learning_rates)
    assert 1e-5 <= result.suggestion <= 10.0
    assert result.phase == "head"
    after = t.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=False))  # restored
    png = result.plot(tmp_path / "lr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_early_stopping_restores_the_best_epoch(split: Split) -> None:
    t = tuner(schedules.Frozen(6), monitor="val_loss", monitor_window=1, learning_rate=0.5)
    t.fit(split.train, split.val)
    _best, value = t.history.best("val_loss")
    assert t.evaluate(split.val)["loss"] == pytest.approx(value, rel=1e-4)
    stop = tuner(schedules.Frozen(30), early_stopping=1, monitor="val_accuracy")
    stop.fit(split.train, split.val)
    assert len(stop.history) < 30


def test_schedule_keeps_the_best_epoch_of_all_phases(split: Split) -> None:
    # A fine-tuning phase at an absurd rate wrecks the model; the head phase's best is kept.
    s = schedules.FreezeThenUnfreeze(4, 2, unfreeze="all", lr_factor=1000.0)
    t = tuner(s, monitor="val_loss", monitor_window=1, learning_rate=1e-2)
    t.fit(split.train, split.val)
    assert t.history.phases == ["head"] * 4 + ["finetune"] * 2
    best, value = t.history.best("val_loss")
    assert t.history.phases[best] == "head" and t.best_epoch == best
    assert t.evaluate(split.val)["loss"] == pytest.approx(value, rel=1e-4)


def test_unpooled_backbone_is_refused_with_a_schedule_error() -> None:
    bb = get_backbone("scratch_cnn", weights=None, image_size=SIZE, pooling=None, widths=(8,))
    with pytest.raises(ScheduleError, match="must give pooled features"):
        FineTuner(bb, num_classes=2).build()


def test_history_from_a_damaged_dict_is_a_tlkit_error() -> None:
    from tlkit.finetune import TrainingHistory

    with pytest.raises(TlkitError, match="differ in length") as info:
        TrainingHistory.from_dict({"history": {"loss": [1.0, 0.5]}, "phases": ["head"]})
    assert isinstance(info.value, ValueError)


def test_image_size_must_match_a_built_backbone() -> None:
    bb = tiny_backbone()
    assert FineTuner(bb, num_classes=2).image_size == (SIZE, SIZE)
    assert FineTuner(bb, num_classes=2, image_size=SIZE).image_size == (SIZE, SIZE)
    with pytest.raises(
        InvalidArgumentError, match=r"image_size=\(64, 64\) but the backbone was built"
    ):
        FineTuner(bb, num_classes=2, image_size=64)


def test_augment_accepts_presets_pipelines_and_layer_lists(split: Split) -> None:
    from tlkit.augment import AugmentationPipeline

    assert tuner(schedules.FullTraining(1), augment="light").augment == "light"
    pipe = AugmentationPipeline.preset("standard", seed=3)
    assert tuner(schedules.FullTraining(1), augment=pipe).augment is pipe
    layers = [keras.layers.RandomFlip("horizontal")]
    t = tuner(schedules.FullTraining(1), augment=layers, seed=5)
    assert isinstance(t.augment, AugmentationPipeline) and t.augment.seed == 5
    assert list(t.augment.layers) == layers
    t.fit(split.train, split.val)  # the wrapped list augments a real fit
    assert len(t.history) == 1
    with pytest.raises(InvalidArgumentError, match="augment must be one of 'none', 'light'"):
        tuner(schedules.FullTraining(1), augment="strong")
    with pytest.raises(ArgumentTypeError, match="augment must be None, a preset name"):
        tuner(schedules.FullTraining(1), augment=3)


def test_best_epoch_is_chosen_on_the_smoothed_monitor() -> None:
    """A one-epoch spike loses to a stretch that is better on average (monitor_window)."""
    from tlkit.finetune._callbacks import BestEpoch, TrainingHistory

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    scores = [0.50, 0.72, 0.50, 0.60, 0.62, 0.64, 0.66, 0.58]  # spike at epoch 2
    # window 1: the spike's own weights; window 3: the mean of epochs 4-6's weights
    for window, expected, kept in ((1, 1.0, (1, 1)), (3, 5.0, (4, 6))):
        history = TrainingHistory()
        best = BestEpoch(history, "val_balanced_accuracy", window, patience=99, restore=True)
        best.set_model(model)
        best.on_train_begin()
        for epoch, score in enumerate(scores):
            model.set_weights([np.full((1, 1), float(epoch)), np.zeros(1)])
            history.append("head", {"val_balanced_accuracy": score}, 1.0)
            best.on_epoch_end(epoch)
        best.on_train_end()
        assert model.get_weights()[0][0, 0] == expected
        assert best.kept == kept and best.kept_score is None and not best.fell_back
    # patience counts epochs without a better smoothed score
    history = TrainingHistory()
    stop = BestEpoch(history, "val_loss", 2, patience=2, restore=False)
    stop.set_model(model)
    model.stop_training = False
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.95, 0.99, 0.1, 0.1]):
        history.append("head", {"val_loss": loss}, 1.0)
        stop.on_epoch_end(epoch)
        if model.stop_training:
            break
    # smoothed 1.0, 0.9, 0.85 (best), 0.925, 0.97: stops after 2 worse ones, before the drop
    assert epoch == 4 and model.stop_training is True
    assert stop.kept is None  # restore=False keeps nothing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=12),
    st.integers(1, 6),
)
def test_smoothed_is_the_trailing_mean_of_the_window_without_nans(
    values: list[float], window: int
) -> None:
    from tlkit.finetune._callbacks import smoothed

    out = smoothed(values, window)
    assert len(out) == len(values)
    for i, got in enumerate(out):
        recent = [v for v in values[max(0, i - window + 1) : i + 1] if v == v]
        if recent:
            assert got == pytest.approx(sum(recent) / len(recent))
        else:
            assert got != got  # NaN: nothing to average


@pytest.mark.parametrize(
    ("monitor", "values", "checked", "weights", "kept"),
    [
        # stretch 1-3 (mean 0.65); the mean weights score 0.61, not worse than every epoch
        ("val_balanced_accuracy", [0.5, 0.6, 0.7, 0.65, 0.4], 0.61, 2.0, (1, 3)),
        # the mean scores under each of 0.6, 0.7, 0.65: the stretch's last epoch instead
        ("val_balanced_accuracy", [0.5, 0.6, 0.7, 0.65, 0.4], 0.59, 3.0, (3, 3)),
        ("val_balanced_accuracy", [0.5, 0.6, 0.7, 0.65, 0.4], float("nan"), 3.0, (3, 3)),
        # a loss is better lower: 0.85 is under the stretch's 0.9, 0.95 above each of its epochs
        ("val_loss", [1.0, 0.9, 0.7, 0.75, 0.95], 0.85, 2.0, (1, 3)),
        ("val_loss", [1.0, 0.9, 0.7, 0.75, 0.95], 0.95, 3.0, (3, 3)),
    ],
)
def test_the_mean_of_the_best_stretch_is_checked_on_validation(
    monitor: str, values: list[float], checked: float, weights: float, kept: tuple[int, int]
) -> None:
    from tlkit.finetune._callbacks import BestEpoch, TrainingHistory

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    history = TrainingHistory()
    calls: list[float] = []

    def score() -> float:
        calls.append(float(model.get_weights()[0][0, 0]))  # scored on the mean weights
        return checked

    best = BestEpoch(history, monitor, 3, patience=99, restore=True, score=score)
    best.set_model(model)
    for epoch, value in enumerate(values):
        model.set_weights([np.full((1, 1), float(epoch)), np.zeros(1)])
        history.append("head", {monitor: value}, 1.0)
        best.on_epoch_end(epoch)
    best.on_train_end()
    assert calls == [2.0]
    assert model.get_weights()[0][0, 0] == weights
    assert best.kept == kept and best.fell_back == (kept[0] == kept[1])


def test_a_stretch_takes_only_its_own_phase_epochs() -> None:
    """The first epochs of a phase are scored with the previous phase's, but only this
    phase's weights (the ones it trained) are averaged."""
    from tlkit.finetune._callbacks import BestEpoch, TrainingHistory

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    history = TrainingHistory()
    for value in (0.9, 0.9, 0.9):  # an earlier phase, not seen by this BestEpoch
        history.append("head", {"val_accuracy": value}, 1.0)
    best = BestEpoch(history, "val_accuracy", 3, patience=99, restore=True)
    best.set_model(model)
    for epoch, value in enumerate([0.8, 0.3, 0.3], start=3):
        model.set_weights([np.full((1, 1), float(epoch)), np.zeros(1)])
        history.append("finetune", {"val_accuracy": value}, 1.0)
        best.on_epoch_end(epoch)
    best.on_train_end()
    assert best.kept == (3, 3) and model.get_weights()[0][0, 0] == 3.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=3, max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, 2**31 - 1),
)
def test_mean_weights_averages_floats_and_keeps_the_last_of_the_rest(
    rows: list[list[float]], state: int
) -> None:
    from tlkit.finetune._callbacks import mean_weights

    snapshots = [
        [np.asarray(r, np.float32).reshape(3, 1), np.asarray([state + i], np.int64)]
        for i, r in enumerate(rows)
    ]
    mean = mean_weights(snapshots)
    stacked = np.stack([s[0] for s in snapshots]).astype(np.float64)
    assert mean[0].dtype == np.float32 and mean[0].shape == (3, 1)
    np.testing.assert_allclose(mean[0], stacked.mean(axis=0), rtol=1e-6, atol=1e-4)
    assert np.all(mean[0] >= stacked.min(axis=0) - 1e-3)
    assert np.all(mean[0] <= stacked.max(axis=0) + 1e-3)
    assert mean[1].tolist() == [state + len(rows) - 1]  # not averaged: the last
    # the order of the snapshots does not matter to the mean
    np.testing.assert_allclose(mean_weights(snapshots[::-1])[0], mean[0], rtol=1e-6, atol=1e-4)
    if len(rows) == 1:
        assert np.array_equal(mean[0], snapshots[0][0])
    with pytest.raises(ValueError, match="at least one snapshot"):
        mean_weights([])


@pytest.mark.parametrize(
    ("kept", "score", "fell_back", "said"),
    [
        ((1, 3), 0.61, False, "phase 'head' keeps the mean weights of epochs 2-4 "
         "(val_accuracy 0.6100; the epochs 0.6000, 0.7000, 0.6500)"),
        ((3, 3), 0.59, True, "phase 'head': the mean weights of its best stretch of epochs "
         "scored val_accuracy 0.5900, worse than each of them; keeping epoch 4 (0.6500)"),
        ((3, 3), None, False, "phase 'head' keeps epoch 4"),
        ((1, 3), None, False, "phase 'head' keeps the mean weights of epochs 2-4"),
    ],
)  # fmt: skip
def test_the_kept_epochs_are_logged(
    kept: tuple[int, int], score: float | None, fell_back: bool, said: str
) -> None:
    from types import SimpleNamespace

    from tlkit.finetune._callbacks import BestEpoch, TrainingHistory
    from tlkit.finetune._fit import _log_kept

    history = TrainingHistory()
    for value in (0.5, 0.6, 0.7, 0.65):
        history.append("head", {"val_accuracy": value}, 1.0)
    best = BestEpoch(history, "val_accuracy", 3, patience=99, restore=True)
    best.kept, best.kept_score, best.fell_back = kept, score, fell_back
    lines: list[str] = []
    t = SimpleNamespace(monitor="val_accuracy", monitor_window=3, log=lines.append)
    _log_kept(t, SimpleNamespace(name="head"), best, history)  # type: ignore[arg-type]
    assert lines == [f"tlkit: {said}"]


class WeightRecorder(keras.callbacks.Callback):
    """The whole network's weights at the end of every epoch (phases share its layers)."""

    def __init__(self, t: FineTuner) -> None:
        super().__init__()
        self.tuner, self.epochs = t, []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epochs.append(self.tuner.model.get_weights())


def test_fit_keeps_the_mean_weights_of_the_best_stretch(split: Split) -> None:
    """Each phase ends on the mean of its best stretch's weights, scored on validation as logged;
    ``monitor_window=1`` keeps one epoch's weights exactly."""
    s = schedules.FreezeThenUnfreeze(5, 2, unfreeze=1, lr_factor=0.1)
    t = tuner(s, monitor="val_loss", monitor_window=3, class_names=split.class_names)
    t.build()
    record = WeightRecorder(t)
    lines: list[str] = []
    t.log = lines.append  # type: ignore[method-assign]
    t.fit(split.train, split.val, callbacks=[record])
    said = [re.match(r"tlkit: phase '(\w+)'( keeps|: the mean weights)", line) for line in lines]
    assert [m.group(1) for m in said if m] == ["head", "finetune"]  # one line a phase
    assert "phase 'head' keeps the mean weights of epochs 3-5 (val_loss " in " ".join(lines)
    assert t.kept_epochs == (5, 6) and t.best_epoch == 6  # the val loss still falls: the end
    expected = [np.mean(ws, axis=0) for ws in zip(*record.epochs[5:7], strict=True)]
    for got, want in zip(t.model.get_weights(), expected, strict=True):
        if np.issubdtype(got.dtype, np.floating):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    logged = float(
        re.search(r"keeps the mean weights of epochs 6-7 \(val_loss ([\d.]+)", lines[-1])[1]
    )
    assert t.evaluate(split.val)["loss"] == pytest.approx(logged, abs=1e-4)

    one = tuner(schedules.Frozen(5), monitor_window=1, class_names=split.class_names)
    one.build()
    record = WeightRecorder(one)
    one.fit(split.train, split.val, callbacks=[record])
    assert one.kept_epochs == (one.best_epoch, one.best_epoch)
    for got, want in zip(one.model.get_weights(), record.epochs[one.best_epoch], strict=True):
        assert np.array_equal(got, want)


def test_monitor_window_is_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="monitor_window must be an int >= 1"):
        tuner(schedules.Frozen(1), monitor_window=0)
    with pytest.raises(ArgumentTypeError, match="monitor_window"):
        tuner(schedules.Frozen(1), monitor_window="3")


def test_num_classes_alone_takes_the_names_from_the_split(split: Split) -> None:
    """FineTuner(num_classes=k) then fit(split.train): the part's class names are used."""
    t = tuner(schedules.Frozen(1), num_classes=3)
    assert t.class_names == ["class_0", "class_1", "class_2"]
    t.fit(split.train)
    assert t.class_names == list(split.class_names)
    assert set(t.predict(split.test).names) <= set(split.class_names)


def _sized_dataset(split: Split, size: int) -> tf.data.Dataset:
    return split.train.to_dataset(size, batch_size=16)


def test_image_size_is_read_from_a_dataset_when_not_given(split: Split) -> None:
    t = FineTuner(
        "scratch_cnn", weights=None, num_classes=3, schedule=schedules.Frozen(1),
        seed=0, verbose=0,
    )  # fmt: skip
    assert t.image_size != (40, 40)
    t.fit(_sized_dataset(split, 40))
    assert t.image_size == (40, 40) and tuple(t.model.input_shape[1:3]) == (40, 40)


def test_a_dataset_of_another_size_names_both_sizes(split: Split) -> None:
    t = tuner(schedules.Frozen(1), class_names=split.class_names)  # built for 32 px
    with pytest.raises(ScheduleError, match=r"40x40 images .* image_size is 32x32.*image_size="):
        t.fit(_sized_dataset(split, 40))
    t = FineTuner("scratch_cnn", weights=None, num_classes=3, image_size=48, verbose=0)
    with pytest.raises(ScheduleError, match=r"40x40 images .* image_size is 48x48"):
        t.fit(_sized_dataset(split, 40))
    with pytest.raises(ScheduleError, match=r"val.*|40x40 images"):
        t.fit(_sized_dataset(split, 48), _sized_dataset(split, 40))


def test_phase_log_records_the_configured_rates_not_the_warmup_step(split: Split) -> None:
    """With warm-up, the logged rate of each group is its configured peak (issue 19)."""
    s = schedules.FreezeThenUnfreeze(1, 1, unfreeze="all", lr_factor=0.5, lr_decay=0.5, warmup=1)
    t = tuner(s, learning_rate=3e-3, class_names=split.class_names, cache_features=False)
    t.fit(split.train)
    head, tune = t.phase_log
    assert head["learning_rates"] == {"classifier": pytest.approx(3e-3)}
    groups = ["classifier"] + [g.name for g in reversed(t.backbone.layer_groups)]
    for depth, g in enumerate(groups):
        assert tune["learning_rates"][g] == pytest.approx(3e-3 * 0.5 * 0.5**depth), g


def _epochs_of(batches: list) -> np.ndarray:
    return np.concatenate([np.asarray(x).reshape(len(y), -1) for x, y in batches])


def _training_datasets(split: Split) -> dict:
    """The three kinds of training batches a phase fits on: images (decoded once, randomly
    augmented per batch), cached feature rows (shuffled slices) and cached views (a generator)."""
    from tlkit import AugmentationPipeline
    from tlkit.finetune._boundary import view_batches

    rows = np.arange(2 * 33 * 3, dtype=np.float32).reshape(2 * 33, 3)
    labels = np.arange(33, dtype=np.int32) % 2
    return {
        "images": lambda: split.train.to_dataset(
            32, batch_size=8, shuffle=True, seed=3, cache="memory",
            augment=AugmentationPipeline.preset("light", seed=3),
        ),
        "features": lambda: tf.data.Dataset.from_tensor_slices((rows[:33], labels))
        .shuffle(33, seed=3, reshuffle_each_iteration=True)
        .batch(8),
        "views": lambda: view_batches(rows, labels, 2, 8, 3),
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["images", "features", "views"])
def test_a_phase_fits_on_the_batches_of_a_new_iterator_each_epoch(kind: str, tmp_path) -> None:
    """A phase fits on ``ds.repeat()`` with ``steps_per_epoch`` (a new iterator each epoch left
    the CPU idle for seconds at some epochs' first batch: benchmarks/epoch_start.py). Its
    batches must stay those of one fresh iterator per epoch, epoch after epoch: the same
    images and views in the same order, reshuffled every epoch."""
    root = make_synthetic_dataset(tmp_path / "p", {"a": 20, "b": 13}, image_size=32, seed=0)
    split = DatasetSplitter(val=0, test=0, seed=0, progress=False).split(root)
    make = _training_datasets(split)[kind]
    ds = make()
    steps = int(ds.cardinality())
    assert steps == 5  # 33 rows in batches of 8: the last one partial
    plain = [_epochs_of(list(ds)) for _ in range(4)]
    assert not np.array_equal(plain[0], plain[1])  # the epochs differ
    batches = iter(make().repeat())
    repeated = [_epochs_of([next(batches) for _ in range(steps)]) for _ in range(4)]
    for epoch, (want, got) in enumerate(zip(plain, repeated, strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"epoch {epoch + 1}")


def test_fit_trains_without_the_autotune_thread(split: Split, monkeypatch) -> None:
    """Every phase's training data reaches Keras with tf.data's autotuning thread off, a
    user's dataset too: deleting an iterator with it on waited up to 60 s when ``fit``
    returned (benchmarks/iterator_teardown.py), past a time budget's end."""
    seen = []
    keras_fit = keras.Model.fit

    def fit(self, x=None, *args, **kwargs):
        seen.append(x.options().autotune.enabled)
        return keras_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    batches = list(split.train.to_dataset(SIZE, batch_size=16).as_numpy_iterator())
    x, y = (np.concatenate(a) for a in zip(*batches, strict=True))
    user = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # options left unset
    assert user.options().autotune.enabled is None
    for train in (split.train, user):
        tuner(schedules.FullTraining(1)).fit(train, split.val)
    frozen = tuner(schedules.Frozen(1), cache_features=True)
    frozen.fit(split.train, split.val)
    assert frozen.phase_log[0]["cached_features"] is True
    assert seen == [False] * 3


def test_fit_trains_every_batch_of_every_epoch(split: Split) -> None:
    """steps_per_epoch is the dataset's batches: each epoch sees every training image once."""
    tuner = FineTuner.scratch_cnn(
        class_names=split.class_names, image_size=32, epochs=2, widths=(4,), seed=0, verbose=0
    )
    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(0)

        def on_train_batch_end(self, batch, logs=None):
            seen[-1] += 1

    tuner.fit(split.train, split.val, callbacks=[Count()])
    assert seen == [-(-len(split.train) // tuner.batch_size)] * 2
