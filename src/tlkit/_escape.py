"""Escaping of user-derived text (class, file and model names) in the reports tlkit writes.

Names come from folder names, manifests and model files that a user may have got from
elsewhere, so they can hold HTML, Markdown syntax, newlines and control characters. Every
Markdown writer passes such text through :func:`md_text` (running text) or :func:`md_cell`
(a table cell), pre-formatted blocks through :func:`md_fence`, and every CSV writer passes
text cells through :func:`csv_cell`. HTML writers use :func:`html.escape`.

Plain text comes out unchanged, so reports of ordinary names read as before.

Examples
--------
>>> md_text("<script>alert(1)</script>")
'&lt;script&gt;alert(1)&lt;/script&gt;'
>>> md_cell("a|b\\nc")
'a\\\\|b\\\\nc'
>>> md_text("cnn_v2 0.867 [0.765, 0.946]")
'cnn_v2 0.867 [0.765, 0.946]'
>>> csv_cell("=cmd|' /C calc'!A0"), csv_cell("healthy")
("'=cmd|' /C calc'!A0", 'healthy')
"""

from __future__ import annotations

import re
import string

__all__ = ["CSV_FORMULA_PREFIXES", "csv_cell", "md_cell", "md_fence", "md_text", "visible"]

#: First characters that make a spreadsheet read a CSV cell as a formula (the OWASP list):
#: such a cell gets a leading ``'``.
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_PUNCT = frozenset(string.punctuation)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls, DEL, line/paragraph separators, and the bidirectional overrides and
# isolates that make text display in another order than it reads ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Markdown characters escaped with a backslash wherever they appear: code spans, emphasis,
# table pipes.
_MD_BACKSLASH = frozenset("`*|")
_MD_ENTITY = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# What would make a line that starts with the text a block (a quote needs ">", escaped anyway):
# an ATX heading, a bullet, a thematic break, a setext underline, a "~~~" fence, then an
# ordered-list marker.
_BLOCK_START = re.compile(r"#{1,6}(?=\s|$)|[-+](?=\s|$)|([-_])(\s*\1){2,}\s*$|=+\s*$|~{3,}")
_ORDERED_START = re.compile(r"(\d{1,9})([.)])(?=\s|$)")


def _visible_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep: str = "") -> str:
    r"""``text`` with control characters (and ``\n``) shown as escapes, except those in ``keep``.

    Examples
    --------
    >>> visible("a\nb\x1b[2Jc\u202e")
    'a\\nb\\x1b[2Jc\\u202e'
    >>> visible("a\nb", keep="\n")
    'a\nb'
    """
    return _CONTROL.sub(lambda m: m[0] if m[0] in keep else _visible_char(m[0]), str(text))


def _escape_inline(text: str, brackets: bool) -> str:
    pieces = []
    for i, ch in enumerate(text):
        if ch in _MD_ENTITY:
            pieces.append(_MD_ENTITY[ch])
        elif ch in _MD_BACKSLASH:
            pieces.append("\\" + ch)
        elif ch in "[]" and (brackets or (ch == "]" and text[i + 1 : i + 2] == "(")):
            # "](" is what makes a link or an image; plain brackets stay as they are
            pieces.append("\\" + ch)
        elif _CONTROL.fullmatch(ch):
            pieces.append(_visible_char(ch))
        else:
            pieces.append(ch)
    # A backslash escapes the punctuation after it: double it there (and at the end, where
    # the next character is the renderer's, e.g. a closing "**").
    for i, ch in enumerate(text):
        if ch == "\\" and (i + 1 == len(text) or pieces[i + 1][0] in _PUNCT):
            pieces[i] = "\\\\"
    return "".join(pieces)


def md_cell(text: object) -> str:
    r"""``text`` as one cell of a Markdown (GitHub-flavoured) table: literal, on one line.

    HTML-special characters become entities (``&lt;``, ``&gt;``, ``&amp;``); ``|``,
    backticks and ``*`` are backslash-escaped, as is a ``]`` before ``(`` (a link) and a
    backslash before punctuation; newlines and other control characters are shown as
    ``\n``, ``\x1b`` and the like, so a cell never breaks its row.

    Examples
    --------
    >>> md_cell("<img src=x onerror=alert(1)>")
    '&lt;img src=x onerror=alert(1)&gt;'
    >>> md_cell("`a` | [b](javascript:c)")
    '\\`a\\` \\| [b\\](javascript:c)'
    """
    return _escape_inline(str(text), brackets=False)


def md_text(text: object, *, brackets: bool = False) -> str:
    r"""``text`` as literal Markdown running text (a paragraph, heading, list item).

    Escapes as :func:`md_cell` does and, where the text would start a block at the start
    of a line (a heading ``# ``, a list item ``- `` or ``1. ``, a rule ``---``, a setext
    underline ``===``, a fence ``~~~``), escapes that too.
    ``brackets=True`` escapes every ``[`` and ``]``: for text inside ``[...]``, such as an
    image's alt text.

    Examples
    --------
    >>> md_text("# 1. not a heading")
    '\\# 1. not a heading'
    >>> md_text("confusion of a]b", brackets=True)
    'confusion of a\\]b'
    """
    s = _escape_inline(str(text), brackets)
    if _BLOCK_START.match(s):
        return "\\" + s
    m = _ORDERED_START.match(s)
    if m:
        return f"{m[1]}\\{m[2]}{s[m.end() :]}"
    return s


def md_fence(text: str, info: str = "") -> list[str]:
    r"""The lines of a fenced code block showing ``text`` verbatim.

    The fence is longer than any run of backticks in ``text``, so nothing in it can close
    the block early; control characters other than newlines and tabs are shown as escapes
    (a terminal that prints the file runs no escape sequence).

    Examples
    --------
    >>> md_fence("a ``` b")
    ['````', 'a ``` b', '````']
    """
    body = visible(str(text), keep="\n\t")
    runs = [len(r) for r in re.findall(r"`+", body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence + info, *body.split("\n"), fence]


def csv_cell(text: object) -> str:
    """``text`` for a CSV cell that a spreadsheet will not run as a formula.

    A cell starting with one of :data:`CSV_FORMULA_PREFIXES` gets a leading ``'`` (the
    OWASP rule against CSV injection); quoting is left to :mod:`csv`. Use it for text
    (names, paths, messages), not for numbers.

    Examples
    --------
    >>> csv_cell("@SUM(1)"), csv_cell("+1"), csv_cell("a=b")
    ("'@SUM(1)", "'+1", 'a=b')
    """
    s = str(text)
    return "'" + s if s.startswith(CSV_FORMULA_PREFIXES) else s
