"""AuditReport: what a data audit found, as text, Markdown, JSON and a self-contained HTML page."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from tlkit._atomic import atomic_write_text
from tlkit._escape import md_cell, md_fence
from tlkit._files import thumbnail

__all__ = ["SCHEMA", "AuditReport", "LabelIssue", "NearDuplicate", "SmallImage"]

#: Identifier and version of the JSON layout written by :meth:`AuditReport.to_json`.
SCHEMA = "tlkit.audit/2"

#: Rows shown per table in Markdown and HTML (JSON lists everything).
MAX_ROWS = 100

_METHOD_ORDER = {"identical": 0, "phash": 1, "features": 2}


@dataclass(frozen=True)
class NearDuplicate:
    """Two files that show (nearly) the same image.

    Attributes
    ----------
    path_a, path_b : str
        Paths relative to the dataset root (``path_a < path_b``).
    part_a, part_b : str
        Split part of each (``"train"``, ``"val"`` or ``"test"``).
    class_a, class_b : str
        Class of each.
    method : {"identical", "phash", "features"}
        The test that found the pair: same bytes (SHA-256), perceptual hash,
        or cosine similarity of backbone features.
    distance : float
        0 for identical files; Hamming distance in bits (of 256) for
        ``"phash"``; ``1 - cosine similarity`` of centred features for
        ``"features"``.
    """

    path_a: str
    path_b: str
    part_a: str
    part_b: str
    class_a: str
    class_b: str
    method: str
    distance: float

    @property
    def across_splits(self) -> bool:
        """True when the two files are in different split parts (a leak)."""
        return self.part_a != self.part_b

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {**asdict(self), "across_splits": self.across_splits}


@dataclass(frozen=True)
class LabelIssue:
    """An image whose given label a cross-validated probe doubts.

    Attributes
    ----------
    path : str
        Path relative to the dataset root.
    part : str
        Split part of the image.
    given : str
        Its label.
    suggested : str
        The class the out-of-sample probe finds most likely.
    score : float
        Out-of-sample probability of the given label (cleanlab's
        self-confidence; lower is more suspicious). Issues are ranked by it.
    """

    path: str
    part: str
    given: str
    suggested: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class SmallImage:
    """An image much smaller than the size the model will be trained at."""

    path: str
    part: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class AuditReport:
    """What :func:`tlkit.audit.audit` found.

    Attributes
    ----------
    root : pathlib.Path
        Dataset folder the paths are relative to.
    class_names : tuple of str
    class_counts : dict
        ``{class: {"train": n, "val": n, "test": n}}``.
    near_duplicates : list of NearDuplicate
        Pairs across splits first, then within one part; each group by method
        and distance.
    label_issues : list of LabelIssue
        Most suspicious first.
    small_images : list of SmallImage
        Images whose shorter side is below ``settings["small_side"]`` pixels.
    label_conflicts : list of (path, reason)
        Identical files under several classes (from the split's skipped list).
    unreadable : list of (path, reason)
        Every other file the split skipped, with the reason.
    settings : dict
        Thresholds and options the audit ran with.
    notes : list of str
        Checks that were not run, and why.

    Examples
    --------
    >>> r = AuditReport(Path("."), ("a", "b"), {"a": {"train": 8, "val": 1, "test": 1},
    ...                                        "b": {"train": 2, "val": 1, "test": 1}})
    >>> r.imbalance_ratio
    2.5
    """

    root: Path
    class_names: tuple[str, ...]
    class_counts: dict[str, dict[str, int]]
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    label_issues: list[LabelIssue] = field(default_factory=list)
    small_images: list[SmallImage] = field(default_factory=list)
    label_conflicts: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- derived ------------------------------------------------------------------------

    @property
    def num_images(self) -> int:
        """Images audited (all three parts)."""
        return sum(sum(v.values()) for v in self.class_counts.values())

    @property
    def imbalance_ratio(self) -> float:
        """Largest class over smallest class (all parts together)."""
        totals = [sum(v.values()) for v in self.class_counts.values()]
        return max(totals) / max(1, min(totals)) if totals else float("nan")

    @property
    def leaks(self) -> list[NearDuplicate]:
        """Near-duplicate pairs whose files sit in different split parts."""
        return [p for p in self.near_duplicates if p.across_splits]

    def __repr__(self) -> str:
        return (
            f"AuditReport(images={self.num_images}, near_duplicates={len(self.near_duplicates)} "
            f"({len(self.leaks)} across splits), label_issues={len(self.label_issues)})"
        )

    def summary(self) -> str:
        """Plain-text summary: one line per check.

        Returns
        -------
        str
        """
        s = self.settings
        by_method: dict[str, int] = {}
        for p in self.near_duplicates:
            by_method[p.method] = by_method.get(p.method, 0) + 1
        across: dict[str, int] = {}
        for p in self.leaks:
            across[p.method] = across.get(p.method, 0) + 1
        methods = ", ".join(
            f"{m}: {by_method[m]} ({across.get(m, 0)} across)"
            for m in sorted(by_method, key=lambda m: _METHOD_ORDER.get(m, len(_METHOD_ORDER)))
        )
        lines = [
            f"audit of {self.num_images} images in {len(self.class_names)} classes "
            f"under {str(self.root)!r}",
            f"near-duplicate pairs: {len(self.near_duplicates)}, across splits: "
            f"{len(self.leaks)}" + (f" [{methods}]" if methods else ""),
        ]
        if "hash_threshold" in s:
            thr = (
                f"  tests: identical bytes; pHash <= {s['hash_threshold']} of "
                f"{s.get('hash_bits', 256)} bits"
            )
            if s.get("feature_threshold") is not None:
                thr += f"; centred cosine of features >= {s['feature_threshold']}"
            else:
                thr += "; features not compared"
                if s.get("feature_duplicates") is False:
                    thr += " (feature_duplicates=False)"
            lines.append(thr)
        lines.append(f"likely label errors: {len(self.label_issues)}")
        if "label_probe" in s:
            lines.append(f"  from {s['label_probe']}")
        totals = {c: sum(v.values()) for c, v in self.class_counts.items()}
        lines.append(
            f"class imbalance (largest / smallest): {self.imbalance_ratio:.2f}  "
            + ", ".join(f"{c}={n}" for c, n in totals.items())
        )
        if "small_side" in s:
            size = s.get("image_size")
            shown = "x".join(map(str, size)) if isinstance(size, list) else size
            lines.append(
                f"images with a side under {s['small_side']} px (half the "
                f"{shown} px training size): {len(self.small_images)}"
            )
        lines.append(f"identical files under several classes: {len(self.label_conflicts)}")
        lines.append(f"unreadable or skipped files: {len(self.unreadable)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of everything (see :data:`SCHEMA`)."""
        return {
            "schema": SCHEMA,
            "root": str(self.root),
            "class_names": list(self.class_names),
            "class_counts": self.class_counts,
            "imbalance_ratio": self.imbalance_ratio,
            "near_duplicates": [p.to_dict() for p in self.near_duplicates],
            "label_issues": [x.to_dict() for x in self.label_issues],
            "small_images": [x.to_dict() for x in self.small_images],
            "label_conflicts": [{"path": p, "reason": r} for p, r in self.label_conflicts],
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            "settings": self.settings,
            "notes": list(self.notes),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_markdown(self) -> str:
        """The report as Markdown (tables cut at 100 rows; the JSON has all)."""
        out = ["# Data audit", "", *md_fence(self.summary()), ""]
        if self.near_duplicates:
            out += ["## Near-duplicate pairs", ""]
            out += _md_table(
                ["file A", "part", "class", "file B", "part", "class", "test", "distance"],
                [
                    [
                        p.path_a,
                        p.part_a,
                        p.class_a,
                        p.path_b,
                        p.part_b,
                        p.class_b,
                        p.method,
                        f"{p.distance:.3g}",
                    ]
                    for p in self.near_duplicates[:MAX_ROWS]
                ],
            )
            out += _more(len(self.near_duplicates))
        if self.label_issues:
            out += ["## Likely label errors", ""]
            out += _md_table(
                ["file", "part", "given", "suggested", "p(given)"],
                [
                    [x.path, x.part, x.given, x.suggested, f"{x.score:.3f}"]
                    for x in self.label_issues[:MAX_ROWS]
                ],
            )
            out += _more(len(self.label_issues))
        for title, rows in (
            ("Identical files under several classes", self.label_conflicts),
            ("Unreadable or skipped files", self.unreadable),
        ):
            if rows:
                out += [f"## {title}", ""]
                out += _md_table(["file", "reason"], [list(r) for r in rows[:MAX_ROWS]])
                out += _more(len(rows))
        if self.small_images:
            out += ["## Small images", ""]
            out += _md_table(
                ["file", "part", "width", "height"],
                [
                    [x.path, x.part, str(x.width), str(x.height)]
                    for x in self.small_images[:MAX_ROWS]
                ],
            )
            out += _more(len(self.small_images))
        return "\n".join(out)

    def to_html(self, thumb_size: int = 128) -> str:
        """A self-contained HTML page with thumbnails (base64 PNG) of each flagged image."""
        cache: dict[str, str] = {}

        def img(rel: str) -> str:
            if rel not in cache:
                cache[rel] = _thumbnail_data_uri(Path(self.root) / rel, thumb_size)
            if not cache[rel]:
                return '<div class="missing">cannot read</div>'
            return f'<img src="{cache[rel]}" alt="{escape(rel)}">'

        def fig(rel: str, *caption: str) -> str:
            cap = "<br>".join(escape(c) for c in caption)
            return f"<figure>{img(rel)}<figcaption>{cap}</figcaption></figure>"

        body = [f"<h1>Data audit</h1><pre>{escape(self.summary())}</pre>"]
        if self.near_duplicates:
            body.append(f"<h2>Near-duplicate pairs ({len(self.near_duplicates)})</h2>")
            body.append(_html_more(len(self.near_duplicates)))
            for p in self.near_duplicates[:MAX_ROWS]:
                cls = "pair leak" if p.across_splits else "pair"
                body.append(
                    f'<div class="{cls}">'
                    + fig(p.path_a, p.path_a, f"{p.part_a} · {p.class_a}")
                    + fig(p.path_b, p.path_b, f"{p.part_b} · {p.class_b}")
                    + f'<p class="why">{escape(p.method)}<br>distance {p.distance:.3g}'
                    + ("<br><b>across splits</b>" if p.across_splits else "")
                    + "</p></div>"
                )
        if self.label_issues:
            body.append(f"<h2>Likely label errors ({len(self.label_issues)})</h2>")
            body.append(_html_more(len(self.label_issues)))
            body.append('<div class="grid">')
            for x in self.label_issues[:MAX_ROWS]:
                body.append(
                    fig(
                        x.path,
                        x.path,
                        f"given {x.given} → suggested {x.suggested}",
                        f"p(given) = {x.score:.3f} · {x.part}",
                    )
                )
            body.append("</div>")
        if self.label_conflicts:
            body.append("<h2>Identical files under several classes</h2><div class='grid'>")
            body += [fig(p, p, r) for p, r in self.label_conflicts[:MAX_ROWS]]
            body.append("</div>")
        if self.small_images:
            body.append(f"<h2>Small images ({len(self.small_images)})</h2><div class='grid'>")
            body += [
                fig(x.path, x.path, f"{x.width} x {x.height} · {x.part}")
                for x in self.small_images[:MAX_ROWS]
            ]
            body.append("</div>")
        if self.unreadable:
            body.append("<h2>Unreadable or skipped files</h2><ul>")
            body += [f"<li>{escape(p)}: {escape(r)}</li>" for p, r in self.unreadable]
            body.append("</ul>")
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>tlkit data audit</title><style>{_CSS}</style></head><body>"
            + "\n".join(body)
            + "</body></html>\n"
        )

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write ``audit.html`` (self-contained), ``audit.md`` and ``audit.json``.

        Parameters
        ----------
        directory : str or os.PathLike
            Created if needed.

        Returns
        -------
        list of pathlib.Path
            The files written, HTML first.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        out = []
        for name, text in (
            ("audit.html", self.to_html()),
            ("audit.md", self.to_markdown() + "\n"),
            ("audit.json", self.to_json() + "\n"),
        ):
            out.append(atomic_write_text(d / name, text))
        return out


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; every cell literal text on one line (:func:`tlkit._escape.md_cell`)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return [*lines, ""]


def _more(n: int) -> list[str]:
    return [f"... and {n - MAX_ROWS} more (see audit.json)", ""] if n > MAX_ROWS else []


def _html_more(n: int) -> str:
    return (
        f'<p class="small">Showing the first {MAX_ROWS}; audit.json lists all {n}.</p>'
        if n > MAX_ROWS
        else ""
    )


def _thumbnail_data_uri(path: Path, size: int) -> str:
    try:
        png = thumbnail(path, size)
    except Exception:  # an unreadable file gets a placeholder, never a crash
        return ""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#222;line-height:1.4}
h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.85rem}
figure{display:inline-block;margin:.3rem;vertical-align:top;max-width:11rem;font-size:.75rem;
word-break:break-all}figure img{display:block;border:1px solid #ccc}
.pair{display:flex;align-items:flex-start;gap:.4rem;border:1px solid #ddd;border-radius:6px;
padding:.3rem;margin:.4rem 0}.pair.leak{border:2px solid #c62828;background:#fdecea}
.why{font-size:.85rem;margin:.3rem}.grid{display:flex;flex-wrap:wrap}
.small{color:#555;font-size:.88rem}.missing{width:8rem;height:8rem;background:#eee}
"""
