"""Hostile class, file and model names through every report tlkit writes (issue 18, item 10).

report.md / audit.md must show the names as text: no raw HTML tag, no broken table, no
escape from a code block; report.html / audit.html stay escaped; the JSON keeps the exact
original strings.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlkit._escape import csv_cell, md_cell, md_fence, md_text, visible
from tlkit.audit import AuditReport, LabelIssue, NearDuplicate, SmallImage
from tlkit.compare import ModelComparator
from tlkit.compare._format import md_table

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "a|b",
    "line1\nline2",
    "tick`s ```",
    "=cmd|' /C calc'!A0",
    "+1",
    "@SUM(1)",
    "[x](javascript:alert(3))",
    "back\\slash\\",
    "esc\x1b[2Jbidi\u202e",
]
PLAIN = ["healthy", "rust", "cnn_v2", "MobileNet (frozen)"]


# -- the helpers -------------------------------------------------------------------------


def test_plain_text_is_unchanged() -> None:
    for s in [*PLAIN, "0.867 [0.765, 0.946]", "true \\ predicted", "a_b_c", "it's 5% (n=3)"]:
        assert md_text(s) == s and md_cell(s) == s and csv_cell(s) == s


def test_markdown_specials_are_escaped() -> None:
    assert md_cell("<script>") == "&lt;script&gt;"
    assert md_cell("a & b") == "a &amp; b"
    assert md_cell("a|b") == "a\\|b"
    assert md_cell("`x`") == "\\`x\\`"
    assert md_cell("line1\nline2\r\t") == "line1\\nline2\\r\\t"
    assert md_cell("[x](y)") == "[x\\](y)"  # no link
    assert md_cell("a\\|b") == "a\\\\\\|b"  # the backslash cannot swallow the escape
    assert md_text("x]", brackets=True) == "x\\]"
    assert md_text("# h") == "\\# h" and md_text("1. x") == "1\\. x" and md_text("- x") == "\\- x"
    assert md_text("---") == "\\---" and md_text("==") == "\\==" and md_text("-5 #3") == "-5 #3"
    assert visible("\x00\x7f\x9b\u2028") == "\\x00\\x7f\\x9b\\u2028"


def test_fence_is_longer_than_any_backtick_run() -> None:
    lines = md_fence("a\n````\nb\x1b", "text")
    assert lines[0] == "`````text" and lines[-1] == "`````"
    assert lines[1:-1] == ["a", "````", "b\\x1b"]


@pytest.mark.parametrize(
    "cell, want",
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_csv_cells_starting_a_formula_get_a_quote(cell: str, want: str) -> None:
    assert csv_cell(cell) == want


@given(st.lists(st.lists(st.text(max_size=10), min_size=3, max_size=3), max_size=4))
def test_any_cells_keep_the_table_shape(rows: list[list[str]]) -> None:
    lines = md_table(["a", "b|c", "d"], rows)
    assert len(lines) == 2 + len(rows)
    for line in lines:
        assert len(_split_row(line)) == 3
        assert "<" not in line and ">" not in line


# -- rendering checks ---------------------------------------------------------------------


def _split_row(line: str) -> list[str]:
    """Cells of a GFM table row the way cmark-gfm splits it (``\\`` escapes any character)."""
    cells, cur, i = [], "", 0
    body = line.strip()
    assert body.startswith("|") and body.endswith("|"), line
    body = body[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            cur += body[i : i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += body[i]
        i += 1
    return [*cells, cur]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def _assert_inert_html(html: str, image_sources: set[str] | None = None) -> None:
    """No script element, no event-handler attribute, images only from our own files."""
    for tag, attrs in _tags(html):
        assert tag != "script", html
        assert not any(a.lower().startswith("on") for a in attrs), (tag, attrs)
        if tag == "img":
            src = attrs.get("src") or ""
            assert src.startswith("data:image/png;base64,") or (
                image_sources is not None and src in image_sources
            ), src
        if tag == "a":
            assert not (attrs.get("href") or "").lower().startswith("javascript"), attrs


def _assert_markdown_safe(md: str, image_sources: set[str]) -> None:
    """The Markdown is text where a name is: no raw tag; each table row has its columns.

    Names inside fenced code blocks (scikit-learn's classification report, the audit summary)
    stay verbatim: CommonMark shows a code block's content as text, and the fence is longer
    than any run of backticks inside, so nothing there can end the block early.
    """
    outside = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", md, flags=re.S | re.M)
    assert not re.search(r"<\s*/?\s*(script|img)", outside, re.I), outside
    assert "\x1b" not in md and "\u202e" not in md
    lines = md.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|-"):
            width = len(_split_row(lines[i]))
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert len(_split_row(lines[j])) == width, lines[j]
                j += 1
            i = j
        else:
            i += 1
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(md)
    _assert_inert_html(html, image_sources)
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        widths = {
            len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, re.S)
        }
        assert len(widths) == 1, table


# -- comparison report ----------------------------------------------------------------------


def test_comparison_report_with_hostile_names(tmp_path: Path) -> None:
    classes = HOSTILE[:6]
    models = ["<script>alert('m')</script>", "<img src=x onerror=alert(4)>", "m|1\nx`y`", "=cmd"]
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(classes)), 5)
    comp = ModelComparator(y, classes, n_boot=20, seed=0)
    for name in models:
        pred = np.where(rng.random(y.size) < 0.7, y, rng.integers(0, len(classes), y.size))
        comp.add_predictions(name, pred, history={"loss": [1.0, 0.5], "<b>x</b>": [1.0, 0.5]})
    report = comp.run()
    files = report.save(tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    pngs = {p.name for p in files if p.suffix == ".png"}
    _assert_markdown_safe(md, pngs)
    for name in classes + models:
        assert md_cell(name) in md  # every name is shown, as text
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    _assert_inert_html(html)
    assert "&lt;script&gt;alert(&#x27;m&#x27;)&lt;/script&gt;" in html
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in data["classes"]] == classes
    assert [m["name"] for m in data["models"] if m["kind"] != "baseline"] == models
    assert data["models"][1]["history"]["<b>x</b>"] == [1.0, 0.5]


# -- audit report ---------------------------------------------------------------------------


def test_audit_report_with_hostile_names(tmp_path: Path) -> None:
    classes = tuple(HOSTILE[:8])
    counts = {c: {"train": 3, "val": 1, "test": 1} for c in classes}
    files = [f"{c}/{c}.png" for c in classes]
    report = AuditReport(
        root=tmp_path,
        class_names=classes,
        class_counts=counts,
        near_duplicates=[
            NearDuplicate(files[0], files[1], "train", "test", classes[0], classes[1], "phash", 3)
        ],
        label_issues=[LabelIssue(files[2], "val", classes[2], classes[3], 0.01)],
        small_images=[SmallImage(files[3], "train", 4, 4)],
        label_conflicts=[(files[4], f"label conflict: also in {classes[5]!r}")],
        unreadable=[(files[5], "cannot decode\n```\n<script>x</script>"), (files[6], "x")],
        notes=["note with ``` and <script>"],
    )
    md = report.to_markdown()
    _assert_markdown_safe(md, set())
    fence = md.split("\n")[2]
    assert set(fence) == {"`"} and len(fence) > 3  # the summary's fence outlasts the notes'
    assert md.split("\n").count(fence) == 2
    for name in files[:6] + list(classes[:6]):
        assert md_cell(name) in md  # shown in a table, as text
    html = report.to_html()
    _assert_inert_html(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    saved = report.save(tmp_path / "out")
    data = json.loads(saved[2].read_text(encoding="utf-8"))
    assert data["class_names"] == list(classes)
    assert data["unreadable"][0]["reason"] == "cannot decode\n```\n<script>x</script>"
    assert data["near_duplicates"][0]["path_a"] == files[0]


def test_audit_of_a_folder_with_hostile_class_names(tmp_path: Path) -> None:
    """Real folder names (no ``/`` possible) through the whole audit."""
    from PIL import Image

    from tlkit.audit import audit

    names = ["<img src=x onerror=alert(1)>", "a|b", "line1\nline2", "=cmd|' calc'!A0", "`t`"]
    rng = np.random.default_rng(1)
    for c in names:
        (tmp_path / c).mkdir()
        for i in range(10):
            arr = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / c / f"+{i}.png")
    report = audit(tmp_path, label_issues=False, feature_duplicates=False)
    md = report.to_markdown()
    _assert_markdown_safe(md, set())
    _assert_inert_html(report.to_html())
    assert sorted(report.to_dict()["class_names"]) == sorted(names)
