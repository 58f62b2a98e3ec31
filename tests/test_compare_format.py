"""The shared labels and formatting of tlkit.compare: file slugs, Markdown cells, numbers."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tlkit._escape import md_cell
from tlkit.compare import _plots, _verdict
from tlkit.compare._format import (
    CI_KEYS,
    fmt_bytes,
    fmt_p,
    fmt_s,
    md_table,
    unique_slugs,
)
from tlkit.metrics import METRIC_LABELS

names = st.lists(st.text(max_size=12), unique=True, max_size=12)


@given(names)
def test_slugs_are_unique_safe_and_one_per_name(models: list[str]) -> None:
    slugs = unique_slugs(models)
    assert list(slugs) == models
    lowered = [s.lower() for s in slugs.values()]
    assert len(set(lowered)) == len(lowered)  # also on case-insensitive file systems
    for slug in slugs.values():
        assert re.fullmatch(r"[A-Za-z0-9._-]+", slug)
        assert not slug.startswith(".")  # no hidden files, no "..": the slug stays in its folder
    assert unique_slugs(models) == slugs  # deterministic


@given(names)
def test_a_safe_name_is_its_own_slug_when_first(models: list[str]) -> None:
    for name, slug in unique_slugs(
        ["plain_name-1.0", *[m for m in models if m != "plain_name-1.0"]]
    ).items():
        if name == "plain_name-1.0":
            assert slug == name


@given(st.lists(st.lists(st.text(max_size=8), min_size=3, max_size=3), max_size=4))
def test_markdown_cells_never_break_the_table(rows: list[list[str]]) -> None:
    lines = md_table(["a", "b|c", "d"], rows)
    assert len(lines) == 2 + len(rows)  # no cell adds a line
    for line in lines:
        unescaped = re.sub(r"\\\|", "", line)
        assert unescaped.count("|") == 4  # three columns, whatever the cells hold
    for cell in ("x|y", "two\nlines"):
        assert "\n" not in md_cell(cell) and "|" not in md_cell(cell).replace("\\|", "")


def test_numbers_as_the_report_prints_them() -> None:
    assert [fmt_bytes(n) for n in (None, 999, 1000, 2_600_000, 3 * 10**9)] == [
        "—",
        "999 B",
        "1.0 kB",
        "2.6 MB",
        "3.0 GB",
    ]
    assert [fmt_s(v) for v in (None, 4.25, 312.5, 4000)] == [
        "—",
        "4.25 s",
        "5 min 12 s",
        "1 h 06 min",
    ]
    assert [fmt_p(p) for p in (0.5, 0.001, 0.00099)] == ["0.500", "0.001", "9.9e-04"]


def test_one_set_of_metric_labels() -> None:
    """The plots and the verdict use the labels of tlkit.metrics, not copies."""
    assert _plots.METRIC_LABELS is METRIC_LABELS and _verdict.METRIC_LABELS is METRIC_LABELS
    assert set(CI_KEYS) <= set(METRIC_LABELS)
