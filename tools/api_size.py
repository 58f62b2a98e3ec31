"""How big tlkit is for a reader: modules, lines, public names, the longest functions.

Reads the source text only (the standard library's :mod:`ast`; nothing is
imported), so it runs on any checkout, old or new::

    python tools/api_size.py                 # this checkout
    python tools/api_size.py --tree /tmp/old # another checkout (its src/tlkit)
    git archive <rev> src | tar -x -C /tmp/old && python tools/api_size.py --tree /tmp/old

Counts:

* modules: ``.py`` files under ``src/tlkit`` (``__init__.py`` included);
* lines: their lines, docstrings and comments included;
* public names: the entries of ``__all__`` of every public module (no part of
  its dotted name starts with ``_``), counted once per module that lists them
  ("qualified") and once per name ("distinct"), the facade ``tlkit``'s lazily
  loaded names (``*_LAZY`` in its ``__all__``) included;
* function length: lines of a function or method without its docstring.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def _names(value: ast.expr, tree: ast.Module) -> list[str]:
    """The strings of an ``__all__`` list, ``*NAME`` of a dict literal in the module included."""
    out: list[str] = []
    for elt in getattr(value, "elts", []):
        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
            out.append(elt.value)
        elif isinstance(elt, ast.Starred) and isinstance(elt.value, ast.Name):
            for node in tree.body:
                target = getattr(node, "target", None) or next(
                    iter(getattr(node, "targets", [])), None
                )
                if getattr(target, "id", None) == elt.value.id and isinstance(node.value, ast.Dict):
                    out += [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
    return out


def measure(src: Path) -> dict[str, object]:
    """The counts for the package ``src/tlkit`` (``src`` is the folder holding ``tlkit``)."""
    root = src / "tlkit"
    files = sorted(root.rglob("*.py"))
    public: set[str] = set()
    lengths: list[tuple[int, str]] = []
    lines = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        lines += len(text.splitlines())
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        tree = ast.parse(text)
        if not any(p.startswith("_") for p in parts):
            for node in tree.body:
                targets = getattr(node, "targets", [])
                if any(getattr(t, "id", None) == "__all__" for t in targets):
                    public.update(f"{module}.{n}" for n in _names(node.value, tree))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                first = node.body[0]
                if (
                    isinstance(first, ast.Expr)
                    and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)
                ):
                    n -= (first.end_lineno or first.lineno) - first.lineno + 1
                lengths.append((n, f"{path.relative_to(src)}:{node.name}"))
    lengths.sort(reverse=True)
    return {
        "modules": len(files),
        "lines": lines,
        "public_qualified": len(public),
        "public_distinct": len({p.rsplit(".", 1)[1] for p in public}),
        "longest": lengths[:5],
        "over_80": sum(1 for n, _ in lengths if n > 80),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = p.parse_args()
    m = measure(args.tree / "src")
    print(
        f"{m['modules']} modules, {m['lines']} lines, {m['public_qualified']} public names "
        f"({m['public_distinct']} distinct), {m['over_80']} functions over 80 lines"
    )
    for n, where in m["longest"]:  # type: ignore[attr-defined]
        print(f"  {n:4d} lines  {where}")


if __name__ == "__main__":
    main()
