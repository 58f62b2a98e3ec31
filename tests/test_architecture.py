"""The package's structure, checked: imports run one way, down the layers, with no circles.

Layers, bottom up (docs/development/architecture.rst explains the rule):

0. ``tlkit.errors``, ``tlkit._validation``, ``tlkit.protocols``, ``tlkit._version``, ``tlkit._escape``,
   ``tlkit._files``, ``tlkit._atomic``, ``tlkit._keras_model`` (a trained model as compare and export read it),
   ``tlkit._calibration``
1. ``tlkit.data``, ``tlkit.datasets``, ``tlkit.metrics`` (the headline metrics FineTuner and the reports share)
2. ``tlkit.augment``, ``tlkit.backbones``
3. ``tlkit.finetune``
4. ``tlkit.compare``, ``tlkit.export``, ``tlkit.audit``
5. ``tlkit.evaluate`` (cross-validation and learning curves, reported with ``tlkit.compare``)
6. ``tlkit.cli``
7. ``tlkit`` itself, the facade that re-exports the public names, and ``tlkit.__main__``

A module may import modules of a lower layer and of its own subpackage, never a higher layer
nor a sibling subpackage of its own layer (the layer-0 modules count as one unit). Imports under ``if TYPE_CHECKING:`` count for the
layers (a type-only import still couples two layers) but not for circles. There is no exception
list: a new module that breaks a rule is moved, or the rule here is changed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "tlkit"
# A module holds one concept whole; this is a ceiling for a reader, not a target to split to.
MAX_LINES = 900

LAYERS: dict[str, int] = {
    "tlkit.errors": 0,
    "tlkit._validation": 0,
    "tlkit.protocols": 0,
    "tlkit._version": 0,
    "tlkit._escape": 0,
    "tlkit._files": 0,
    "tlkit._atomic": 0,
    "tlkit._keras_model": 0,
    "tlkit._calibration": 0,
    "tlkit.data": 1,
    "tlkit.datasets": 1,
    "tlkit.metrics": 1,
    "tlkit.augment": 2,
    "tlkit.backbones": 2,
    "tlkit.finetune": 3,
    "tlkit.compare": 4,
    "tlkit.export": 4,
    "tlkit.audit": 4,
    "tlkit.evaluate": 5,
    "tlkit.cli": 6,
    "tlkit.__main__": 7,
    "tlkit": 7,
}

# Keras internals (``keras.src``) may be used in these modules only, each pinned by a test.
KERAS_PRIVATE_ALLOWED: set[str] = {"tlkit.augment._keras_seeding", "tlkit.finetune._saving"}


def _modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    mods = {}
    for path in (src / package).rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_ids(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def _imports(mods: dict[str, Path]) -> list[tuple[str, str, bool, int, str]]:
    """Every import as ``(importer, imported module, type-checking only, line, raw target)``."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_ids(tree)
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                targets = [
                    f"{name}.{a.name}" if f"{name}.{a.name}" in mods else name for a in node.names
                ]
            for raw in targets:
                if raw.split(".")[0] != PACKAGE:
                    edges.append((mod, "", id(node) in typing_only, node.lineno, raw))
                    continue
                target = resolve(raw)
                if target and target != mod:
                    edges.append((mod, target, id(node) in typing_only, node.lineno, raw))
    return edges


def _unit(mod: str) -> str:
    """The layer entry a module belongs to (its subpackage, or the module itself)."""
    parts = mod.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LAYERS:
            return ".".join(parts[:k])
    raise AssertionError(f"{mod} is in no layer: add it to LAYERS in {__file__}")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


MODULES = _modules()
EDGES = _imports(MODULES)


def test_every_module_has_a_layer():
    for mod in MODULES:
        _unit(mod)


def test_no_import_circles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for importer, target, typing_only, _, _ in EDGES:
        if target and not typing_only:
            graph[importer].add(target)
    assert _cycles(graph) == []


def test_imports_run_down_the_layers():
    bad = []
    for importer, target, _, line, _ in EDGES:
        if not target:
            continue
        a, b = _unit(importer), _unit(target)
        if a == b or LAYERS[a] == LAYERS[b] == 0:  # the foundation modules form one unit
            continue
        if LAYERS[b] >= LAYERS[a]:
            bad.append(
                f"{importer} (layer {LAYERS[a]}) line {line} imports {target} (layer {LAYERS[b]})"
            )
    assert bad == []


def _private_crossings(edges: list[tuple[str, str, bool, int, str]]) -> list[str]:
    """Imports of another subpackage's private modules (``tlkit.data._scan`` from ``tlkit.audit``)."""
    bad = []
    for importer, target, _, line, _ in edges:
        if not target:
            continue
        unit = _unit(target)
        if unit == target or _unit(importer) == unit or LAYERS[unit] == 0:
            continue
        if any(part.startswith("_") for part in target[len(unit) + 1 :].split(".")):
            bad.append(f"{importer} line {line} imports {target}: import it from {unit}")
    return bad


def test_subpackages_are_entered_through_their_public_names():
    """A subpackage's private modules are its own: others import what its ``__init__`` offers."""
    assert _private_crossings(EDGES) == []


def test_modules_are_small():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def test_keras_internals_are_isolated():
    bad = [
        f"{importer} line {line} imports {raw}"
        for importer, target, _, line, raw in EDGES
        if not target and raw.startswith("keras.src") and importer not in KERAS_PRIVATE_ALLOWED
    ]
    assert bad == []


def test_the_checker_finds_what_it_must(tmp_path):
    """The checks above can fail: a circle, an upward import and a relative import are seen."""
    pkg = tmp_path / PACKAGE
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from tlkit.data import a\n")
    (pkg / "data" / "__init__.py").write_text("from . import a\n")
    (pkg / "data" / "a.py").write_text("from tlkit.data import b\nimport keras.src.utils\n")
    (pkg / "data" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tlkit.errors\n"
        "from tlkit.data.a import x\n"
    )
    mods = _modules(tmp_path, PACKAGE)
    edges = _imports(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for importer, target, typing_only, _, _ in edges:
        if target and not typing_only:
            graph[importer].add(target)
    assert _cycles(graph) == [["tlkit.data.a", "tlkit.data.b"]]
    assert ("tlkit.errors", "tlkit.data.a") in {(e[0], e[1]) for e in edges}
    assert ("tlkit.data.b", "tlkit.errors", True) in {(e[0], e[1], e[2]) for e in edges}
    assert any(e[4] == "keras.src.utils" for e in edges)
    (pkg / "audit").mkdir()
    (pkg / "audit" / "__init__.py").write_text("")
    (pkg / "audit" / "c.py").write_text(
        "from tlkit.data._scan import x\nfrom tlkit.data import y\n"
    )
    (pkg / "data" / "_scan.py").write_text("")
    crossings = _private_crossings(_imports(_modules(tmp_path, PACKAGE)))
    assert crossings == ["tlkit.audit.c line 1 imports tlkit.data._scan: import it from tlkit.data"]


@pytest.mark.parametrize("layer_module", sorted(LAYERS))
def test_layer_entries_exist(layer_module):
    assert layer_module in MODULES, f"LAYERS names {layer_module}, which is not a module"
