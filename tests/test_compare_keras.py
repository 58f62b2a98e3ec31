"""ModelComparator.add with small real Keras models on 8x8 images."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from scipy.special import softmax  # noqa: E402
from sklearn.metrics import accuracy_score, balanced_accuracy_score  # noqa: E402

from tlkit.compare import ModelComparator  # noqa: E402
from tlkit.protocols import TrainedClassifier  # noqa: E402

CLASSES = ["red", "green", "blue"]
N = 40


@pytest.fixture(scope="module")
def images():
    """Images whose brightest channel is their class, 40 of them, in a fixed order."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [20, 12, 8])
    x = rng.uniform(0, 120, (N, 8, 8, 3)).astype("float32")
    for i, c in enumerate(y):
        x[i, ..., c] += rng.uniform(60, 135)
    flip = rng.choice(N, 6, replace=False)  # some images mislead the model
    x[flip] = x[flip][..., ::-1]
    return x, y.astype("int32")


def mean_colour_model(n_out: int = 3, activation: str | None = "softmax") -> keras.Model:
    """Rescaling + global average pooling + a fixed Dense layer: 'which channel is brightest'."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(n_out, activation=activation),
        ]
    )
    w = (
        np.eye(3, n_out, dtype="float32") * 20
        if n_out == 3
        else np.array([[-5], [5], [0]], "float32")
    )
    model.layers[-1].set_weights([w, np.zeros(n_out, "float32")])
    return model


def dataset(x, y, batch: int | None = 16, one_hot: bool = False):
    labels = np.eye(3, dtype="float32")[y] if one_hot else y
    ds = tf.data.Dataset.from_tensor_slices((x, labels))
    return ds.batch(batch) if batch else ds


def test_add_keras_model_from_dataset(images) -> None:
    x, y = images
    model = mean_colour_model()
    expected = model.predict(x, verbose=0)
    c = ModelComparator(dataset(x, y), CLASSES, n_boot=100, latency_runs=2)
    assert c.add("colour", model) is c
    r = c.run()
    res = r["colour"]
    np.testing.assert_array_equal(r.y_true, y)
    np.testing.assert_allclose(res.y_prob, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res.y_pred, expected.argmax(1))
    assert res.output == "probabilities"
    assert res.kind == "keras"
    assert res.metrics["accuracy"] == accuracy_score(y, expected.argmax(1))
    assert res.metrics["balanced_accuracy"] == balanced_accuracy_score(y, expected.argmax(1))
    assert 0.5 < res.metrics["accuracy"] < 1.0  # some images mislead it, most do not
    cost = res.cost
    assert cost.params == model.count_params() == 3 * 3 + 3
    assert cost.size_bytes is not None and cost.size_bytes > 1000
    assert cost.latency_ms > 0 and cost.latency_ms_batch32 > 0
    assert cost.predict_time_s > 0
    assert cost.train_time_s is None and cost.tflite_size_bytes is None
    md = r.to_markdown()
    assert "| colour | 12 |" in md
    assert "Latency: mean milliseconds per image" in md
    assert r.machine["tensorflow"] == tf.__version__


def test_a_users_dataset_is_read_without_the_autotune_thread(images) -> None:
    """The cost columns time predictions: a user's dataset is read with tf.data's
    autotuning thread off (deleting an iterator waited for it, idle:
    benchmarks/iterator_teardown.py), unless its options chose."""
    from tlkit.compare._testset import TestSet

    x, y = images
    assert TestSet(dataset(x, y)).dataset(None).options().autotune.enabled is False
    options = tf.data.Options()
    options.autotune.enabled = True
    mine = dataset(x, y).with_options(options)
    assert TestSet(mine).dataset(None).options().autotune.enabled is True


@dataclass
class TrainedRun:
    """A hand-written training run implementing tlkit.protocols.TrainedClassifier."""

    model: keras.Model
    class_names: tuple[str, ...] | None = tuple(CLASSES)
    history: object = None
    train_time_s: float | None = None
    tflite_path: str | None = None


def test_trained_classifier_protocol(images, tmp_path) -> None:
    x, y = images
    tflite = tmp_path / "colour.tflite"
    tflite.write_bytes(b"\0" * 1234)
    history = keras.callbacks.History()
    history.history = {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}
    tuner = TrainedRun(mean_colour_model(), tuple(CLASSES), history, 42.0, str(tflite))
    assert isinstance(tuner, TrainedClassifier)
    r = (
        ModelComparator((x, y), CLASSES, n_boot=0, batch_size=7)
        .add("tuned", tuner, measure_cost=False)
        .run()
    )
    res = r["tuned"]
    assert res.cost.train_time_s == 42.0
    assert res.cost.tflite_size_bytes == 1234
    assert res.cost.size_bytes is None and res.cost.latency_ms is None  # not measured
    assert res.history == {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}
    assert any(p.name == "training_tuned.png" for p in r.save(tmp_path / "out"))
    # A FineTuner trained with another class order would be read wrongly: refused.
    wrong = TrainedRun(mean_colour_model(), class_names=("blue", "green", "red"))
    with pytest.raises(ValueError, match="wrong order"):
        ModelComparator((x, y), CLASSES, n_boot=0).add("wrong", wrong)


def test_an_object_with_only_model_is_accepted(images) -> None:
    """The documented minimum: ``.model`` alone; the other attributes count as None."""
    x, y = images
    bare = SimpleNamespace(model=mean_colour_model())
    assert not isinstance(bare, TrainedClassifier)
    r = ModelComparator((x, y), CLASSES, n_boot=0).add("bare", bare, measure_cost=False).run()
    direct = (
        ModelComparator((x, y), CLASSES, n_boot=0).add("bare", bare.model, measure_cost=False).run()
    )
    np.testing.assert_array_equal(r["bare"].y_pred, direct["bare"].y_pred)
    assert r["bare"].history is None and r["bare"].cost.train_time_s is None


def test_logits_and_one_hot_and_unbatched(images) -> None:
    x, y = images
    logits_model = mean_colour_model(activation=None)
    raw = logits_model.predict(x, verbose=0)
    c = ModelComparator(dataset(x, y, batch=None, one_hot=True), CLASSES, n_boot=0)
    r = c.add("logits", logits_model, measure_cost=False).run()
    np.testing.assert_array_equal(r.y_true, y)
    assert r["logits"].output == "logits (softmax applied)"
    np.testing.assert_allclose(r["logits"].y_prob, softmax(raw, axis=1), rtol=1e-5)
    # (images, one-hot labels) arrays, in odd-sized batches, give the same predictions.
    arrays = ModelComparator((x, np.eye(3)[y]), CLASSES, n_boot=0, batch_size=7)
    r2 = arrays.add("logits", logits_model, measure_cost=False).run()
    np.testing.assert_array_equal(r2.y_true, y)
    np.testing.assert_allclose(r2["logits"].y_prob, r["logits"].y_prob, rtol=1e-5)


def test_binary_sigmoid_model(images) -> None:
    x, y = images
    keep = y < 2
    xb, yb = x[keep], y[keep]
    model = mean_colour_model(n_out=1, activation="sigmoid")
    p1 = model.predict(xb, verbose=0)[:, 0]
    r = (
        ModelComparator(dataset(xb, yb), ["red", "green"], n_boot=0)
        .add("sigmoid", model, measure_cost=False)
        .run()
    )
    assert r["sigmoid"].output == "sigmoid probability of class 1"
    np.testing.assert_allclose(r["sigmoid"].y_prob[:, 1], p1, rtol=1e-5)
    with pytest.raises(ValueError, match="one output unit but there are 3 classes"):
        ModelComparator(dataset(x, y), CLASSES).add("bad", model, measure_cost=False)


class FakePart:
    """What ModelComparator needs of a SplitPart: labels, class names, to_dataset."""

    def __init__(self, x, y):
        self.x, self.labels, self.class_names = x, y, tuple(CLASSES)
        self.calls: list[dict] = []

    def to_dataset(self, image_size=224, **kwargs):
        self.calls.append({"image_size": image_size, **kwargs})
        h, w = image_size
        return tf.data.Dataset.from_tensor_slices(
            (tf.image.resize(self.x, (h, w)), self.labels)
        ).batch(kwargs["batch_size"])


def test_split_part(images) -> None:
    x, y = images
    part = FakePart(x, y)
    c = ModelComparator(part, n_boot=0, batch_size=8)  # class names from the part
    assert c.class_names == tuple(CLASSES)
    c.add("colour", mean_colour_model(), measure_cost=False)
    assert part.calls == [{"image_size": (8, 8), "batch_size": 8, "shuffle": False}]
    c.add_predictions("copy", c.run()["colour"].y_pred)
    assert len(part.calls) == 1  # labels come from part.labels; the dataset is cached
    # A model without a fixed input size needs image_size=.
    free = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match="pass image_size"):
        c.add("free", free, measure_cost=False)
    c.add("free", free, image_size=8, measure_cost=False)
    with pytest.raises(ValueError, match=r"differ from test_data\.class_names"):
        ModelComparator(part, ["a", "b", "c"])


def test_predictions_before_models(images) -> None:
    """add_predictions first reads the labels from the dataset; add() then checks them."""
    x, y = images
    c = ModelComparator(dataset(x, y, one_hot=True), CLASSES, n_boot=0)
    c.add_predictions("all red", np.zeros(N, int))
    np.testing.assert_array_equal(c.y_true, y)
    r = c.add("colour", mean_colour_model(), measure_cost=False).run()
    assert list(r.models) == ["all red", "colour"]


def test_shuffled_dataset_is_refused(images) -> None:
    x, y = images
    ds = dataset(x, y, batch=None).shuffle(N, seed=1, reshuffle_each_iteration=True).batch(16)
    c = ModelComparator(ds, CLASSES, n_boot=0)
    c.add("first", mean_colour_model(), measure_cost=False)
    with pytest.raises(ValueError, match="different order"):
        c.add("second", mean_colour_model(), measure_cost=False)


def test_dataset_checks(images) -> None:
    x, y = images
    with pytest.raises(ValueError, match="infinite"):
        ModelComparator(dataset(x, y).repeat(), CLASSES)
    c = ModelComparator(dataset(x, y), ["a", "b"], n_boot=0)
    with pytest.raises(ValueError, match=r"test_data labels holds label 2, outside 0\.\.1"):
        c.add_predictions("m", np.zeros(N, int))
    wrong = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(5)]
    )
    with pytest.raises(ValueError, match=r"outputs shape \(batch, 5\), expected \(batch, 3\)"):
        ModelComparator(dataset(x, y), CLASSES).add("wrong", wrong, measure_cost=False)
    with pytest.raises(ValueError, match="no images to predict"):
        ModelComparator(y, CLASSES).add("m", mean_colour_model())


def position_model() -> keras.Model:
    """A model that looks at where the colour is (left half vs right half): not flip-invariant."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    w = np.random.default_rng(1).normal(0, 0.3, (8 * 8 * 3, 3)).astype("float32")
    model.layers[-1].set_weights([w, np.zeros(3, "float32")])
    return model


def test_tta_scores_the_mean_over_views_and_the_report_says_so(images) -> None:
    x, y = images
    model = position_model()
    plain = model.predict_on_batch(x)
    flipped = model.predict_on_batch(x[:, :, ::-1])
    assert not np.allclose(plain, flipped, atol=1e-3)  # the views differ for this model
    report = (
        ModelComparator(dataset(x, y), CLASSES, n_boot=0)
        .add("plain", model, measure_cost=False)
        .add("tta", model, measure_cost=False, tta="flip")
        .run()
    )
    np.testing.assert_allclose(report["plain"].y_prob, plain, atol=1e-5)
    np.testing.assert_allclose(report["tta"].y_prob, (plain + flipped) / 2, atol=1e-5)
    assert not any("test-time augmentation" in n for n in report["plain"].notes)
    (note,) = [n for n in report["tta"].notes if "test-time augmentation" in n]
    assert "2 views (identity, hflip)" in note
    assert "test-time augmentation" in report.to_markdown()
    assert "test-time augmentation" in report.to_html()


def test_tta_argument_is_checked_before_predicting(images) -> None:
    from tlkit.augment import Views
    from tlkit.errors import ArgumentTypeError, InvalidArgumentError

    x, y = images
    c = ModelComparator(dataset(x, y), CLASSES, n_boot=0)
    with pytest.raises(ArgumentTypeError, match=r"tta must be None, a tlkit\.augment\.Views"):
        c.add("m", position_model(), tta=3)
    with pytest.raises(InvalidArgumentError, match="sideways"):
        c.add("m", position_model(), tta=["sideways"])
    assert c.model_names == []
    c.add("m", position_model(), measure_cost=False, tta=Views(["identity", "vflip"]))
    assert "identity, vflip" in c.run()["m"].notes[0]
