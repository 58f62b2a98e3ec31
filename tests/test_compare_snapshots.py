"""Snapshots of the files ``ComparisonReport.save`` writes, for fixed, deterministic comparisons.

``report.json``, ``report.md`` and the text of ``report.html`` must not change unless a
change is meant: the JSON schema and the rendered reports are public output. The only
parts normalised away are those that depend on the machine or the run: the tlkit version,
the ``machine`` block, the embedded PNG bytes (matplotlib's rendering) and, for the Keras
scenario, the measured prediction time. Numbers in the JSON are compared to 1e-9 relative
(scikit-learn's floating-point sums may differ in the last bit across platforms); every key,
key order, string and integer must match exactly.

To accept a deliberate change, rerun with ``TLKIT_UPDATE_SNAPSHOTS=1`` and review the diff
of ``tests/snapshots/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tlkit.compare import ModelComparator

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("TLKIT_UPDATE_SNAPSHOTS") == "1"
PNG = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def study_report():
    """Three classes (one too small to judge), four models: constant, noisy with
    probabilities and a history, and two whose names make the same file slug."""
    y = np.repeat([0, 1, 2], [40, 14, 6])
    rng = np.random.default_rng(3)
    noisy = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
    prob = rng.dirichlet(np.ones(3), 60)
    prob[np.arange(60), noisy] += 1.0
    prob /= prob.sum(axis=1, keepdims=True)
    good = np.where(rng.random(60) < 0.9, y, (y + 1) % 3)
    history = {"loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.9, 0.8], "accuracy": [0.5, 0.6, 0.7]}
    return (
        ModelComparator(y, ["healthy", "rust", "scab"], n_boot=50, baseline_labels=[0, 0, 1])
        .add_predictions(
            "MobileNet",
            np.zeros(60, int),
            params=2_257_984,
            size_bytes=9_400_000,
            tflite_size_bytes=2_600_000,
            latency_ms=12.25,
            latency_ms_batch32=1.5,
            train_time_s=312.5,
        )
        .add_predictions("CNN <b>&</b> | v2", y_prob=prob, history=history, train_time_s=4000)
        .add_predictions("cnn v2", good, latency_ms=3.5)
        .add_predictions("cnn/v2", good[::-1].copy(), size_bytes=999)
        .run()
    )


def binary_report():
    """Two classes, no intervals, no correction, one model given as P(class 1)."""
    y = np.array([0] * 12 + [1] * 9)
    p1 = np.linspace(0.05, 0.95, 21)
    return (
        ModelComparator(y, ["ok", "crack"], n_boot=0, correction=None, alpha=0.1)
        .add_predictions("logistic", y_prob=p1)
        .run()
    )


def keras_report(tmp_path: Path):
    """A fixed Keras model through ``add`` (the model adapter and prediction path)."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [10, 8, 6]).astype("int32")
    x = rng.uniform(0, 120, (24, 8, 8, 3)).astype("float32")
    for i, c in enumerate(y):
        x[i, ..., c] += rng.uniform(60, 135)
    x[[1, 12, 20]] = x[[1, 12, 20]][..., ::-1]
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),  # logits
        ]
    )
    model.layers[-1].set_weights([np.eye(3, dtype="float32") * 20, np.zeros(3, "float32")])
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"\0" * 4321)

    @dataclasses.dataclass
    class Run:
        model: object
        class_names: tuple = ("red", "green", "blue")
        history: dict = dataclasses.field(default_factory=lambda: {"loss": [0.9, 0.4]})
        train_time_s: float = 61.0
        tflite_path: str = str(tflite)

    report = (
        ModelComparator((x, y), ["red", "green", "blue"], n_boot=20, batch_size=5)
        .add("colour", Run(model), measure_cost=False)
        .run()
    )
    # Measured time: fixed, so that the files do not depend on the machine.
    r = report.models["colour"]
    report.models["colour"] = dataclasses.replace(
        r, cost=dataclasses.replace(r.cost, predict_time_s=0.25)
    )
    return report


def _normalise(name: str, text: str) -> str:
    if name == "report.json":
        d = json.loads(text)
        d["tlkit_version"] = "<version>"
        d["machine"] = "<machine>"
        return json.dumps(d, indent=2, ensure_ascii=False) + "\n"
    return PNG.sub("data:image/png;base64,<PNG>", text)


def _same_json(got, want, where="$") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            _same_json(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same_json(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (int, float)), f"{where}: {got!r} != {want!r}"
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {got} != {want}"
    else:
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


SCENARIOS = {"study": study_report, "binary": binary_report, "keras": keras_report}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_saved_report_matches_snapshot(scenario: str, tmp_path: Path) -> None:
    make = SCENARIOS[scenario]
    report = make(tmp_path) if scenario == "keras" else make()
    if scenario == "keras":  # where latency was measured: fixed, like the prediction time
        report.machine = {"platform": "<platform>", "cpu_count": 0}
    written = report.save(tmp_path / "out")
    folder = SNAPSHOTS / f"compare_{scenario}"
    files = {p.name: p for p in written}
    listing = "\n".join(sorted(files)) + "\n"
    texts = {"files.txt": listing}
    for name in ("report.json", "report.md", "report.html"):
        texts[name] = _normalise(name, files[name].read_text(encoding="utf-8"))
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (folder / name).write_text(text, encoding="utf-8")
    for name, text in texts.items():
        want = (folder / name).read_text(encoding="utf-8")
        if name == "report.json":
            _same_json(json.loads(text), json.loads(want))
        else:
            assert text == want, f"{scenario}/{name} differs from {folder / name}"
    # The Markdown and HTML the methods return are the saved ones (less the image links).
    without_images = re.sub(r"(?m)^!\[.*\n", "", texts["report.md"])
    without_images = without_images.replace("## Per-class F1\n\n\n", "")  # a plot only
    without_images = re.sub(r"\n{3,}", "\n\n", without_images).rstrip("\n") + "\n"
    assert report.to_markdown() == without_images
    assert _normalise("report.html", report.to_html()) == texts["report.html"]


def test_snapshot_comparison_catches_changes() -> None:
    """The JSON comparison is not vacuous: a changed value, key or key order fails."""
    want = {"a": 1, "b": [0.5, "x"], "c": None}
    _same_json({"a": 1, "b": [0.5 + 1e-13, "x"], "c": None}, want)
    for bad in (
        {"a": 2, "b": [0.5, "x"], "c": None},
        {"a": 1, "b": [0.51, "x"], "c": None},
        {"b": [0.5, "x"], "a": 1, "c": None},
        {"a": 1, "b": [0.5, "x"]},
        {"a": 1.0, "b": [0.5, "x"], "c": None},
        {"a": 1, "b": [0.5, "x"], "c": 0},
    ):
        with pytest.raises(AssertionError):
            _same_json(bad, want)
