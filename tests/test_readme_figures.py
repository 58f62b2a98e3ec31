"""The figures the README quotes are the figures a run printed.

``docs/_static/elpv_study/`` holds ``report.json`` and ``run.json`` of the study run the
README quotes (``python examples/mobilenet_vs_cnn.py --out study/``, default profile). The
README's text block must be an excerpt of that report's warnings and verdict (line breaks
and ``[...]`` elisions aside), and the other numbers the README states about the run must
match ``run.json`` / ``report.json``. Rerunning the study means replacing both files and
the quotes together.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tlkit.compare import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RUN = ROOT / "docs" / "_static" / "elpv_study"


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def report() -> dict:
    data = json.loads((RUN / "report.json").read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA, (
        f"docs/_static/elpv_study/report.json is {data['schema']!r}, not {SCHEMA!r}: rename "
        "its keys as docs/guide/comparing.rst lists, or rerun the study"
    )
    return data


@pytest.fixture(scope="module")
def run() -> dict:
    return json.loads((RUN / "run.json").read_text(encoding="utf-8"))


def _quoted_block(readme: str) -> str:
    match = re.search(r"```text\n((?:Warnings:|No warnings\.).*?)```", readme, re.S)
    assert match, "the README's first text block (the study's warnings and verdict) is missing"
    return match.group(1)


def check_block(readme: str, report: dict) -> None:
    """Assert that the README's quoted block is an excerpt of ``report``."""
    block = _quoted_block(readme)
    warnings_part, verdict_part = block.split("Verdict:", 1)
    if warnings_part.strip() == "No warnings.":
        assert report["warnings"] == []
    else:
        printed = [_flat(w) for w in re.split(r"^- ", warnings_part, flags=re.M)[1:]]
        assert printed == [_flat(w) for w in report["warnings"]]
    verdict = _flat(report["verdict"])
    fragments = [_flat(f) for f in verdict_part.split("[...]") if _flat(f)]
    assert fragments, "no verdict quoted"
    position = 0
    for fragment in fragments:  # in order, each a verbatim piece of the verdict
        found = verdict.find(fragment, position)
        assert found >= 0, f"not in report.json's verdict (or out of order): {fragment!r}"
        position = found + len(fragment)


def check_numbers(readme: str, report: dict, run: dict) -> None:
    """Assert that the numbers ``readme`` states about the run match ``run``/``report``."""
    minutes = re.search(r"\(([\d.]+) min wall\s+time", readme)
    assert minutes and float(minutes.group(1)) == round(run["wall_time_s"] / 60, 1)
    assert "examples/mobilenet_vs_cnn.py" in run["command"]
    models = {m["name"]: m["metrics"] for m in report["models"]}
    baseline = models["majority-class baseline"]["accuracy"]
    assert f"against {baseline:.3f})" in _flat(readme)  # "(0.405 against 0.575)"


def test_readme_block_is_an_excerpt_of_the_report(report: dict) -> None:
    check_block(README, report)


def test_readme_numbers_about_the_run_match_it(report: dict, run: dict) -> None:
    check_numbers(README, report, run)


def _drift(readme: str, pattern: str) -> str:
    """``readme`` with the last digit of the first match of ``pattern`` changed."""
    match = re.search(pattern, readme)
    assert match, f"the README has no {pattern!r} to change"
    i = match.end() - 1
    return readme[:i] + str((int(readme[i]) + 1) % 10) + readme[i + 1 :]


@pytest.mark.parametrize(
    "pattern",
    [
        r"```text\n(?s:.*?)\d\.\d{3}",  # a figure inside the quoted verdict
        r"McNemar exact p = \d\.\d",  # the McNemar p-value in the quote (0.315 or 1.9e-04)
    ],
)
def test_the_block_check_fails_on_a_changed_figure(report: dict, pattern: str) -> None:
    """A quote that drifted from the report is caught by the real check."""
    with pytest.raises(AssertionError):
        check_block(_drift(README, pattern), report)


def test_the_numbers_check_fails_on_a_changed_figure(report: dict, run: dict) -> None:
    """A drifted wall time or baseline figure is caught by the real check."""
    with pytest.raises(AssertionError):
        check_numbers(_drift(README, r"\([\d.]+(?= min wall)"), report, run)
    with pytest.raises(AssertionError):
        check_numbers(_drift(README, r"against 0\.\d{3}"), report, run)
