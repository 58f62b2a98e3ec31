"""ComparisonReport output: Markdown, JSON schema, saved files and the HTML page."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from tlkit.compare import SCHEMA, ModelComparator

CLASSES = ["healthy", "rust", "scab"]
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


def make_report(**kwargs):
    y = np.repeat([0, 1, 2], [80, 20, 8])
    rng = np.random.default_rng(0)
    cnn = np.where(rng.random(108) < 0.65, y, rng.integers(0, 3, 108))
    prob = rng.dirichlet(np.ones(3), 108)
    history = {"loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.9, 0.8], "accuracy": [0.5, 0.6, 0.7]}
    return (
        ModelComparator(y, CLASSES, n_boot=100, **kwargs)
        .add_predictions("MobileNet", np.zeros(108, int), params=2_257_984, train_time_s=312.5)
        .add_predictions("CNN <b>&</b>", cnn, prob, history=history, latency_ms=3.5)
        .run()
    )


@pytest.fixture(scope="module")
def report():
    return make_report()


class Page(HTMLParser):
    """Collect tags, text, tables and check that every element is closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables: list[dict] = []
        self.imgs: list[dict] = []
        self.ids: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.imgs.append(a)
        if tag == "table":
            self.tables.append({"attrs": a, "rows": []})
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._row is not None:
            self._row.append("".join(self._cell or []))
            self._cell = None
        if tag == "tr" and self.tables:
            self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_markdown_layout(report) -> None:
    md = report.to_markdown()
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[0].startswith("## ⚠ Warnings")
    assert sections[1:7] == [
        "## Test set",
        "## Metrics",
        "## Calibration",
        "## Cost",
        "## Pairwise McNemar exact tests",
        "## MobileNet",
    ]
    assert "## CNN &lt;b&gt;&amp;&lt;/b&gt;" in sections  # the name as text, not HTML
    # Every model's metrics row and the baseline row.
    assert "| majority-class baseline (always 'healthy') | 0.741 [0.741, 0.741] |" in md
    assert (
        "| MobileNet | 0.741 [0.741, 0.741] | 0.333 [0.333, 0.333] | 0.284 [0.284, 0.284] |" in md
    )
    # Cost columns: given values are shown, missing ones are dashes.
    assert "| MobileNet | 2,257,984 | — | — | — | — | 5 min 12 s | — |" in md
    assert "3.5 ms" in md
    for r in report.models.values():
        assert r.classification_report.rstrip() in md


def test_json_schema(report) -> None:
    text = report.to_json()
    d = json.loads(text)  # strict JSON: allow_nan=False would have raised on NaN
    assert d["schema"] == SCHEMA == "tlkit.comparison/3"
    assert list(d) == [
        "schema",
        "tlkit_version",
        "n_test",
        "classes",
        "settings",
        "baseline",
        "warnings",
        "models",
        "pairwise",
        "machine",
        "y_true",
        "verdict",  # added within schema 1, after the other keys
    ]
    assert d["n_test"] == 108
    assert d["classes"] == [
        {"index": 0, "name": "healthy", "support": 80},
        {"index": 1, "name": "rust", "support": 20},
        {"index": 2, "name": "scab", "support": 8},
    ]
    assert d["settings"]["n_boot"] == 100 and d["settings"]["seed"] == 0
    assert d["baseline"]["class_name"] == "healthy"
    assert d["warnings"] == list(report.warnings)
    assert [m["name"] for m in d["models"]] == [
        "majority-class baseline",
        "MobileNet",
        "CNN <b>&</b>",
    ]
    assert [m["kind"] for m in d["models"]] == ["baseline", "predictions", "predictions"]
    mob = d["models"][1]
    assert set(mob) == {
        "name",
        "kind",
        "metrics",
        "ci",
        "top_k",
        "per_class",
        "averages",
        "classification_report",
        "confusion_matrix",
        "confusion_matrix_normalized",
        "most_confused",
        "never_predicted",
        "cost",
        "output",
        "history",
        "notes",
        "ece",
        "reliability",
        "y_pred",
        "gallery",  # after the other keys
    }
    assert set(mob["metrics"]) == {
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "weighted_f1",
        "mcc",
        "cohen_kappa",
        "top_k_accuracy",
        "log_loss",
        "roc_auc_ovr",
    }
    assert mob["metrics"]["log_loss"] is None  # no probabilities given
    assert mob["metrics"]["accuracy"] == report["MobileNet"].metrics["accuracy"]
    assert mob["ci"]["balanced_accuracy"] == pytest.approx([1 / 3, 1 / 3])
    assert mob["confusion_matrix"] == [[80, 0, 0], [20, 0, 0], [8, 0, 0]]
    assert mob["never_predicted"] == ["rust", "scab"]
    assert mob["cost"] == {
        "params": 2_257_984,
        "size_bytes": None,
        "tflite_size_bytes": None,
        "latency_ms": None,
        "latency_ms_batch32": None,
        "train_time_s": 312.5,
        "predict_time_s": None,
    }
    assert d["models"][2]["history"]["val_loss"] == [1.1, 0.9, 0.8]
    assert d["pairwise"][0] == {
        "model_a": "MobileNet",
        "model_b": "CNN <b>&</b>",
        "a_right_b_wrong": report.pairwise[0].test.a_right_b_wrong,
        "a_wrong_b_right": report.pairwise[0].test.a_wrong_b_right,
        "p_value": report.pairwise[0].test.p_value,
        "p_adjusted": report.pairwise[0].p_adjusted,
        "significant": report.pairwise[0].significant,
    }
    assert d["y_true"] == report.y_true.tolist()
    slim = json.loads(report.to_json(include_predictions=False))
    assert "y_true" not in slim and "y_pred" not in slim["models"][1]


def test_save_writes_every_file(report, tmp_path) -> None:
    written = report.save(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "report.html",
            "report.md",
            "report.json",
            "metrics.png",
            "per_class_f1.png",
            "reliability.png",
            "confusion_MobileNet.png",
            "confusion_CNN_b_b.png",
            "training_CNN_b_b.png",
        ]
    )
    for p in written:
        assert p.parent == tmp_path / "out" and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "![confusion matrix of MobileNet](confusion_MobileNet.png)" in md
    assert json.loads((tmp_path / "out" / "report.json").read_text())["schema"] == SCHEMA
    # Saving again gives the same bytes (seeded, no timestamps).
    again = make_report().save(tmp_path / "again")
    for a, b in zip(sorted(written), sorted(again), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_html_report_opens_and_holds_every_table(report, tmp_path) -> None:
    report.save(tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.errors == [] and page.stack == []
    assert html.startswith("<!DOCTYPE html>")
    # Self-contained: every image is embedded, nothing is fetched.
    assert len(page.imgs) == 6
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.imgs)
    assert "http://" not in html and "https://" not in html and page.scripts == 0
    # User text is escaped, never markup.
    assert "<b>&</b>" not in html and "CNN &lt;b&gt;&amp;&lt;/b&gt;" in html
    # Warnings come first.
    assert page.ids[:3] == ["warnings", "test-set", "metrics"]
    text = "".join(page.text)
    assert text.index("does not clear the majority-class baseline") < text.index("Metrics")
    # Each model's classification report table, with every class and the averages.
    tables = {
        t["attrs"].get("data-model"): t
        for t in page.tables
        if "classification-report" in t["attrs"].get("class", "")
    }
    assert set(tables) == set(report.models)
    for name, table in tables.items():
        rows = {r[0]: r[1:] for r in table["rows"][1:]}
        assert list(rows) == [*CLASSES, "accuracy", "macro avg", "weighted avg"]
        per_class = report[name].per_class
        for row in per_class:
            assert rows[row["class"]] == [
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            ]
        assert rows["accuracy"][2] == f"{report[name].metrics['accuracy']:.3f}"
    metrics = next(t for t in page.tables if t["attrs"].get("class") == "metrics")
    assert [r[0] for r in metrics["rows"][1:]] == [
        "majority-class baseline (always 'healthy')",
        "MobileNet",
        "CNN <b>&</b>",
    ]
    confusion = [t for t in page.tables if t["attrs"].get("class") == "confusion"]
    assert [t["attrs"]["data-model"] for t in confusion] == list(report.models)


def test_plots_leave_no_pyplot_state(report) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    report.to_html()
    assert plt.get_fignums() == before


def test_no_warnings_section_when_clean(tmp_path) -> None:
    y = np.repeat([0, 1], [30, 30])
    good = y.copy()
    good[:3] = 1
    r = ModelComparator(y, ["a", "b"], n_boot=100).add_predictions("good", good).run()
    assert r.warnings == ()
    assert "## Warnings\n\nNone." in r.to_markdown()
    assert "No warnings." in r.to_html()


def test_file_names_stay_unique(tmp_path) -> None:
    y = np.array([0, 1, 0, 1])
    r = (
        ModelComparator(y, ["a", "b"], n_boot=0)
        .add_predictions("a/b", y)
        .add_predictions("a_b", y)
        .add_predictions("../..", y)
        .run()
    )
    names = {p.name for p in r.save(tmp_path)}
    assert {"confusion_a_b.png", "confusion_a_b-2.png", "confusion_model.png"} <= names
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())


def test_report_access(report) -> None:
    assert report["majority-class baseline"] is report.baseline
    with pytest.raises(KeyError, match="no model named 'x'"):
        report["x"]
    assert (
        repr(report)
        == "ComparisonReport(models=['MobileNet', 'CNN <b>&</b>'], n_test=108, classes=3, warnings=7)"
    )


def test_docs_example_is_current() -> None:
    """The guide shows the script's report and tables: they must be what it writes now."""
    import importlib.util
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    spec = importlib.util.spec_from_file_location(
        "make_study_figures", docs / "make_study_figures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.study_report()
    static = docs / "_static"
    assert (static / "study_report.md").read_text(encoding="utf-8") == report.to_markdown()
    assert (static / "study_report.rst").read_text(encoding="utf-8") == module.report_rst(report)
    for name in ("study_confusion_mobilenet.png", "study_confusion_cnn.png", "study_metrics.png"):
        assert (static / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    guide = (docs / "guide" / "comparing.rst").read_text(encoding="utf-8")
    p = report.pairwise[0].test.p_value
    assert f"(p = {p:.3f})" in guide  # the p-value quoted in the prose


def test_import_is_cheap() -> None:
    """``tlkit`` and ``tlkit.compare`` import without TensorFlow or Keras."""
    code = (
        "import sys, tlkit, tlkit.compare; from tlkit import ModelComparator; "
        "assert ModelComparator is tlkit.compare.ModelComparator; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
