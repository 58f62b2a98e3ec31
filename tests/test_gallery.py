"""The gallery of mistakes in the comparison report (issue 20, item 4).

A tiny generated dataset (32 px images) is the test set, as a SplitPart; each "model" is
a set of probabilities the test controls, passed through ``add_predictions`` (and one
real Keras model through ``add``, for the order of the prediction pass).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tlkit._escape import md_cell
from tlkit.compare import ModelComparator, _gallery
from tlkit.compare._gallery import (
    GALLERY_SIZE,
    PAIR_EXAMPLES,
    ImageFiles,
    confused_pairs,
    mistake_gallery,
)
from tlkit.data import Sample, SplitPart
from tlkit.datasets import make_synthetic_dataset

CLASSES = ("cat", "dog", "fox")
COUNTS = {"cat": 10, "dog": 10, "fox": 8}


def make_part(root: Path, class_names=CLASSES, counts=COUNTS) -> SplitPart:
    """A SplitPart over a generated dataset (folder names are the keys of ``counts``)."""
    make_synthetic_dataset(root, counts, image_size=32, seed=0)
    samples = tuple(
        Sample(f"{folder}/{p.name}", label)
        for label, folder in enumerate(counts)
        for p in sorted((root / folder).iterdir())
    )
    return SplitPart("test", root, tuple(class_names), samples)


def controlled_probs(y: np.ndarray, n_wrong: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose argmax is wrong on ``n_wrong`` random images, each with its own
    confidence; returns (probabilities, predictions)."""
    rng = np.random.default_rng(seed)
    n, k = y.size, len(CLASSES)
    pred = y.copy()
    wrong = rng.choice(n, n_wrong, replace=False)
    pred[wrong] = (y[wrong] + rng.integers(1, k, n_wrong)) % k
    conf = rng.permutation(np.linspace(0.5, 0.98, n))  # distinct: no ties
    prob = np.zeros((n, k))
    prob[np.arange(n), pred] = conf
    for i in range(n):
        others = [j for j in range(k) if j != pred[i]]
        prob[i, others] = (1 - conf[i]) * np.array([0.7, 0.3])
    return prob, pred


@pytest.fixture
def part(tmp_path: Path) -> SplitPart:
    return make_part(tmp_path / "data")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def thumbnails(html: str) -> list[str]:
    return [a["src"] or "" for t, a in tags(html) if t == "img" and "jpeg" in (a["src"] or "")]


# -- what the gallery holds ------------------------------------------------------------------


def test_mistakes_are_the_wrong_predictions_most_confident_first_capped(part) -> None:
    y = part.labels
    prob, pred = controlled_probs(y, n_wrong=17)
    report = ModelComparator(part, n_boot=0).add_predictions("m", y_prob=prob).run()
    g = report["m"].gallery
    wrong = np.flatnonzero(pred != y)
    assert g.n_mistakes == wrong.size == 17
    conf = prob[wrong, pred[wrong]]
    want = wrong[np.argsort(-conf)][:GALLERY_SIZE]
    assert [m.index for m in g.mistakes] == want.tolist()
    assert len(g.mistakes) == GALLERY_SIZE < 17
    ps = [m.p_predicted for m in g.mistakes]
    assert ps == sorted(ps, reverse=True)
    for m in g.mistakes:
        assert m.true == CLASSES[y[m.index]] != m.predicted == CLASSES[pred[m.index]]
        assert m.p_predicted == pytest.approx(prob[m.index, pred[m.index]])
        assert m.p_true == pytest.approx(prob[m.index, y[m.index]])
        assert m.path == part.samples[m.index].path  # relative to the split's root
    # JSON: the same, paths relative, nothing of the machine's folders
    d = json.loads(report.to_json())
    entry = d["models"][1]
    assert list(entry)[-1] == "gallery" and d["models"][0]["gallery"] is None
    assert [x["index"] for x in entry["gallery"]["mistakes"]] == want.tolist()
    assert entry["gallery"]["mistakes"][0] == g.mistakes[0].to_dict()
    assert str(part.root) not in json.dumps(entry["gallery"])
    assert entry["gallery"]["note"] is None


def test_size_argument_and_ties_keep_test_order() -> None:
    files = ImageFiles(tuple(f"a/{i}.png" for i in range(6)), "/r")
    prob = np.full((6, 2), 0.5)
    g = mistake_gallery([0] * 6, [1] * 6, prob, ["a", "b"], files, size=4)
    assert [m.index for m in g.mistakes] == [0, 1, 2, 3]
    assert g.n_mistakes == 6
    assert files.file("a/1.png") == os.path.join("/r", "a", "1.png")


def test_confused_pairs_are_counted(part) -> None:
    y = part.labels
    prob, pred = controlled_probs(y, n_wrong=15, seed=3)
    g = ModelComparator(part, n_boot=0).add_predictions("m", y_prob=prob).run()["m"].gallery
    counts = Counter((CLASSES[t], CLASSES[p]) for t, p in zip(y, pred, strict=True) if t != p)
    got = [(c.true, c.predicted, c.count) for c in g.confused_pairs]
    want = sorted(((t, p, n) for (t, p), n in counts.items()), key=lambda x: -x[2])
    assert [n for *_, n in got] == [n for *_, n in want][: len(got)]
    assert all(counts[(t, p)] == n for t, p, n in got)
    for c in g.confused_pairs:
        assert 0 < len(c.examples) <= min(PAIR_EXAMPLES, c.count)
        for m in c.examples:
            assert (m.true, m.predicted) == (c.true, c.predicted)
        ps = [m.p_predicted for m in c.examples]
        assert ps == sorted(ps, reverse=True)  # its most confident mistakes


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(2, 6),
    data=st.data(),
)
def test_confused_pair_counts_sum_to_the_mistakes(k: int, data) -> None:
    n = data.draw(st.integers(0, 60))
    y = data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    p = data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    pairs = confused_pairs(y, p, k)
    mistakes = sum(a != b for a, b in zip(y, p, strict=True))
    assert sum(c for *_, c in pairs) == mistakes
    assert all(t != q and c > 0 for t, q, c in pairs)
    assert [c for *_, c in pairs] == sorted((c for *_, c in pairs), reverse=True)
    assert Counter({(t, q): c for t, q, c in pairs}) == Counter(
        (a, b) for a, b in zip(y, p, strict=True) if a != b
    )
    g = mistake_gallery(y, p, None, [str(i) for i in range(k)], None, pairs=k * k)
    assert g.n_mistakes == mistakes == sum(c.count for c in g.confused_pairs)


# -- the HTML page ---------------------------------------------------------------------------


def test_html_embeds_small_thumbnails_and_nothing_external(part) -> None:
    big = part.root / "cat" / "cat_0000.jpg"
    Image.new("RGB", (300, 200), "red").save(big, "JPEG")
    y = part.labels
    prob, _ = controlled_probs(y, n_wrong=10)
    prob[0] = [0.01, 0.97, 0.02]  # the big image: the most confident mistake
    report = ModelComparator(part, n_boot=0).add_predictions("m", y_prob=prob).run()
    html = report.to_html()
    assert "<h3>What it gets wrong</h3>" in html
    thumbs = thumbnails(html)
    assert len(thumbs) >= GALLERY_SIZE
    for src in thumbs:
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert im.format == "JPEG" and max(im.size) <= _gallery.THUMBNAIL_SIZE
    first = Image.open(io.BytesIO(base64.b64decode(thumbs[0].split(",", 1)[1])))
    assert first.size == (96, 64)
    for tag, attrs in tags(html):
        for key in ("src", "href", "srcset", "poster", "action"):
            value = attrs.get(key)
            assert value is None or value.startswith("data:image/"), (tag, key, value)
    assert "url(" not in html and "@import" not in html
    assert "http" not in html.split("<body>")[1]


def test_hostile_class_and_file_names_are_escaped(tmp_path: Path) -> None:
    script = "<script>alert(1)</script>"
    part = make_part(tmp_path / "d", class_names=(script, "dog", "fox"))
    hostile = part.root / "cat" / 'a"<b onerror=x.png'
    os.replace(part.root / part.samples[0].path, hostile)
    samples = (Sample('cat/a"<b onerror=x.png', 0), *part.samples[1:])
    part = SplitPart("test", part.root, part.class_names, samples)
    y = part.labels
    prob, _ = controlled_probs(y, n_wrong=12)
    prob[0] = [0.01, 0.97, 0.02]
    report = ModelComparator(part, n_boot=0).add_predictions("m", y_prob=prob).run()
    html = report.to_html()
    assert script not in html and 'a"<b' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&quot;&lt;b onerror=x.png" in html
    for tag, attrs in tags(html):
        assert tag != "script"
        assert not any(a.lower().startswith("on") for a in attrs), (tag, attrs)
    md = report.to_markdown()
    outside_fences = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", md, flags=re.S | re.M)
    assert script not in outside_fences and 'a"<b' not in md  # sklearn's text is fenced
    assert md_cell('cat/a"<b onerror=x.png') in md and md_cell(script) in md
    d = json.loads(report.to_json())
    assert d["models"][1]["gallery"]["mistakes"][0]["path"] == 'cat/a"<b onerror=x.png'
    assert d["models"][1]["gallery"]["mistakes"][0]["true"] == script


def test_byte_cap_stops_adding_thumbnails_and_says_so(part, monkeypatch) -> None:
    y = part.labels
    prob, _ = controlled_probs(y, n_wrong=14)
    report = (
        ModelComparator(part, n_boot=0)
        .add_predictions("m", y_prob=prob)
        .add_predictions("m2", y_prob=prob[::-1].copy())
        .run()
    )
    full = thumbnails(report.to_html())
    cap = sum(len(s) for s in full[:3])
    monkeypatch.setattr(_gallery, "MAX_GALLERY_BYTES", cap)
    html = report.to_html()
    kept = thumbnails(html)
    assert kept == full[:3]  # in page order, then none: the budget is spent
    assert sum(len(s) for s in kept) <= cap
    assert "thumbnail budget is spent" in html
    notes = re.findall(r'<p class="small gallery-budget">(.*?)</p>', html)
    assert len(notes) == 2  # one per model that lost thumbnails
    assert f"limit of {cap:,} bytes (MAX_GALLERY_BYTES)" in notes[0]
    left = len(full) - 3
    assert sum(int(n.split()[0]) for n in notes) == left
    assert html.count('<div class="thumb-missing">not embedded') == left
    # the JSON still lists every mistake
    assert len(json.loads(report.to_json())["models"][1]["gallery"]["mistakes"]) == GALLERY_SIZE


def test_unreadable_files_get_a_placeholder_with_the_reason(part) -> None:
    y = part.labels
    prob = np.full((y.size, 3), 0.02)
    pred = (y + 1) % 3
    prob[np.arange(y.size), pred] = 0.96  # every image wrong
    paths = [part.root / s.path for s in part.samples]
    paths[0].unlink()
    paths[1].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths[2].unlink()
    os.mkfifo(paths[2])  # refused before it is opened: opening a FIFO would block
    report = ModelComparator(part, n_boot=0).add_predictions("m", y_prob=prob).run()
    html = report.to_html()
    missing = re.findall(r'<div class="thumb-missing">(.*?)</div>', html)
    assert "cannot read: missing (no such file)" in missing
    assert any(m.startswith("cannot read: not a readable image") for m in missing)
    assert "cannot read: not a regular file: a named pipe (FIFO)" in missing
    assert len(thumbnails(html)) > 0
    files = report.save(part.root.parent / "out")
    assert "report.html" in {f.name for f in files}


# -- when there is no gallery ----------------------------------------------------------------


def test_data_without_paths_gives_the_no_gallery_note(part) -> None:
    y = part.labels
    prob, _ = controlled_probs(y, n_wrong=9)
    x = np.zeros((y.size, 4, 4, 3), "float32")
    for data in ((x, y), y):
        report = ModelComparator(data, CLASSES, n_boot=0).add_predictions("m", y_prob=prob).run()
        g = report["m"].gallery
        assert g.note == _gallery.NO_FILES_NOTE and g.mistakes == () and g.files is None
        assert g.n_mistakes == 9 and sum(c.count for c in g.confused_pairs) <= 9
        assert all(c.examples == () for c in g.confused_pairs)
        html = report.to_html()
        assert "No gallery of mistakes: the test data has no image files" in html
        assert thumbnails(html) == []
        assert _gallery.NO_FILES_NOTE in report.to_markdown()
        assert json.loads(report.to_json())["models"][1]["gallery"]["note"] == g.note


def test_model_without_probabilities_shows_pairs_in_test_order(part) -> None:
    y = part.labels
    pred = (y + 1) % 3
    report = ModelComparator(part, n_boot=0).add_predictions("hard", pred).run()
    g = report["hard"].gallery
    assert g.mistakes == () and g.note == _gallery.NO_PROBABILITIES_NOTE
    first = g.confused_pairs[0]
    assert [m.index for m in first.examples] == list(range(PAIR_EXAMPLES))
    assert first.examples[0].p_predicted is None
    assert len(thumbnails(report.to_html())) == len(g.confused_pairs) * PAIR_EXAMPLES
    md = report.to_markdown()
    assert "Most confused pairs:" in md and "Most confidently wrong" not in md


def test_a_perfect_model_has_nothing_to_show(part) -> None:
    report = ModelComparator(part, n_boot=0).add_predictions("perfect", part.labels).run()
    g = report["perfect"].gallery
    assert (g.n_mistakes, g.mistakes, g.confused_pairs, g.note) == (0, (), (), None)
    assert "Nothing: all 28 test images are predicted right." in report.to_html()


def test_keras_model_through_add_lines_up_with_the_files(part) -> None:
    """The prediction pass of ``add`` reads the SplitPart in sample order."""
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    model.layers[-1].set_weights([rng.normal(0, 0.05, (3, 3)).astype("float32"), np.zeros(3)])
    report = ModelComparator(part, n_boot=0).add("tiny", model, measure_cost=False).run()
    r = report["tiny"]
    g = r.gallery
    wrong = np.flatnonzero(r.y_pred != part.labels)
    assert g.n_mistakes == wrong.size
    for m in g.mistakes:
        assert m.path == part.samples[m.index].path
        assert m.true == CLASSES[part.labels[m.index]]
        assert m.p_predicted == pytest.approx(float(r.y_prob[m.index].max()))


def test_the_guide_states_the_limits() -> None:
    """docs/guide/comparing.rst writes the gallery's limits out: they must be the code's."""
    from tlkit.compare import _gallery

    page = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "comparing.rst").read_text()
    page = " ".join(page.split())
    assert f"the {_gallery.GALLERY_SIZE} images it got wrong" in page
    assert f"the {_gallery.CONFUSED_PAIRS} most frequent (true, predicted) class pairs" in page
    assert f"up to {_gallery.PAIR_EXAMPLES} example images" in page
    assert f"longest side {_gallery.THUMBNAIL_SIZE} px" in page
    assert f"at most {_gallery.MAX_GALLERY_BYTES // 1_000_000} MB" in page
