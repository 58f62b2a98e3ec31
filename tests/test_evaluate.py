"""Cross-validation and learning curves: the mechanics, with fake classifiers (no training).

A real FineTuner runs in test_evaluate_tuner.py; here `Spy` records what each
fold trained and tested on, and predicts from a hash of the path, so the tests
check leak-freedom, bookkeeping and reporting in milliseconds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import make_tree

from tlkit import DatasetSplitter
from tlkit.compare import ComparisonReport
from tlkit.data._folds import leak_free_groups
from tlkit.errors import ArgumentTypeError, ComparisonError, EvaluationError, InvalidArgumentError
from tlkit.evaluate import (
    CVResult,
    Estimator,
    LearningCurve,
    compare_cv,
    cross_validate,
    learning_curve,
)
from tlkit.evaluate._curve import fit_power_law
from tlkit.metrics import metrics_report


def _u(path: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by the path: the fake's 'difficulty' of an image."""
    return int.from_bytes(hashlib.sha256((salt + path).encode()).digest()[:4], "big") / 2**32


class Spy:
    """Records its training and test images; right on an image when its difficulty < skill."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, skill: float | None = 0.8, salt: str = "") -> None:
        self.skill, self.salt = skill, salt
        self.history = None

    def fit(self, train, val=None, **kwargs) -> None:
        self.train = train
        self.k = train.num_classes
        Spy.calls.append(
            {
                "train": {s.path for s in train},
                "val": set() if val is None else {s.path for s in val},
                "kwargs": kwargs,
                "n": len(train),
            }
        )

    def skill_at(self) -> float:
        if self.skill is not None:
            return self.skill
        return 0.9 - 2.0 * len(self.train) ** -0.7  # a learner that improves with data

    def predict(self, part) -> np.ndarray:
        Spy.calls[-1]["test"] = [s.path for s in part]
        out = np.full((len(part), self.k), 0.1 / (self.k - 1))
        for i, s in enumerate(part):
            right = _u(s.path, self.salt) < self.skill_at()
            out[i, s.label if right else (s.label + 1) % self.k] = 0.9
        return out


@pytest.fixture
def spy():
    Spy.calls = []
    return Spy


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_tree(tmp_path_factory.mktemp("ev") / "data", {"a": 20, "b": 14, "c": 10})
    for i in range(3):  # a burst (groups=) and a byte-identical copy
        (root / "a" / f"burst_7_{i}.png").write_bytes((root / "a" / f"a_{i:03d}.png").read_bytes())
        (root / "a" / f"a_{i:03d}.png").unlink()
    (root / "c" / "copy.png").write_bytes((root / "c" / "c_000.png").read_bytes())
    (root / "b" / "broken.png").write_bytes(b"\x89PNG but not really")
    return root


def test_cross_validate_predicts_every_image_once_without_leaks(tree: Path, spy) -> None:
    cv = cross_validate(
        lambda: Spy(0.8), tree, folds=4, repeats=2, seed=3, groups=r"^(burst_\d+)_",
        fit_kwargs={"epochs": 3}, n_boot=200, verbose=False,
    )  # fmt: skip
    assert isinstance(cv, CVResult) and len(cv.paths) == 45
    assert [s.path for s in cv.skipped] == ["b/broken.png"]
    assert len(spy.calls) == 8 and len(cv.fold_results) == 8
    groups = [{s.path for s in g} for g in leak_free_groups(list(_samples(cv)))]
    for r in range(2):
        tested = [p for c in spy.calls[4 * r : 4 * r + 4] for p in c["test"]]
        assert sorted(tested) == sorted(cv.paths)  # every image predicted once per repeat
    for c in spy.calls:
        test = set(c["test"])
        assert c["kwargs"] == {"epochs": 3}
        assert not (c["train"] & test) and not (c["val"] & test) and not (c["train"] & c["val"])
        assert len(c["val"]) > 0
        for g in groups:  # no group member trains while another is tested or validates
            assert g <= test or not (g & test)
            assert g <= c["val"] or not (g & c["val"])
    assert not np.isnan(cv.probabilities).any() and (cv.fold >= 0).all()
    # the out-of-fold predictions are the fake's own
    expect = np.array([0 if _u(p) < 0.8 else 1 for p in cv.paths])
    wrong = cv.oof_predictions != cv.y_true
    assert np.array_equal(wrong.astype(int), expect)
    pooled = metrics_report(cv.y_true, cv.oof_predictions, cv.oof_probabilities, cv.class_names)
    assert cv.pooled_metrics == pooled["metrics"]
    for name, ci in cv.intervals.items():
        assert ci.low <= cv.pooled_metrics[name] <= ci.high and ci.n_boot == 200
    assert set(cv.fold_summary()) == {"accuracy", "balanced_accuracy", "macro_f1"}


def _samples(cv: CVResult):
    from tlkit.data import Sample

    split = DatasetSplitter(val=0.0, test=0.0, groups=r"^(burst_\d+)_", progress=False).split(
        cv.root
    )
    by_path = {s.path: s for s in split.train}
    return [by_path[p] for p in cv.paths if isinstance(by_path[p], Sample)]


def test_cv_outputs_csv_json_markdown_and_files(tree: Path, tmp_path: Path, spy) -> None:
    cv = cross_validate(lambda: Spy(0.7), tree, folds=3, n_boot=50, verbose=False, val=None)
    assert all(not c["val"] for c in spy.calls)
    rows = list(csv.DictReader(io.StringIO(cv.predictions_csv())))
    assert len(rows) == 45 and set(rows[0]) >= {"path", "label", "fold", "predicted", "p_a"}
    assert {r["path"] for r in rows} == set(cv.paths)
    d = json.loads(cv.to_json())
    assert d["schema"] == "tlkit.cv/1" and d["n"] == 45 and len(d["predictions"]) == 45
    assert d["pooled"]["intervals"]["balanced_accuracy"]["low"] is not None
    assert "## Cross-validation: 3 folds" in cv.to_markdown()
    names = {p.name for p in cv.save(tmp_path / "out")}
    assert {"report.html", "report.json", "cv.json", "cv.md", "oof_predictions.csv"} <= names


def test_two_recipes_compare_on_the_same_images_with_paired_tests(tree: Path, spy) -> None:
    a = cross_validate(lambda: Spy(0.9), tree, folds=3, seed=1, n_boot=100, verbose=False)
    b = cross_validate(lambda: Spy(0.5, "b"), tree, folds=3, seed=1, n_boot=100, verbose=False)
    report = a.report("strong", others={"weak": b})
    assert isinstance(report, ComparisonReport)
    assert list(report.models) == ["strong", "weak"] and report.y_true.size == 45
    (pair,) = report.pairwise
    assert pair.test.discordant > 0 and pair.significant
    assert report["strong"].metrics["accuracy"] == pytest.approx(a.pooled_metrics["accuracy"])
    assert not any("other folds" in w for w in report.warnings)
    c = cross_validate(lambda: Spy(0.5, "b"), tree, folds=3, seed=2, n_boot=100, verbose=False)
    assert any("other folds" in w for w in compare_cv({"a": a, "c": c}, n_boot=0).warnings)
    other = make_tree(tree.parent / "other", {"a": 6, "b": 6})
    d = cross_validate(lambda: Spy(0.5), other, folds=3, n_boot=0, verbose=False)
    with pytest.raises(ComparisonError, match="different images"):
        compare_cv({"a": a, "d": d})


def test_make_model_and_predict_are_checked(tree: Path, spy) -> None:
    one = Spy()
    with pytest.raises(EvaluationError, match="same model object"):
        cross_validate(lambda: one, tree, folds=3, verbose=False)

    class Trained(Spy):
        train_time_s = 1.0

        def __init__(self) -> None:
            super().__init__()
            self.history = {"loss": [1.0]}

    with pytest.raises(EvaluationError, match="already trained"):
        cross_validate(Trained, tree, folds=3, verbose=False)

    class Logits(Spy):
        def predict(self, part):
            return super().predict(part) * 5

    with pytest.raises(EvaluationError, match="summing to 1"):
        cross_validate(Logits, tree, folds=3, verbose=False)

    class Short(Spy):
        def predict(self, part):
            return super().predict(part)[:-1]

    with pytest.raises(EvaluationError, match=r"expected \(\d+, 3\)"):
        cross_validate(Short, tree, folds=3, verbose=False)
    with pytest.raises(EvaluationError, match="no fit"):
        cross_validate(object, tree, folds=3, verbose=False)
    with pytest.raises(ArgumentTypeError, match="make_model must be a callable"):
        cross_validate(Spy(), tree, folds=3, verbose=False)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="fit_kwargs"):
        cross_validate(Spy, tree, fit_kwargs=[("epochs", 3)], verbose=False)  # type: ignore[arg-type]
    assert isinstance(Spy(), Estimator)


# -- learning curves -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    root = make_tree(tmp_path_factory.mktemp("lc") / "data", {"a": 60, "<b>&x": 40, "c|d": 30})
    return DatasetSplitter(val=0.1, test=0.3, seed=0, progress=False).split(root)


def test_learning_curve_nested_stratified_fractions_same_test_set(split, spy) -> None:
    curve = learning_curve(
        lambda: Spy(None), split, seed=4, n_boot=100, fit_kwargs={"epochs": 2}, verbose=False
    )
    assert isinstance(curve, LearningCurve) and len(curve.points) == 5
    trains = [c["train"] for c in spy.calls]
    for small, big in itertools.pairwise(trains):
        assert small < big  # nested, strictly growing
    assert trains[-1] == {s.path for s in split.train}
    assert all(c["test"] == [s.path for s in split.test] for c in spy.calls)  # same images
    assert all(c["val"] == {s.path for s in split.val} for c in spy.calls)
    totals = split.train.class_counts()
    for f, p in zip((0.2, 0.4, 0.6, 0.8, 1.0), curve.points, strict=True):
        for c, n in p.class_counts.items():
            assert abs(n - f * totals[c]) <= 1, (f, c, n)  # stratified
        ci = p.intervals["balanced_accuracy"]
        assert ci.low <= p.metrics["balanced_accuracy"] <= ci.high
    assert curve.n_train == tuple(len(t) for t in trains)
    assert curve.fit.ok
    d = json.loads(curve.to_json())
    assert d["schema"] == "tlkit.learning_curve/1" and len(d["points"]) == 5
    assert d["sentence"] == curve.sentence and "extrapolation" in curve.sentence


def test_learning_curve_says_whether_more_data_helps(split, spy) -> None:
    rising = learning_curve(lambda: Spy(None), split, n_boot=0, verbose=False)
    flat = learning_curve(lambda: Spy(0.8), split, n_boot=0, verbose=False)
    assert rising.more_data_helps is True and rising.sentence.startswith("More photos")
    assert rising.predicted_gain > 0.01
    assert flat.more_data_helps is False and flat.sentence.startswith("The curve has flattened")
    two = learning_curve(lambda: Spy(None), split, fractions=(0.5, 1.0), n_boot=0, verbose=False)
    assert not two.fit.ok and two.more_data_helps is None
    assert "at least 3 training sizes" in two.sentence


def test_learning_curve_renders_escaped_and_plots(split, spy, tmp_path: Path) -> None:
    curve = learning_curve(lambda: Spy(None), split, on="val", n_boot=50, verbose=False)
    assert curve.scored_on == "val" and all(not c["val"] for c in spy.calls)
    html_text = curve.to_html()
    assert "<b>&x" not in html_text and "&lt;b&gt;&amp;x" in html_text
    assert 'src="data:image/png;base64,' in html_text
    md = curve.to_markdown("lc.png")
    assert (
        "![balanced accuracy against training images](lc.png)" in md and "| training images" in md
    )
    png = curve.plot(tmp_path / "lc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = {p.name for p in curve.save(tmp_path / "out")}
    assert names == {f"learning_curve.{x}" for x in ("png", "json", "md", "html")}


def test_learning_curve_arguments(split) -> None:
    with pytest.raises(InvalidArgumentError, match="fractions"):
        learning_curve(Spy, split, fractions=(0.5, 0.5), verbose=False)
    with pytest.raises(InvalidArgumentError, match=r"fractions\[0\]"):
        learning_curve(Spy, split, fractions=(0.0, 1.0), verbose=False)
    with pytest.raises(InvalidArgumentError, match="metric"):
        learning_curve(Spy, split, metric="mcc", verbose=False)
    with pytest.raises(ArgumentTypeError, match="Split"):
        learning_curve(Spy, split.train, verbose=False)  # type: ignore[arg-type]


# -- the power law ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "c"), [(0.9, 2.0, 0.7), (0.75, 0.8, 0.4), (0.98, 5.0, 1.2), (0.6, 0.3, 0.25)]
)
def test_power_law_recovers_known_parameters(a: float, b: float, c: float) -> None:
    n = np.array([30, 60, 90, 120, 150])
    fit = fit_power_law(n, a - b * n**-c)
    assert fit.ok, fit.reason
    assert fit.a == pytest.approx(a, abs=2e-3)
    assert fit.b == pytest.approx(b, rel=2e-2)
    assert fit.c == pytest.approx(c, abs=1e-2)
    assert fit.rmse < 1e-5
    assert fit.gain(150) == pytest.approx(b * 150**-c * (1 - 2**-c), abs=1e-3)


def test_power_law_reports_failure_and_flat_curves_honestly() -> None:
    fit = fit_power_law([50, 100], [0.6, 0.7])
    assert not fit.ok and "at least 3" in fit.reason and math.isnan(fit.predict(100))
    flat = fit_power_law([40, 80, 120, 160], [0.81, 0.79, 0.80, 0.80])
    assert flat.ok and abs(flat.gain(160)) < 0.01
    falling = fit_power_law([40, 80, 120], [0.9, 0.8, 0.7])
    assert falling.ok and falling.gain(120) < 0.01  # never "more data helps" on a falling curve
    assert json.dumps(fit.to_dict(), allow_nan=False)
