"""tlkit.finetune.choose_pooling: the head's features chosen on validation by linear probes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tlkit import DatasetSplitter, FineTuner
from tlkit.backbones import get_backbone
from tlkit.data import SplitPart
from tlkit.errors import ArgumentTypeError, InvalidArgumentError, ScheduleError
from tlkit.finetune import _pooling, _probe, choose_pooling

SIZE = 32


def _coloured_tree(root: Path, per_class: int = 12) -> Path:
    """Three classes that differ in which colour channel is bright (plus noise)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 90, (SIZE, SIZE, 3))
            img[..., c] += 150
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    root = _coloured_tree(tmp_path_factory.mktemp("pool") / "photos")
    return DatasetSplitter(val=0.25, test=0, seed=0, progress=False).split(root)


def _scratch(**options):
    return get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(4, 8), **options)


def _scored(scores):
    """A stand-in for fit_probe whose probes score the given values, in turn."""

    def fit(x_train, y_train, x_val, y_val, num_classes=None):
        probe = _probe.fit_probe(x_train, y_train, x_val, y_val, num_classes)
        return dataclasses.replace(probe, score=next(scores))

    return fit


def _dead_last_block(backbone):
    """Zero the last convolution: the last layer's pooled features are the same for every image."""
    conv = backbone.model.get_layer("block2_conv")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    return backbone


def test_blocks_win_when_only_an_early_block_sees_the_classes(split) -> None:
    avg = _dead_last_block(_scratch())
    choice = choose_pooling(avg, split.train, split.val)
    assert choice.pooling == "blocks"
    # constant features: the probe predicts one class, a third of each class right on average
    assert choice.scores["avg"] == pytest.approx(1 / 3)
    assert choice.scores["blocks"] > 0.9
    assert choice.features == {"avg": 8, "blocks": 4 + 8 + 8}
    bb = choice.backbone
    assert bb.options["pooling"] == "blocks" and bb.feature_dim == 20
    # the chosen backbone is the probed one: same layer objects, so the same weights
    assert bb.model.get_layer("block2_conv") is avg.model.get_layer("block2_conv")
    assert "blocks" in str(choice) and "0.333" in str(choice)
    # the chosen pooling's probe comes with it (head_start="probe" starts the head from it)
    assert choice.probe is not None and choice.probe.coef.shape == (20, 3)
    assert choice.probe.score == choice.scores["blocks"]
    assert 0 < choice.seconds < 120  # wall-clock seconds of this call


def test_scores_are_the_probe_on_the_backbones_own_features(split) -> None:
    """Each score is fit_probe's on what get_backbone(pooling=...) computes for the same images."""
    avg = _scratch()
    choice = choose_pooling(avg, split.train, split.val)
    blocks = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(4, 8),
                          pooling="blocks")  # fmt: skip
    blocks.model.set_weights(avg.model.get_weights())  # the same weights, built apart
    x = {}
    for part in ("train", "val"):
        ds = getattr(split, part).to_dataset(SIZE, batch_size=32, shuffle=False).map(lambda i, y: i)
        x[part] = blocks.model.predict(ds, verbose=0)
    y = {p: np.asarray(getattr(split, p).labels) for p in ("train", "val")}
    tail = slice(-avg.feature_dim, None)
    assert choice.scores["avg"] == pytest.approx(
        _probe.fit_probe(x["train"][:, tail], y["train"], x["val"][:, tail], y["val"]).score,
        abs=1e-9,
    )
    assert choice.scores["blocks"] == pytest.approx(
        _probe.fit_probe(x["train"], y["train"], x["val"], y["val"]).score, abs=1e-9
    )


@pytest.mark.parametrize(
    ("scores", "chosen"),
    [((0.7, 0.7), "avg"), ((0.7, 0.71), "blocks"), ((0.8, 0.6), "avg"), ((0.0, 1e-9), "blocks")],
)
def test_the_higher_probe_wins_and_a_tie_goes_to_avg(
    scores: tuple[float, float], chosen: str
) -> None:
    assert _pooling.decide({"avg": scores[0], "blocks": scores[1]}) == chosen


@pytest.mark.parametrize(("blocks", "chosen"), [(0.71, "blocks"), (0.7, "avg")])
def test_the_choice_follows_the_scores(
    split, monkeypatch: pytest.MonkeyPatch, blocks: float, chosen: str
) -> None:
    """choose_among keeps what decide() says of the two probes (avg is probed first), and
    the backbone it hands back says which pooling it has."""
    given_scores = iter((0.7, blocks))
    monkeypatch.setattr(_pooling, "fit_probe", _scored(given_scores))
    avg = _scratch()
    choice = choose_pooling(avg, split.train, split.val)
    assert choice.pooling == chosen and choice.scores == {"avg": 0.7, "blocks": blocks}
    assert choice.backbone.options["pooling"] == chosen
    assert (choice.backbone is avg) == (chosen == "avg")


def test_a_backbone_not_pooled_by_average_is_refused(split) -> None:
    with pytest.raises(InvalidArgumentError, match="pooling='blocks'") as err:
        choose_pooling(_scratch(pooling="blocks"), split.train, split.val)
    assert err.value.argument == "backbone"
    with pytest.raises(InvalidArgumentError, match="pooling='max'"):
        choose_pooling(_scratch(pooling="max"), split.train, split.val)


def test_bad_data_is_refused_before_any_pass(split) -> None:
    with pytest.raises(ArgumentTypeError, match="train must be a SplitPart"):
        choose_pooling(_scratch(), [1, 2, 3], split.val)
    part = split.train
    one_class = SplitPart(part.name, part.root, part.class_names,
                          tuple(s for s in part if s.label == 0))  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="at least two classes"):
        choose_pooling(_scratch(), one_class, split.val)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 12),
    extra=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_row_space_keeps_every_ridge_prediction(n: int, extra: int, seed: int) -> None:
    """A penalised linear model on the row-space coordinates predicts what it does on the columns."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(seed)
    d = n + extra
    x, xv = rng.normal(size=(n, d)), rng.normal(size=(5, d))
    y = rng.normal(size=(n, 2))
    z, zv = _probe.row_space(x, xv)
    assert z.shape[0] == n and z.shape[1] <= n and zv.shape == (5, z.shape[1])
    raw = Ridge(alpha=0.5, fit_intercept=False).fit(x, y)
    reduced = Ridge(alpha=0.5, fit_intercept=False).fit(z, y)
    np.testing.assert_allclose(reduced.predict(zv), raw.predict(xv), atol=1e-8)
    np.testing.assert_allclose(reduced.predict(z), raw.predict(x), atol=1e-8)


def test_row_space_leaves_tall_data_alone() -> None:
    x, xv = np.ones((6, 4)), np.zeros((2, 4))
    z, zv = _probe.row_space(x, xv)
    assert z is x and zv is xv


def test_row_space_keeps_logistic_probabilities() -> None:
    """With an intercept too (unpenalised): the probe's own model, to solver tolerance."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x, xv = rng.normal(size=(40, 300)), rng.normal(size=(10, 300))
    y = rng.integers(0, 3, 40)
    z, zv = _probe.row_space(x, xv)
    kw = {"C": 0.05, "tol": 1e-10, "max_iter": 10000}
    raw = LogisticRegression(**kw).fit(x, y).predict_proba(xv)
    np.testing.assert_allclose(LogisticRegression(**kw).fit(z, y).predict_proba(zv), raw, atol=1e-5)


# -- FineTuner(pooling=...) -------------------------------------------------------------------


def _dead(pooling: str = "avg"):
    """A seeded scratch backbone whose last block outputs the same features for every image."""
    import keras

    keras.utils.set_random_seed(3)
    return _dead_last_block(_scratch(pooling=pooling))


@pytest.mark.slow
def test_fine_tuner_auto_trains_what_blocks_would(
    split, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pooling="auto" chooses every block's features here, inside the fit's time budget, and
    then trains exactly the model pooling="blocks" trains (the net built before the fit is
    rebuilt on the chosen features): the same weights when the budget's plan is replayed."""
    kw = {"class_names": split.class_names, "schedule": "frozen:1", "seed": 0, "verbose": 0}
    auto = FineTuner(_dead(), pooling="auto", **kw)
    auto.build()  # on the last layer's features, until the fit chooses
    assert auto.pooling_choice is None
    assert not any(layer.name == "head_standardize" for layer in auto.model.layers)
    with caplog.at_level("INFO", logger="tlkit.finetune"):
        auto.fit(split.train, split.val, time_budget=120)
    assert auto.pooling_choice is not None and auto.pooling_choice.pooling == "blocks"
    assert auto.backbone.options["pooling"] == "blocks"
    assert any(layer.name == "head_standardize" for layer in auto.model.layers)
    # the choice is part of the fit: its time, and the budget's clock (and log line)
    chose = auto.pooling_choice.seconds
    assert auto.train_time_s >= chose and auto.budget_plan["measure_s"] >= chose > 0
    planned = [r.message for r in caplog.records if "planned" in r.message]
    assert len(planned) == 1 and "; choosing the head's features" in planned[0]
    fixed = FineTuner(_dead("blocks"), **kw)
    assert fixed.pooling == "blocks"
    fixed.fit(split.train, split.val, time_budget=auto.budget_plan)  # the same epochs
    for a, b in zip(auto.model.get_weights(), fixed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    auto.save(tmp_path / "auto.keras")
    loaded = FineTuner.load(tmp_path / "auto.keras")
    assert loaded.pooling == "blocks" and loaded.pooling_choice is None
    images = split.val.to_dataset(SIZE, batch_size=32, shuffle=False).map(lambda x, y: x)
    np.testing.assert_allclose(
        loaded.model.predict(images, verbose=0), auto.model.predict(images, verbose=0), atol=1e-6
    )


def test_fine_tuner_blocks_by_name(split) -> None:
    tuner = FineTuner("scratch_cnn", class_names=split.class_names, weights=None,
                      image_size=SIZE, pooling="blocks")  # fmt: skip
    assert tuner.backbone.options["pooling"] == "blocks" and tuner.backbone.feature_dim > 0
    assert any(layer.name == "head_standardize" for layer in tuner.model.layers)
    plain = FineTuner("scratch_cnn", class_names=split.class_names, weights=None, image_size=SIZE)
    assert plain.pooling == "avg" and "pooling" not in plain.backbone.options


def test_fine_tuner_auto_needs_validation_data(split) -> None:
    tuner = FineTuner("scratch_cnn", class_names=split.class_names, weights=None,
                      image_size=SIZE, pooling="auto", schedule="frozen:1")  # fmt: skip
    with pytest.raises(ScheduleError, match="pooling='auto' chooses the head's features on val"):
        tuner.fit(split.train)


@pytest.mark.parametrize(
    ("pooling", "built", "message"),
    [
        ("max", None, "pooling must be one of 'avg', 'blocks', 'auto'"),
        ("auto", "blocks", "built with pooling='blocks'"),
        ("blocks", "avg", "pooling='blocks' but the backbone was built with pooling='avg'"),
        ("avg", "blocks", "pooling='avg' but the backbone was built with pooling='blocks'"),
    ],
)
def test_fine_tuner_refuses_a_pooling_at_odds_with_its_backbone(
    pooling: str, built: str | None, message: str
) -> None:
    backbone = "scratch_cnn" if built is None else _scratch(pooling=built)
    with pytest.raises(InvalidArgumentError, match=message) as err:
        FineTuner(backbone, num_classes=3, weights=None, image_size=SIZE, pooling=pooling)
    assert err.value.argument == "pooling"


def test_fine_tuner_takes_a_built_backbones_own_pooling() -> None:
    assert FineTuner(_scratch(pooling="blocks"), num_classes=3).pooling == "blocks"
    assert FineTuner(_scratch(), num_classes=3, pooling="auto").pooling == "auto"


def test_the_same_seed_gives_the_same_head_for_a_name_or_a_built_backbone(split) -> None:
    """The head's initial weights do not depend on how the backbone came (nor does auto's
    choice of the last layer change a thing against pooling="avg")."""
    import keras

    kw = {"class_names": split.class_names, "seed": 5, "schedule": "frozen:1", "verbose": 0}
    by_name = FineTuner("scratch_cnn", weights=None, image_size=SIZE, **kw)
    keras.utils.set_random_seed(5)  # the backbone's own random weights: as build() draws them
    built = FineTuner(get_backbone("scratch_cnn", weights=None, image_size=SIZE), **kw)
    for a, b in zip(by_name.model.get_weights(), built.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_auto_that_keeps_the_last_layer_trains_what_avg_trains(
    split, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = iter((0.8, 0.8) * 2)
    monkeypatch.setattr(_pooling, "fit_probe", _scored(scores))  # a tie: avg
    kw = {"class_names": split.class_names, "seed": 1, "schedule": "frozen:2", "verbose": 0,
          "weights": None, "image_size": SIZE}  # fmt: skip
    auto = FineTuner("scratch_cnn", pooling="auto", **kw)
    auto.fit(split.train, split.val)
    assert auto.pooling_choice.pooling == "avg"
    plain = FineTuner("scratch_cnn", **kw)
    plain.fit(split.train, split.val)
    for a, b in zip(auto.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tf_data_datasets_are_probed_like_split_parts(split) -> None:
    """(images, labels) batches, as FineTuner.fit takes them: the same images, the same choice."""
    avg = _dead_last_block(_scratch())
    parts = choose_pooling(avg, split.train, split.val)
    datasets = choose_pooling(
        avg,
        split.train.to_dataset(SIZE, batch_size=32, shuffle=False),
        split.val.to_dataset(SIZE, batch_size=32, shuffle=False),
    )
    assert datasets.pooling == parts.pooling == "blocks"
    assert datasets.scores == pytest.approx(parts.scores, abs=1e-9)
