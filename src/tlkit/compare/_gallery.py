"""The gallery of mistakes in the rendered reports: thumbnails in HTML, file names in Markdown.

Each model's :class:`~tlkit.compare._mistakes.MistakeGallery` is shown after its confusion
matrix. In ``report.html`` every image is a small JPEG (longest side
:data:`THUMBNAIL_SIZE` pixels) embedded as a ``data:`` URI, so the page stays one file;
all thumbnails of a page together take at most :data:`MAX_GALLERY_BYTES` bytes, and
past that the page shows a placeholder and says so. Images are read only through
:func:`tlkit._files.thumbnail` (regular files within the size and pixel limits); a file
that cannot be read gets a placeholder with the reason. Every caption (class names, file
names) is HTML-escaped; in ``report.md`` they go through the Markdown escaping of
:mod:`tlkit._escape`.
"""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

from tlkit._escape import md_text
from tlkit._files import thumbnail
from tlkit.compare._format import fmt, md_table
from tlkit.errors import FileLimitError

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.compare._mistakes import ImageFiles, Mistake, MistakeGallery
    from tlkit.compare._report import ComparisonReport, ModelResult

__all__ = [
    "CSS",
    "MAX_GALLERY_BYTES",
    "THUMBNAIL_SIZE",
    "ThumbnailBudget",
    "gallery_html",
    "gallery_markdown",
]

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
        Default :data:`MAX_GALLERY_BYTES` (read when the budget is made).
    size : int, optional
        Longest side in pixels; default :data:`THUMBNAIL_SIZE`.
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
        :data:`MAX_GALLERY_BYTES`; a fresh one by default.

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
