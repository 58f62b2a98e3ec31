"""A training history with hundreds of keys or epochs is plotted capped (issue 18, item 11).

A model file's metadata can carry any history; 600 keys made ``tlkit compare`` draw for
minutes. The plot now shows loss and accuracy (with their ``val_`` pairs) and at most
``MAX_HISTORY_EXTRA_PANELS`` other metrics, each curve thinned to ``MAX_HISTORY_POINTS``
points, and the report says what it left out. The counts are checked, not the time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tlkit.compare import ModelComparator, _plots
from tlkit.compare._format import (
    MAX_HISTORY_EXTRA_PANELS,
    MAX_HISTORY_POINTS,
    history_note,
    history_plan,
)


def _big_history(keys: int = 600, epochs: int = 3) -> dict[str, list[float]]:
    h = {f"metric_{i}": [0.5] * epochs for i in range(keys)}
    h.update(loss=list(np.linspace(1, 0.1, 5000)), val_loss=[0.9] * 5000, accuracy=[0.5, 0.6])
    h["val_accuracy"] = [0.4, 0.5]
    return h


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the plots would save (kept, not rendered)."""
    figures: list = []
    monkeypatch.setattr(_plots, "_png", lambda fig: figures.append(fig) or b"")
    return figures


def test_a_600_key_history_draws_a_capped_figure(drawn) -> None:
    _plots.training_png("m", _big_history())
    (fig,) = drawn
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 + MAX_HISTORY_EXTRA_PANELS
    assert len(fig.axes) <= 2 + MAX_HISTORY_EXTRA_PANELS + 2  # a 3-column grid's spare cells
    titles = [ax.get_title() for ax in axes]
    assert "loss" in titles and "accuracy" in titles  # the standard metrics always get a panel
    lines = [line for ax in axes for line in ax.get_lines()]
    assert len(lines) <= 2 * len(axes)
    assert max(len(line.get_xdata()) for line in lines) <= MAX_HISTORY_POINTS
    loss = next(ax for ax in axes if ax.get_title() == "loss").get_lines()[0]
    assert loss.get_xdata()[0] == 1 and loss.get_xdata()[-1] == 5000  # first and last kept


def test_a_short_history_is_drawn_whole(drawn) -> None:
    h = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "auc": [0.5, 0.7], "learning_rate": [1, 1]}
    _plots.training_png("m", h)
    axes = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "auc"]
    assert history_note(h) is None


def test_the_plan_keeps_the_standard_metrics_and_the_first_others() -> None:
    h = {f"m{i}": [1.0] for i in range(10)} | {"val_accuracy": [1.0], "loss": [1.0]}
    shown, left = history_plan(h)
    assert shown == ["m0", "m1", "m2", "m3", "accuracy", "loss"]
    assert left == [f"m{i}" for i in range(4, 10)]


def test_the_report_says_what_the_plot_left_out(tmp_path: Path) -> None:
    y = np.repeat([0, 1], 10)
    report = ModelComparator(y, ["a", "b"], n_boot=0).add_predictions(
        "m", y, history=_big_history(keys=20)
    )
    report = report.run()
    (note,) = [n for n in report["m"].notes if n.startswith("training-curve plot")]
    assert "16 metric(s) left out ('metric_4'" in note and "and 11 more" in note
    assert f"thinned to {MAX_HISTORY_POINTS} of 5000 epochs" in note
    report.save(tmp_path)
    assert note in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "training-curve plot" in (tmp_path / "report.html").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    model = next(m for m in data["models"] if m["name"] == "m")
    assert note in model["notes"] and len(model["history"]) == 24  # the JSON keeps them all
