"""The gallery of mistakes: what each model gets wrong, chosen, then shown in the reports.

Choosing. fastai's ``ClassificationInterpretation`` (``plot_top_losses``, ``most_confused``)
is the model. :func:`mistake_gallery` picks, for one model, the test images it got wrong
with the highest probability on its (wrong) prediction, and counts the (true, predicted)
class pairs it confuses, with a few example images each. The pictures need the test
images' files, so the gallery is only built when the test data is a
:class:`~tlkit.data.SplitPart`; otherwise, and for a model without probabilities, the
gallery says why it is empty. The JSON report lists it under each model's ``gallery`` key.

Showing. Each model's :class:`MistakeGallery` is shown after its confusion matrix
(:func:`gallery_html`, :func:`gallery_markdown`). In ``report.html`` every image is a small
JPEG (longest side ``THUMBNAIL_SIZE`` pixels) embedded as a ``data:`` URI, so the page
stays one file; all thumbnails of a page together take at most ``MAX_GALLERY_BYTES``
bytes, and past that the page shows a placeholder and says so. Images are read only
through :func:`tlkit._files.thumbnail` (regular files within the size and pixel limits); a
file that cannot be read gets a placeholder with the reason. Every caption (class names,
file names) is HTML-escaped; in ``report.md`` they go through the Markdown escaping of
:mod:`tlkit._escape`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._escape import md_text
from tlkit._files import thumbnail
from tlkit.compare._format import clean as _clean
from tlkit.compare._format import fmt, md_table
from tlkit.errors import FileLimitError

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._report import ComparisonReport, ModelResult

__all__ = [
    "CONFUSED_PAIRS",
    "CSS",
    "GALLERY_SIZE",
    "MAX_GALLERY_BYTES",
    "PAIR_EXAMPLES",
    "THUMBNAIL_SIZE",
    "ConfusedPair",
    "ImageFiles",
    "Mistake",
    "MistakeGallery",
    "ThumbnailBudget",
    "confused_pairs",
    "gallery_html",
    "gallery_markdown",
    "mistake_gallery",
]


#: Most confidently wrong test images listed per model (JSON, Markdown and HTML).
GALLERY_SIZE = 12

#: Most confused (true, predicted) class pairs listed per model.
CONFUSED_PAIRS = 5

#: Example images shown per confused pair (its most confident mistakes, or its first).
PAIR_EXAMPLES = 3

NO_FILES_NOTE = (
    "No gallery of mistakes: the test data has no image files (pass a SplitPart such as "
    "split.test to ModelComparator to see the images a model gets wrong)."
)
NO_PROBABILITIES_NOTE = (
    "No gallery of confident mistakes: the model gives no probabilities to order them by "
    "(pass y_prob to add_predictions); its confused pairs are shown with their first images."
)


@dataclass(frozen=True)
class ImageFiles:
    """The test images' files, in test-set order.

    Attributes
    ----------
    paths : tuple of str
        One path per test example: relative to ``root`` (with ``/``) when there is a root,
        else as given.
    root : str or None
        The folder the paths are relative to (a split's root).
    """

    paths: tuple[str, ...]
    root: str | None = None

    def file(self, path: str) -> str:
        """The path of the file to read for ``path`` (one of :attr:`paths`)."""
        if self.root is None:
            return path
        return os.path.join(self.root, *path.split("/"))

    @classmethod
    def of(cls, data: Any) -> ImageFiles | None:
        """The files of a SplitPart-like object (``samples`` and ``root``, or ``paths``)."""
        samples = getattr(data, "samples", None)
        root = getattr(data, "root", None)
        try:
            if samples is not None and root is not None:
                return cls(tuple(str(s.path) for s in samples), os.fspath(root))
            paths = getattr(data, "paths", None)
            if paths is not None:
                return cls(tuple(os.fspath(p) for p in paths))
        except (TypeError, AttributeError):
            return None
        return None


@dataclass(frozen=True)
class Mistake:
    """One test image a model got wrong (its fields are its parameters).

    Parameters
    ----------
    index : int
        Position in the test set.
    path : str
        The image file, relative to the split's root when there is one.
    true, predicted : str
        Class names.
    p_predicted, p_true : float or None
        The probability the model gave its prediction and the true class (``None``
        without probabilities).
    """

    index: int
    path: str
    true: str
    predicted: str
    p_predicted: float | None = None
    p_true: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the mistake as a JSON-ready dict."""
        return {
            "index": self.index,
            "path": self.path,
            "true": self.true,
            "predicted": self.predicted,
            "p_predicted": _clean(self.p_predicted),
            "p_true": _clean(self.p_true),
        }


@dataclass(frozen=True)
class ConfusedPair:
    """A (true, predicted) class pair a model confuses, with example images.

    Attributes
    ----------
    true, predicted : str
        Class names.
    count : int
        Test images of class ``true`` predicted as ``predicted``.
    examples : tuple of Mistake
        Up to ``PAIR_EXAMPLES`` of them (none without image files).
    """

    true: str
    predicted: str
    count: int
    examples: tuple[Mistake, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the pair as a JSON-ready dict."""
        return {
            "true": self.true,
            "predicted": self.predicted,
            "count": self.count,
            "examples": [m.to_dict() for m in self.examples],
        }


@dataclass(frozen=True)
class MistakeGallery:
    """What one model gets wrong on the test set.

    Attributes
    ----------
    n_mistakes : int
        Test images the model gets wrong.
    mistakes : tuple of Mistake
        The ``GALLERY_SIZE`` (12) most confidently wrong ones, highest probability of the
        (wrong) prediction first (ties: test-set order). Empty without image files or
        probabilities.
    confused_pairs : tuple of ConfusedPair
        The ``CONFUSED_PAIRS`` most frequent (true, predicted) pairs, largest first.
    files : ImageFiles or None
        Where the images are (not written to the JSON report: paths there are relative).
    note : str or None
        Why the gallery is empty or partial.

    Examples
    --------
    Each model's row of a report holds one (the baseline's is ``None``). With a
    SplitPart as test data the mistakes name their image files; from labels alone
    there are none to show, and the note says so:

    >>> from tlkit.compare import ModelComparator
    >>> report = ModelComparator([0, 0, 1], ["cat", "dog"], n_boot=0).add_predictions(
    ...     "m", y_prob=[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]).run()
    >>> g = report["m"].gallery
    >>> g.n_mistakes, [(p.true, p.predicted, p.count) for p in g.confused_pairs]
    (1, [('cat', 'dog', 1)])
    >>> print(g.note.split(":")[0])
    No gallery of mistakes
    """

    n_mistakes: int
    mistakes: tuple[Mistake, ...]
    confused_pairs: tuple[ConfusedPair, ...]
    files: ImageFiles | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the gallery as a JSON-ready dict (each model's ``gallery`` key)."""
        return {
            "n_mistakes": self.n_mistakes,
            "mistakes": [m.to_dict() for m in self.mistakes],
            "confused_pairs": [p.to_dict() for p in self.confused_pairs],
            "note": self.note,
        }


def confused_pairs(y_true: Any, y_pred: Any, num_classes: int) -> list[tuple[int, int, int]]:
    """Every (true, predicted, count) pair with ``true != predicted`` and ``count > 0``.

    Largest count first; ties in class order. The counts add up to the number of
    mistakes.

    Examples
    --------
    >>> confused_pairs([0, 0, 1, 1, 2], [1, 1, 0, 1, 0], 3)
    [(0, 1, 2), (1, 0, 1), (2, 0, 1)]
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    wrong = t != p
    counts = np.bincount(t[wrong] * num_classes + p[wrong], minlength=num_classes * num_classes)
    cells = [(int(c) // num_classes, int(c) % num_classes) for c in np.flatnonzero(counts)]
    return sorted(
        ((i, j, int(counts[i * num_classes + j])) for i, j in cells),
        key=lambda x: (-x[2], x[0], x[1]),
    )


def mistake_gallery(
    y_true: Any,
    y_pred: Any,
    y_prob: Any,
    class_names: Sequence[str],
    files: ImageFiles | None,
    *,
    size: int | None = None,
    pairs: int | None = None,
    examples: int | None = None,
) -> MistakeGallery:
    """What a model gets wrong: its most confidently wrong images and most confused pairs.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,)
        Test labels and the model's predictions.
    y_prob : array-like of float, shape (n, K), or None
        The model's class probabilities; the mistakes are ordered by
        ``y_prob[i, y_pred[i]]``.
    class_names : sequence of str
        The ``K`` class names.
    files : ImageFiles or None
        The test images' files; ``None`` gives no images, with a note saying so.
    size, pairs, examples : int, optional
        Mistakes, pairs, and examples per pair kept (default ``GALLERY_SIZE``,
        ``CONFUSED_PAIRS``, ``PAIR_EXAMPLES``).

    Returns
    -------
    MistakeGallery

    Examples
    --------
    >>> files = ImageFiles(("a/1.png", "a/2.png", "b/3.png"), "/data")
    >>> prob = [[0.4, 0.6], [0.9, 0.1], [0.8, 0.2]]
    >>> g = mistake_gallery([0, 0, 1], [1, 0, 0], prob, ["a", "b"], files)
    >>> [(m.path, m.predicted, m.p_predicted) for m in g.mistakes]
    [('b/3.png', 'a', 0.8), ('a/1.png', 'b', 0.6)]
    >>> [(p.true, p.predicted, p.count) for p in g.confused_pairs]
    [('a', 'b', 1), ('b', 'a', 1)]
    """
    size = GALLERY_SIZE if size is None else size
    pairs = CONFUSED_PAIRS if pairs is None else pairs
    examples = PAIR_EXAMPLES if examples is None else examples
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    prob = None if y_prob is None else np.asarray(y_prob, dtype=np.float64)
    if files is not None and len(files.paths) != t.size:
        files = None
    wrong = np.flatnonzero(t != p)
    if prob is not None:
        conf = prob[wrong, p[wrong]]
        wrong = wrong[np.lexsort((wrong, -conf))]  # most confident first, then test order

    order: list[int] = wrong.tolist()
    paths = files.paths if files is not None else ()

    def mistake(i: int) -> Mistake:
        return Mistake(
            index=int(i),
            path=paths[i],
            true=class_names[t[i]],
            predicted=class_names[p[i]],
            p_predicted=None if prob is None else float(prob[i, p[i]]),
            p_true=None if prob is None else float(prob[i, t[i]]),
        )

    top: tuple[Mistake, ...] = ()
    if files is not None and prob is not None:
        top = tuple(mistake(i) for i in order[:size])
    out = []
    for ti, pi, count in confused_pairs(t, p, len(class_names))[:pairs]:
        shown: tuple[Mistake, ...] = ()
        if files is not None:
            idx = [i for i in order if t[i] == ti and p[i] == pi][:examples]
            shown = tuple(mistake(i) for i in idx)
        out.append(ConfusedPair(class_names[ti], class_names[pi], count, shown))
    note = None
    if files is None:
        note = NO_FILES_NOTE
    elif prob is None and wrong.size:
        note = NO_PROBABILITIES_NOTE
    return MistakeGallery(len(order), top, tuple(out), files, note)


#: Longest side of a thumbnail in ``report.html``, in pixels.
THUMBNAIL_SIZE = 96

#: Most bytes of thumbnails (``data:`` URIs, base64) embedded in one ``report.html``
#: (2 MB, about 400 thumbnails of photos). Past it the page shows placeholders and says so;
#: ``report.json`` still lists every mistake.
MAX_GALLERY_BYTES = 2_000_000

CSS = """
.gallery-grid{display:flex;flex-wrap:wrap;gap:.4rem;margin:.4rem 0}
.gallery-grid figure{margin:0;width:7.5rem;font-size:.75rem;word-break:break-all}
.gallery-grid figure img{display:block;border:1px solid #ccc}
.thumb-missing{width:6rem;height:6rem;background:#eee;font-size:.7rem;overflow:hidden;
padding:.2rem;border:1px dashed #999}
.confused-pair{border:1px solid #ddd;border-radius:6px;padding:.3rem .6rem;margin:.4rem 0}
"""


class ThumbnailBudget:
    """Thumbnails for one HTML page: each file read once, at most ``max_bytes`` embedded.

    Parameters
    ----------
    max_bytes : int, optional
        Default ``MAX_GALLERY_BYTES`` (read when the budget is made).
    size : int, optional
        Longest side in pixels; default ``THUMBNAIL_SIZE``.
    """

    def __init__(self, max_bytes: int | None = None, size: int | None = None) -> None:
        self.max_bytes = MAX_GALLERY_BYTES if max_bytes is None else max_bytes
        self.size = THUMBNAIL_SIZE if size is None else size
        self.used = 0
        self.left_out = 0
        self._cache: dict[str, tuple[str, str]] = {}

    @property
    def spent(self) -> bool:
        """Whether a thumbnail has been left out for want of room (none is added after)."""
        return self.left_out > 0

    def data_uri(self, file: str) -> tuple[str, str]:
        """``(data URI, "")`` for the image ``file``, or ``("", why there is none)``."""
        if file not in self._cache:
            self._cache[file] = _read(file, self.size)
        uri, reason = self._cache[file]
        if not uri:
            return "", reason
        if self.spent or self.used + len(uri) > self.max_bytes:
            self.left_out += 1
            return "", "not embedded: the page's thumbnail budget is spent"
        self.used += len(uri)
        return uri, ""


def _read(file: str, size: int) -> tuple[str, str]:
    try:
        jpeg = thumbnail(file, size, "JPEG", quality=80)
    except FileNotFoundError:
        return "", "cannot read: missing (no such file)"
    except FileLimitError as exc:
        return "", f"cannot read: {exc.reason}"
    except Exception as exc:  # Pillow's errors: a placeholder, never a crash
        return "", f"cannot read: not a readable image ({type(exc).__name__})"
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"), ""


def _prob_text(m: Mistake) -> str:
    if m.p_predicted is None or m.p_true is None:
        return ""
    return f"p = {m.p_predicted:.3f} (true class {m.p_true:.3f})"


def _figure(m: Mistake, files: ImageFiles, budget: ThumbnailBudget) -> str:
    uri, reason = budget.data_uri(files.file(m.path))
    if uri:
        pic = f'<img src="{uri}" alt="{escape(m.path)}">'
    else:
        pic = f'<div class="thumb-missing">{escape(reason)}</div>'
    caption = [m.path, f"true: {m.true}", f"predicted: {m.predicted}", _prob_text(m)]
    cap = "<br>".join(escape(c) for c in caption if c)
    return f'<figure data-index="{m.index}">{pic}<figcaption>{cap}</figcaption></figure>'


def _count_text(report: ComparisonReport, g: MistakeGallery) -> str:
    n = int(report.y_true.size)
    if not g.n_mistakes:
        return f"Nothing: all {n} test images are predicted right."
    return f"{g.n_mistakes} of {n} test images are predicted wrong."


def gallery_html(
    report: ComparisonReport, r: ModelResult, budget: ThumbnailBudget | None = None
) -> str:
    """The "What it gets wrong" part of one model's section (``""`` without a gallery).

    Parameters
    ----------
    report : ComparisonReport
    r : ModelResult
        The model; its ``gallery`` is shown.
    budget : ThumbnailBudget, optional
        Shared by every model of the page, so that the page's thumbnails stay within
        ``MAX_GALLERY_BYTES``; a fresh one by default.

    Returns
    -------
    str
        HTML; every caption escaped.
    """
    g = r.gallery
    if g is None:
        return ""
    budget = ThumbnailBudget() if budget is None else budget
    before = budget.left_out
    out = [f'<div class="gallery" data-model="{escape(r.name)}">', "<h3>What it gets wrong</h3>"]
    out.append(f"<p>{escape(_count_text(report, g))}</p>")
    if g.note:
        out.append(f'<p class="small gallery-note">{escape(g.note)}</p>')
    if g.files is not None and g.mistakes:
        out.append(
            f"<h4>Most confidently wrong ({len(g.mistakes)} of {g.n_mistakes}): "
            "highest probability on the wrong class first</h4>"
        )
        out.append('<div class="gallery-grid">')
        out += [_figure(m, g.files, budget) for m in g.mistakes]
        out.append("</div>")
    if g.files is not None and g.confused_pairs:
        out.append("<h4>Most confused pairs</h4>")
        for p in g.confused_pairs:
            head = f"{p.true} → {p.predicted}: {p.count}"
            out.append(f'<div class="confused-pair"><p>{escape(head)}</p>')
            out.append('<div class="gallery-grid">')
            out += [_figure(m, g.files, budget) for m in p.examples]
            out.append("</div></div>")
    if budget.left_out > before:
        out.append(
            f'<p class="small gallery-budget">{budget.left_out - before} thumbnails not '
            f"embedded: this page's thumbnails reached the limit of {budget.max_bytes:,} bytes "
            "(MAX_GALLERY_BYTES); report.json lists every mistake.</p>"
        )
    out.append("</div>")
    return "\n".join(out)


def gallery_markdown(report: ComparisonReport, r: ModelResult) -> list[str]:
    """The "What it gets wrong" lines of one model in ``report.md`` (file names, no images).

    Without image files the lines are the count and the note saying why there is no
    gallery (the "Most confused" line above already lists the pairs).
    """
    g = r.gallery
    if g is None:
        return []
    lines = [f"What it gets wrong: {md_text(_count_text(report, g))}", ""]
    if g.note:
        lines += [md_text(g.note), ""]
    if g.files is None:
        return lines
    if g.confused_pairs:
        lines += ["Most confused pairs:", ""]
        lines += md_table(
            ["true", "predicted", "count", "examples"],
            [
                [p.true, p.predicted, str(p.count), ", ".join(m.path for m in p.examples)]
                for p in g.confused_pairs
            ],
        )
        lines += [""]
    if g.mistakes:
        lines += [
            f"Most confidently wrong ({len(g.mistakes)} of {g.n_mistakes}; "
            "highest probability on the wrong class first):",
            "",
        ]
        lines += md_table(
            ["file", "true", "predicted", "p(predicted)", "p(true)"],
            [[m.path, m.true, m.predicted, fmt(m.p_predicted), fmt(m.p_true)] for m in g.mistakes],
        )
        lines += [""]
    return lines
