"""Calibration (issue 20, item 3): ECE and reliability bins, temperature scaling, the
comparison report's calibration table and warning, FineTuner.calibrate with save/load,
hostile temperatures in model files, and what an export says about the temperature."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tlkit._calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    N_BINS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from tlkit.compare import ECE_WARNING, ModelComparator
from tlkit.errors import InvalidArgumentError

# -- the pure functions ------------------------------------------------------------------------


def test_ece_by_hand() -> None:
    """Five predictions in three of the 15 bins, computed by hand.

    Confidences 0.95 (right) and 0.94 (wrong) in bin 14, (14/15, 1]; 0.62 and 0.64 (both
    right) in bin 9, (0.6, 2/3]; 0.45 (wrong) in bin 6, (0.4, 7/15].
    ECE = (2 * |0.5 - 0.945| + 2 * |1 - 0.63| + 1 * |0 - 0.45|) / 5 = 2.08 / 5 = 0.416.
    """
    y = [0, 0, 1, 2, 0]
    p = [
        [0.95, 0.03, 0.02],
        [0.03, 0.94, 0.03],
        [0.18, 0.62, 0.20],
        [0.16, 0.20, 0.64],
        [0.25, 0.30, 0.45],
    ]
    r = reliability_bins(y, p)
    assert r.n_bins == N_BINS == 15 and r.n_predictions == 5
    assert r.counts[14] == 2 and r.counts[9] == 2 and r.counts[6] == 1 and sum(r.counts) == 5
    assert r.accuracy[14] == 0.5 and r.accuracy[9] == 1.0 and r.accuracy[6] == 0.0
    assert r.confidence[14] == pytest.approx(0.945) and r.confidence[9] == pytest.approx(0.63)
    assert r.confidence[0] is None and r.accuracy[0] is None
    assert expected_calibration_error(y, p) == pytest.approx(0.416)
    assert r.ece == pytest.approx(0.416)
    assert r.mean_confidence == pytest.approx((0.95 + 0.94 + 0.62 + 0.64 + 0.45) / 5)
    assert r.mean_accuracy == pytest.approx(3 / 5)
    d = r.to_dict()
    assert d["ece"] == r.ece and d["n_bins"] == 15 and len(d["bins"]) == 15
    assert d["bins"][14] == {
        "low": pytest.approx(14 / 15),
        "high": 1.0,
        "count": 2,
        "confidence": pytest.approx(0.945),
        "accuracy": 0.5,
    }


def test_ece_is_zero_for_a_perfectly_calibrated_construction() -> None:
    """In each bin, the share right equals the confidence exactly: ECE 0."""
    y, p = [], []
    for conf, n, right in ((0.6, 5, 3), (0.8, 10, 8), (1.0, 4, 4)):
        for i in range(n):
            p.append([conf, 1 - conf])
            y.append(0 if i < right else 1)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    # and always wrong at full confidence: the worst case, 1
    assert expected_calibration_error([1, 1], [[1.0, 0.0], [1.0, 0.0]]) == 1.0
    assert reliability_bins([], np.zeros((0, 3))).ece == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="y_prob must have shape"):
        expected_calibration_error([0, 1], [0.2, 0.8])
    with pytest.raises(InvalidArgumentError, match="y_true must have shape"):
        expected_calibration_error([0], [[0.2, 0.8], [0.5, 0.5]])
    with pytest.raises(InvalidArgumentError, match="class index 2"):
        expected_calibration_error([0, 2], [[0.2, 0.8], [0.5, 0.5]])
    with pytest.raises(InvalidArgumentError, match="finite"):
        expected_calibration_error([0, 1], [[np.nan, 0.8], [0.5, 0.5]])
    with pytest.raises(InvalidArgumentError, match="temperature"):
        apply_temperature([[0.5, 0.5]], 0.0)
    with pytest.raises(InvalidArgumentError, match="at least one"):
        fit_temperature([], np.zeros((0, 2)))


def _overconfident(n: int = 3000, k: int = 4, sharpen: float = 4.0, seed: int = 0):
    """Labels drawn from softmax(z); the model reports softmax(sharpen * z): over-confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    true_p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in true_p])
    sharp = np.exp(sharpen * z)
    return y, sharp / sharp.sum(axis=1, keepdims=True)


def test_temperature_scaling_fixes_an_overconfident_model() -> None:
    y, p = _overconfident()
    t = fit_temperature(y[:1500], p[:1500])
    assert t == pytest.approx(4.0, rel=0.15)  # it undoes the sharpening
    fixed = apply_temperature(p, t)
    assert np.array_equal(fixed.argmax(axis=1), p.argmax(axis=1))  # same predictions
    assert np.allclose(fixed.sum(axis=1), 1.0)
    # held-out half: both NLL and ECE fall
    ece_before = expected_calibration_error(y[1500:], p[1500:])
    ece_after = expected_calibration_error(y[1500:], fixed[1500:])
    assert ece_before > 0.1 and ece_after < ece_before / 3
    nll_before = negative_log_likelihood(y[1500:], p[1500:])
    assert negative_log_likelihood(y[1500:], fixed[1500:]) < nll_before


def test_temperature_stays_in_its_bounds() -> None:
    # every prediction right at confidence 0.9: sharpening always pays, T goes to the lower
    # bound (until the likelihood is 1 to float precision)
    t = fit_temperature([0] * 10, [[0.9, 0.1]] * 10)
    assert MIN_TEMPERATURE <= t < 0.05
    # right half the time at 0.99: T grows until the probabilities are (nearly) 0.5
    t = fit_temperature([0, 1] * 5, [[0.99, 0.01]] * 10)
    assert t == pytest.approx(MAX_TEMPERATURE, rel=1e-3)
    # already calibrated: T stays about 1
    y, p = _overconfident(sharpen=1.0)
    assert fit_temperature(y, p) == pytest.approx(1.0, abs=0.1)


_probs = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 40), st.integers(2, 5)),
    elements=st.floats(0.0, 1.0, allow_nan=False, width=32),
).map(lambda a: (a + 1e-3) / (a + 1e-3).sum(axis=1, keepdims=True))


@settings(max_examples=60, deadline=None)
@given(p=_probs, data=st.data())
def test_ece_is_a_share_and_ignores_the_order_of_the_samples(p: np.ndarray, data) -> None:
    n, k = p.shape
    y = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    ece = expected_calibration_error(y, p)
    assert 0.0 <= ece <= 1.0
    perm = np.array(data.draw(st.permutations(range(n))))
    assert expected_calibration_error(y[perm], p[perm]) == pytest.approx(ece, abs=1e-12)


# -- the comparison report ----------------------------------------------------------------------


def test_report_shows_ece_reliability_and_the_warning(tmp_path: Path) -> None:
    y, p = _overconfident(n=300, k=3)
    labels_only = p.argmax(axis=1)
    report = (
        ModelComparator(y, ["a", "b", "c"], n_boot=0)
        .add_predictions("sharp", y_prob=p)
        .add_predictions("calibrated", y_prob=apply_temperature(p, 4.0))
        .add_predictions("labels", labels_only)
        .run()
    )
    sharp, cal, lab = report["sharp"], report["calibrated"], report["labels"]
    assert sharp.ece == pytest.approx(expected_calibration_error(y, p))
    assert sharp.ece > ECE_WARNING > cal.ece
    assert lab.ece is None and lab.reliability is None  # labels only: no ECE, no crash
    warned = [w for w in report.warnings if "badly calibrated" in w]
    assert len(warned) == 1 and "'sharp'" in warned[0]
    assert "overstates" in warned[0] and "FineTuner.calibrate(val)" in warned[0]
    d = json.loads(report.to_json())
    row = d["models"][1]
    assert row["ece"] == pytest.approx(sharp.ece) and row["reliability"]["n_bins"] == 15
    assert sum(b["count"] for b in row["reliability"]["bins"]) == 300
    assert d["models"][3]["ece"] is None and d["models"][3]["reliability"] is None
    md = report.to_markdown()
    assert "## Calibration" in md and f"| sharp | {sharp.ece:.3f} |" in md
    assert "no probabilities (class labels only): no ECE" in md
    head, body = report.calibration_table()
    assert head[:2] == ["model", "ECE"] and [r[0] for r in body][1:] == list(report.models)
    html = report.to_html()
    assert 'id="calibration"' in html and 'alt="reliability diagram of each model"' in html
    names = {p.name for p in report.save(tmp_path)}
    assert "reliability.png" in names
    assert "![reliability diagrams](reliability.png)" in (tmp_path / "report.md").read_text()


def test_report_without_probabilities_has_no_reliability_figure(tmp_path: Path) -> None:
    report = ModelComparator([0, 1, 1, 0], ["a", "b"], n_boot=0).add_predictions("m", [0, 1, 0, 0])
    names = {p.name for p in report.run().save(tmp_path)}
    assert "reliability.png" not in names
    assert not any("calibrated" in w for w in report.run().warnings)


# -- FineTuner.calibrate, end to end -----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A scratch CNN fitted for one epoch on 32-px images, its classifier then sharpened x8."""
    pytest.importorskip("tensorflow")
    from tlkit import DatasetSplitter, FineTuner
    from tlkit.datasets import make_synthetic_dataset

    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("data"), {"a": 24, "b": 24, "c": 24}, image_size=32
    )
    split = DatasetSplitter(seed=0, progress=False).split(root)
    tuner = FineTuner.scratch_cnn(
        class_names=split.class_names, image_size=32, epochs=1, widths=(8,), seed=0, verbose=0
    )
    tuner.fit(split.train, split.val)
    head = tuner.model.get_layer("classifier")
    head.set_weights([w * 8.0 for w in head.get_weights()])  # over-confident on purpose
    return tuner, split


def test_calibrate_before_fit_is_refused() -> None:
    pytest.importorskip("tensorflow")
    from tlkit import FineTuner
    from tlkit.errors import ScheduleError

    tuner = FineTuner.scratch_cnn(num_classes=2, image_size=32, widths=(8,), verbose=0)
    with pytest.raises(ScheduleError, match="call fit"):
        tuner.calibrate(np.zeros((2, 32, 32, 3)))
    assert tuner.temperature is None


def test_calibrate_refuses_val_without_labels_or_with_other_classes(trained) -> None:
    import tensorflow as tf

    from tlkit.errors import ArgumentTypeError, InvalidArgumentError, ScheduleError

    tuner, split = trained
    images = np.zeros((4, 32, 32, 3), np.float32)
    with pytest.raises(ScheduleError, match=r"calibrate\(val\): val must be labelled"):
        tuner.calibrate(images)
    wide = tf.data.Dataset.from_tensor_slices((images, np.eye(5, dtype="float32")[:4])).batch(2)
    with pytest.raises(ScheduleError, match="val's one-hot labels have 5 classes"):
        tuner.calibrate(wide)
    out_of_range = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 2, 7]))).batch(2)
    with pytest.raises(ScheduleError, match="val holds label 7"):
        tuner.calibrate(out_of_range)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        tuner.calibrate(split.val, batch_size=0)
    with pytest.raises(ArgumentTypeError):
        tuner.calibrate(split.val, batch_size="8")
    assert tuner.temperature is None


@pytest.mark.slow
def test_calibrate_lowers_nll_and_ece_and_survives_save_load(trained, tmp_path: Path) -> None:
    from tlkit import FineTuner

    tuner, split = trained
    raw = tuner.predict(split.val).probabilities
    y = np.asarray(split.val.labels)
    before = (negative_log_likelihood(y, raw), expected_calibration_error(y, raw))
    loss_before = tuner.evaluate(split.val)["loss"]
    t = tuner.calibrate(split.val, batch_size=8)
    try:
        assert tuner.temperature == t and t > 1.0  # the sharpened model is softened
        cal = tuner.predict(split.val)
        assert np.allclose(cal.probabilities, apply_temperature(raw, t))
        assert np.array_equal(cal.labels, raw.argmax(axis=1))  # same classes
        assert negative_log_likelihood(y, cal.probabilities) < before[0]
        assert expected_calibration_error(y, cal.probabilities) < before[1]
        assert tuner.evaluate(split.val)["loss"] < loss_before
        # TTA goes through the same probabilities: the mean over views, then T
        tta = tuner.predict(split.val, tta="flip").probabilities
        tuner.temperature = None
        tta_raw = tuner.predict(split.val, tta="flip").probabilities
        tuner.temperature = t
        assert np.allclose(tta, apply_temperature(tta_raw, t))
        # the comparison report scores the calibrated probabilities and says so
        report = ModelComparator(split.test, n_boot=0).add("cnn", tuner, measure_cost=False).run()
        assert np.allclose(report["cnn"].y_prob, tuner.predict(split.test).probabilities)
        assert any(f"T={t:.4g}" in n for n in report["cnn"].notes)
        # save / load keep T and the predictions
        path = tuner.save(tmp_path / "cal.keras")
        meta = json.loads(zipfile.ZipFile(path).read("tlkit.json"))
        assert meta["temperature"] == t
        loaded = FineTuner.load(path)
        assert loaded.temperature == t
        assert np.allclose(loaded.predict(split.val).probabilities, cal.probabilities, atol=1e-6)
    finally:
        tuner.temperature = None


def test_uncalibrated_file_has_no_temperature_key(trained, tmp_path: Path) -> None:
    from tlkit import FineTuner

    tuner, _ = trained
    path = tuner.save(tmp_path / "plain.keras")
    assert "temperature" not in json.loads(zipfile.ZipFile(path).read("tlkit.json"))
    assert FineTuner.load(path).temperature is None


def test_fit_discards_the_temperature(trained, tmp_path: Path) -> None:
    from tlkit import FineTuner

    tuner, split = trained
    path = tuner.save(tmp_path / "copy.keras")
    copy = FineTuner.load(path)
    copy.verbose = 0
    copy.calibrate(split.val)
    assert copy.temperature is not None
    copy.fit(split.train, split.val, epochs=1)
    assert copy.temperature is None


# -- hostile temperatures in a model file (loaded in a subprocess) ------------------------------

RUNNER = textwrap.dedent(
    """
    import json, sys
    from tlkit import FineTuner
    from tlkit.errors import ModelFileError
    out = {}
    for name, path in json.load(open(sys.argv[1])).items():
        try:
            t = FineTuner.load(path)
            out[name] = ["loaded", t.temperature]
        except ModelFileError as exc:
            out[name] = ["ModelFileError: " + str(exc)[:400], None]
        except Exception as exc:  # noqa: BLE001 - any other outcome is a failure of the test
            out[name] = [f"OTHER {type(exc).__name__}: {str(exc)[:300]}", None]
    print(json.dumps(out))
    """
)


def test_hostile_temperatures_are_refused(trained, tmp_path: Path) -> None:
    tuner, _ = trained
    good = tuner.save(tmp_path / "good.keras")
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["tlkit.json"])
    hostile = {
        "zero": 0,
        "negative": -1.5,
        "too_small": MIN_TEMPERATURE / 2,
        "too_large": MAX_TEMPERATURE * 2,
        "huge": 1e308,
        "string": "2.0",
        "bool": True,
        "list": [1.5],
        "object": {"t": 1.5},
    }
    texts = {name: json.dumps({**meta, "temperature": v}) for name, v in hostile.items()}
    # what json.dumps will not write: NaN, Infinity, a number that overflows to inf
    for name, literal in (("nan", "NaN"), ("inf", "Infinity"), ("overflow", "1e999")):
        texts[name] = json.dumps({**meta, "temperature": 1.0}).replace(
            '"temperature": 1.0', f'"temperature": {literal}'
        )
    texts["null"] = json.dumps({**meta, "temperature": None})
    texts["valid"] = json.dumps({**meta, "temperature": 2.5})
    cases = {}
    for name, text in texts.items():
        path = tmp_path / f"{name}.keras"
        with zipfile.ZipFile(path, "w") as z:
            for member, data in members.items():
                z.writestr(member, text.encode() if member == "tlkit.json" else data)
        cases[name] = str(path)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "runner.py").write_text(RUNNER)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "cases.json")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results.pop("valid") == ["loaded", 2.5]
    assert results.pop("null") == ["loaded", None]
    for name, (outcome, _) in results.items():
        assert outcome.startswith("ModelFileError"), (name, outcome)
        assert "field 'temperature'" in outcome and cases[name] in outcome, (name, outcome)


# -- exports say that the temperature is not inside the file -----------------------------------


def test_export_states_the_temperature_it_does_not_apply(
    trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tlkit.export import check_export, export

    tuner, split = trained
    plain = export(tuner, tmp_path / "plain.tflite", check_data=split.test, latency_runs=1)
    assert plain.temperature is None and "temperature" not in plain.summary()
    tuner.temperature = 1.75
    try:
        with caplog.at_level(logging.WARNING, logger="tlkit.export"):
            report = export(tuner, tmp_path / "cal.tflite", check_data=split.test, latency_runs=1)
        assert "temperature T=1.75 is not applied inside the exported model" in caplog.text
        assert check_export(tuner, report.path, None, latency_runs=1).temperature == 1.75
    finally:
        tuner.temperature = None
    assert report.temperature == 1.75 and report.to_dict()["temperature"] == 1.75
    assert (
        "temperature T=1.75 is not applied inside the exported model: divide log-probabilities "
        "by T" in report.summary()
    )
    assert report.agreement == 1.0  # the file is the plain network, checked against it
    marker = json.loads((tmp_path / "cal.tflite.tlkit-export.json").read_text())
    assert marker["temperature"] == 1.75
    assert "temperature" not in json.loads(
        (tmp_path / "plain.tflite.tlkit-export.json").read_text()
    )
    assert math.isfinite(report.max_prob_diff)
