"""tlkit.finetune._probe: the linear probe, and a head that starts from it (head_start="probe")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tlkit import DatasetSplitter, FineTuner, schedules
from tlkit.augment import Views
from tlkit.backbones import get_backbone
from tlkit.errors import InvalidArgumentError, ScheduleError
from tlkit.finetune import _fit, _probe
from tlkit.finetune._model import build_classifier, head_model

SIZE = 32


def _reference(x_train, y_train, x_val, c):
    """sklearn's probabilities for the probe's own fit (standardised, row space, balanced)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    z, zv = _probe.row_space(scaler.transform(x_train), scaler.transform(x_val))
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000, tol=1e-3)
    return clf.fit(z, y_train).predict_proba(zv)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(12, 40),
    d=st.integers(2, 60),
    k=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_the_probe_maps_its_fit_back_to_the_columns(n: int, d: int, k: int, seed: int) -> None:
    """Wide or tall, two classes or more: the probe's column weights give the probabilities of
    the logistic regression it fitted (in the rows' span when wide), and score what it says."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    y = np.arange(n) % k  # every class present
    x = rng.normal(size=(n, d)) + y[:, None] * rng.normal(size=d)
    y_val = np.arange(15) % k
    x_val = rng.normal(size=(15, d)) + y_val[:, None] * rng.normal(size=d)
    probe = _probe.fit_probe(x, y, x_val, y_val)
    assert probe.coef.shape == (d, k) and probe.intercept.shape == (k,)
    assert probe.C in _probe.C_GRID
    expected = _reference(x, y, x_val, probe.C)
    np.testing.assert_allclose(probe.probabilities(x_val), expected, atol=1e-6)
    assert probe.score == pytest.approx(
        balanced_accuracy_score(y_val, expected.argmax(axis=1)), abs=1e-12
    )


def test_the_probe_keeps_the_best_strength_on_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Of the strengths tried, the one that scores best on validation balanced accuracy is
    kept; a tie keeps the first tried (the strongest regularisation)."""
    rng = np.random.default_rng(0)
    y, yv = np.arange(40) % 2, np.arange(200) % 2
    x = rng.normal(size=(40, 80)) + 0.3 * y[:, None]
    xv = rng.normal(size=(200, 80)) + 0.3 * yv[:, None]
    alone = {}
    for c in _probe.C_GRID:
        monkeypatch.setattr(_probe, "C_GRID", (c,))
        alone[c] = _probe.fit_probe(x, y, xv, yv).score
    monkeypatch.undo()
    best = max(alone, key=alone.__getitem__)
    # one best, and not the first tried: keeping the first or the last would both fail
    assert sorted(alone.values())[-2] < alone[best] and best != _probe.C_GRID[0]
    probe = _probe.fit_probe(x, y, xv, yv)
    assert probe.C == best and probe.score == alone[best]
    separable = np.concatenate([y[:, None] * 10.0, x[:, :3]], axis=1)
    assert _probe.fit_probe(separable, y, separable, y).C == _probe.C_GRID[0]  # all score 1


def test_a_class_without_training_images_gets_a_column_it_never_wins() -> None:
    rng = np.random.default_rng(2)
    y = np.array([0, 2] * 10)
    x = rng.normal(size=(20, 4)) + y[:, None]
    probe = _probe.fit_probe(x, y, x, y, num_classes=4)
    p = probe.probabilities(x)
    assert p.shape == (20, 4) and np.all(p[:, [1, 3]] < 1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def _features(n: int, d: int, seed: int, constant: int | None = None) -> tuple:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, d)) * rng.uniform(0.01, 50, d) + y[:, None] * rng.normal(size=d)
    if constant is not None:  # a column of variance under BatchNormalization's epsilon
        x[:, constant] = 7.0 + rng.normal(size=n) * 1e-4
    return x.astype(np.float32), y


@pytest.mark.parametrize("pooling", ["avg", "blocks"])
def test_a_head_started_from_the_probe_computes_the_probe(pooling: str) -> None:
    """Whether the head standardises its features itself (every block's, head_standardize) or
    the scaling is folded into the classifier (the last layer's): the head's probabilities are
    the probe's, a near-constant column included."""
    backbone = get_backbone(
        "scratch_cnn", weights=None, image_size=SIZE, widths=(4, 8), pooling=pooling
    )
    _, layers = build_classifier(
        backbone, num_classes=3, dropout=0.3, hidden=None, train_bn=False, seed=0
    )
    assert ("head_standardize" in [layer.name for layer in layers]) == (pooling == "blocks")
    d = backbone.feature_dim
    x, y = _features(60, d, seed=1, constant=d - 1)
    probe = _probe.fit_probe(x[:45], y[:45], x[45:], y[45:])
    _probe.start_head(layers, probe)
    got = np.asarray(head_model(d, layers).predict(x, verbose=0))
    np.testing.assert_allclose(got, probe.probabilities(x), atol=1e-4)  # float32 arithmetic


def test_a_head_with_a_hidden_layer_cannot_start_from_a_probe() -> None:
    backbone = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(4, 8))
    _, layers = build_classifier(
        backbone, num_classes=3, dropout=0.2, hidden=16, train_bn=False, seed=0
    )
    x, y = _features(30, backbone.feature_dim, seed=0)
    with pytest.raises(ScheduleError, match="head_units=None or use head_start='random'"):
        _probe.start_head(layers, _probe.fit_probe(x, y, x, y))


# -- head_start on schedules and in FineTuner.fit -----------------------------------------------


def test_head_start_is_checked_and_round_trips() -> None:
    with pytest.raises(InvalidArgumentError, match="head_start must be one of 'random', 'probe'"):
        schedules.Frozen(3, head_start="linear")
    s = schedules.FreezeThenUnfreeze(4, 2, head_start="probe")
    assert s.head_start == "probe" and "head_start='probe'" in repr(s)
    assert schedules.from_config(s.get_config()) == s
    assert schedules.Frozen(2).head_start == "random" and "head_start" not in repr(
        schedules.Frozen(2)
    )
    old = schedules.Frozen(2).get_config()  # a config saved before head_start existed
    del old["config"]["head_start"]
    assert schedules.from_config(old).head_start == "random"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    """Three classes told apart by their bright colour channel (plus noise)."""
    root = tmp_path_factory.mktemp("probe") / "photos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(16):
            img = rng.integers(0, 90, (SIZE, SIZE, 3))
            img[..., c] += rng.integers(60, 160)
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i:02d}.png")
    return DatasetSplitter(val=0.25, test=0, seed=0, progress=False).split(root)


def _tuner(split, **kw) -> FineTuner:
    options = {"class_names": split.class_names, "weights": None, "image_size": SIZE,
               "seed": 0, "verbose": 0, "schedule": schedules.Frozen(1, head_start="probe")}  # fmt: skip
    return FineTuner("scratch_cnn", **{**options, **kw})


def _recording(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record each probe the fit fits, with the training features it was given."""
    seen: list = []
    real = _probe.fit_probe

    def fit(x_train, y_train, x_val, y_val, num_classes=None):
        probe = real(x_train, y_train, x_val, y_val, num_classes)
        seen.append((probe, np.array(x_train), np.array(y_train), np.array(x_val)))
        return probe

    monkeypatch.setattr(_fit, "fit_probe", fit)
    return seen


def _backbone_features(tuner: FineTuner, part) -> np.ndarray:
    images = part.to_dataset(SIZE, batch_size=32, shuffle=False).map(lambda x, y: x)
    return np.asarray(tuner.backbone.model.predict(images, verbose=0))


def test_a_fit_starts_the_head_from_the_probe(
    split, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Flip views cached: the probe is fitted on the identity view's rows (the images as they
    are) and scored on validation; the head starts as that probe (a rate too small to move it
    shows the start), and the log says so."""
    seen = _recording(monkeypatch)
    tuner = _tuner(split, augment=Views("flip", seed=0), learning_rate=1e-12, verbose=1)
    tuner.fit(split.train, split.val)
    assert len(seen) == 1
    probe, x_train, y_train, x_val = seen[0]
    np.testing.assert_allclose(x_train, _backbone_features(tuner, split.train), atol=1e-4)
    np.testing.assert_array_equal(y_train, split.train.labels)
    val_features = _backbone_features(tuner, split.val)
    np.testing.assert_allclose(x_val, val_features, atol=1e-4)
    got = tuner.predict(split.val).probabilities
    np.testing.assert_allclose(got, probe.probabilities(val_features), atol=1e-4)
    err = capsys.readouterr().err
    assert "head_start='probe': the head starts from a linear probe on the frozen features" in err
    assert f"C={probe.C:g}, validation balanced accuracy {probe.score:.4f}" in err


def test_a_random_start_is_not_the_probe(split, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same fit with head_start="random" fits no probe and does not compute its outputs."""
    seen = _recording(monkeypatch)
    tuner = _tuner(split, schedule=schedules.Frozen(1), learning_rate=1e-12)
    tuner.fit(split.train, split.val)
    assert seen == []
    probe = _probe.fit_probe(
        _backbone_features(tuner, split.train), np.array(split.train.labels),
        _backbone_features(tuner, split.val), np.array(split.val.labels),
    )  # fmt: skip
    got = tuner.predict(split.val).probabilities
    assert np.abs(got - probe.probabilities(_backbone_features(tuner, split.val))).max() > 0.05


def test_pooling_auto_starts_from_the_probe_that_chose(
    split, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No second probe: the choice's probe of the chosen features is the head's start."""
    seen = _recording(monkeypatch)
    tuner = _tuner(split, pooling="auto", learning_rate=1e-12)
    with caplog.at_level("INFO", logger="tlkit.finetune"):
        tuner.fit(split.train, split.val)
    assert seen == []
    choice = tuner.pooling_choice
    assert any("starts from the probe that chose the pooling" in r.message for r in caplog.records)
    features = _backbone_features(tuner, split.val)
    got = tuner.predict(split.val).probabilities
    tol = 1e-4 if choice.pooling == "avg" else 2e-2  # head_standardize's statistics move
    np.testing.assert_allclose(got, choice.probe.probabilities(features), atol=tol)


def test_a_budgeted_fit_fits_one_probe_on_all_its_images(
    split, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _recording(monkeypatch)
    _tuner(split).fit(split.train, split.val, time_budget=120)
    assert len(seen) == 1 and len(seen[0][2]) == len(split.train)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"schedule": schedules.FullTraining(1, head_start="probe")},
         "first phase must train the head alone, and 'full' trains"),
        ({"head_units": 8}, "has a hidden layer"),
    ],
)  # fmt: skip
def test_a_head_start_that_cannot_be_is_refused(split, kw: dict, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        _tuner(split, **kw).fit(split.train, split.val)


def test_a_probe_start_needs_validation_data(split) -> None:
    with pytest.raises(ScheduleError, match="chooses the probe's strength on validation data"):
        _tuner(split).fit(split.train)


def test_a_dataset_without_views_gives_the_probe_every_training_image(
    split, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """tf.data batches, as fit takes them: the probe sees each training image once."""
    seen = _recording(monkeypatch)
    train = split.train.to_dataset(SIZE, batch_size=8, shuffle=False)
    val = split.val.to_dataset(SIZE, batch_size=8, shuffle=False)
    tuner = _tuner(split)
    tuner.fit(train, val)
    assert len(seen) == 1 and len(seen[0][1]) == len(split.train)
    np.testing.assert_array_equal(seen[0][2], split.train.labels)


def test_a_head_that_has_trained_goes_on_from_its_weights(
    split, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A second fit, or a fit of a loaded trained model, does not reset the head to a probe."""
    seen = _recording(monkeypatch)
    tuner = _tuner(split, learning_rate=1e-12)
    tuner.fit(split.train, split.val)
    head = tuner.model.get_layer("classifier").get_weights()
    tuner.fit(split.train, split.val)
    assert len(seen) == 1
    for a, b in zip(head, tuner.model.get_layer("classifier").get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    tuner.save(tmp_path / "m.keras")
    loaded = FineTuner.load(tmp_path / "m.keras")
    assert loaded.schedule.head_start == "probe"
    loaded.fit(split.train, split.val)
    assert len(seen) == 1
