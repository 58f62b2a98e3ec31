"""Mutation testing of the modules that carry guarantees (run on demand, not in CI).

A small driver over the mutation engine of ``mutmut`` 2 (``pip install
"mutmut==2.5.1"``, in the ``mutation`` extra): mutmut generates the mutants
(operators, numbers, comparisons, ``and``/``or``, keywords, strings...), this
script picks the ones inside the functions that carry a promise, applies each to
a **private copy** of ``src/`` (the checkout is never modified), runs only the
tests that cover that function (stopping at the first failure), and reports
which mutants survived. Two mutants run at a time, niced.

Targets (module: functions; the tests that run against them):

* the checkpoint reader, ``backbones/_torch_checkpoint.py`` (the file layouts) and
  ``backbones/_pickle_vm.py`` (opcode interpreter, allowlists, storages, bounds
  checks): all code but error-message helpers; ``tests/test_torch_pickle_hostile.py tests/test_torch_pickle.py``
* ``compare/_stats.py``: McNemar, Holm, the bootstrap;
  ``tests/test_compare_boundaries.py tests/test_compare_stats.py``
* ``compare/_verdict.py``: ``comparison_warnings`` (until issue 21 ``_pairwise`` and
  ``_warnings`` of ``compare/_comparator.py``); ``tests/test_compare_boundaries.py``
* ``data/_grouping.py`` (grouping and assignment), ``data/_splitter.py``:
  ``apportion``, ``_max_flow_01``, ``assign_groups``, ``_targets``,
  ``group_samples``; the splitter tests
* ``finetune/_pooling.py``: ``choose_among`` (the choice of the head's features);
  ``tests/test_pooling_choice.py``
* ``finetune/_probe.py``: ``fit_probe``, ``_all_classes``, ``_row_space``,
  ``start_head``, ``LinearProbe.from_sklearn``, ``LinearProbe.probabilities`` (the
  linear probe, the row-space reduction and the head started from a probe);
  ``tests/test_probe.py`` and the row-space tests of ``tests/test_pooling_choice.py``
* ``data/_split.py``: ``Split.load`` and its checks; ``tests/test_manifest.py``
* ``data/_manifest.py``: the manifest schema, root confinement and edit checks;
  ``tests/test_manifest_hostile.py``, ``tests/test_manifest_trust.py``

Usage::

    python tools/mutation.py --list                  # count mutants per target
    python tools/mutation.py                         # run all targets (about 20 min)
    python tools/mutation.py --target stats --jobs 2
    python tools/mutation.py --tree /tmp/old-checkout  # score another checkout

The tests import the reader (``tlkit.backbones._torch_checkpoint`` and ``_pickle_vm``) through a pytest plugin
(``tools/_mutation_stub.py``) that skips ``tlkit.backbones/__init__``, so
no mutant run pays for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Target:
    name: str
    module: str  # relative to src/tlkit
    functions: tuple[str, ...]  # qualified names ("Class.method"); () = the whole module
    tests: tuple[str, ...]
    exclude: tuple[str, ...] = ()  # functions left out (messages only)
    pytest_args: tuple[str, ...] = ()
    stub_backbones: bool = False  # load tools/_mutation_stub.py (no TensorFlow)
    fallback_tests: tuple[str, ...] = ()  # when a checkout has none of ``tests`` (older ones)


TARGETS = [
    *(
        Target(
            name,
            module,
            (),
            ("tests/test_torch_pickle_hostile.py", "tests/test_torch_pickle.py"),
            exclude=("_r", "_describe", "refuse"),
            stub_backbones=True,
        )
        for name, module in (
            ("torch_checkpoint", "backbones/_torch_checkpoint.py"),
            ("pickle_vm", "backbones/_pickle_vm.py"),
        )
    ),
    Target(
        "stats",
        "compare/_stats.py",
        (),
        ("tests/test_compare_boundaries.py", "tests/test_compare_stats.py"),
    ),
    Target(
        "comparator_warnings",
        "compare/_verdict.py",
        ("comparison_warnings",),
        ("tests/test_compare_boundaries.py",),
        fallback_tests=("tests/test_compare_stats.py", "tests/test_compare_report.py"),
    ),
    Target(
        "splitter_assign",
        "data/_grouping.py",
        ("apportion", "_max_flow_01", "assign_groups", "split_targets"),
        (
            "tests/test_splitter_determinism.py",
            "tests/test_splitter_properties.py",
            "tests/test_splitter.py",
        ),
        pytest_args=("-k", "not auto_executor and not process_executor"),
    ),
    Target(
        "splitter",
        "data/_splitter.py",
        ("DatasetSplitter._targets",),
        (
            "tests/test_splitter_determinism.py",
            "tests/test_splitter_properties.py",
            "tests/test_splitter.py",
        ),
        pytest_args=("-k", "not auto_executor and not process_executor"),
    ),
    Target(
        "splitter_groups",
        "data/_grouping.py",
        ("group_samples",),
        (
            "tests/test_splitter_determinism.py",
            "tests/test_splitter_properties.py",
            "tests/test_splitter.py",
        ),
        pytest_args=("-k", "not auto_executor and not process_executor"),
    ),
    Target(
        "boundary",
        "finetune/_boundary.py",
        ("find_cut", "_below", "view_batches", "shared_cut", "predict_rows", "fill_views"),
        ("tests/test_boundary_cache.py",),
    ),
    Target(
        "kept_weights",
        "finetune/_callbacks.py",
        ("smoothed", "mean_weights", "BestEpoch.on_epoch_end", "BestEpoch.on_train_end"),
        ("tests/test_finetune.py",),
        pytest_args=("-k", "smoothed or stretch or mean_weights"),
    ),
    Target(
        "pooling",
        "finetune/_pooling.py",
        ("choose_among",),
        ("tests/test_pooling_choice.py",),
        pytest_args=("-k", "not trains_what_blocks and not keeps_the_last_layer"),
    ),
    Target(
        "probe",
        "finetune/_probe.py",
        (
            "fit_probe",
            "_all_classes",
            "_row_space",
            "start_head",
            "LinearProbe.from_sklearn",
            "LinearProbe.probabilities",
        ),
        ("tests/test_probe.py", "tests/test_pooling_choice.py"),
        pytest_args=(
            "-k",
            "maps_its_fit or best_strength or without_training_images or computes_the_probe "
            "or hidden_layer or row_space",
        ),
    ),
    Target(
        "split_load",
        "data/_split.py",
        ("Split.load", "_leaks_and_edits", "_load_warnings", "_leaks", "_check_file"),
        ("tests/test_manifest.py", "tests/test_manifest_trust.py"),
    ),
    Target(
        "manifest_schema",
        "data/_manifest.py",
        ("read_manifest", "parse_manifest", "_parse_sample", "_check_params", "check_relative"),
        ("tests/test_manifest_hostile.py", "tests/test_manifest.py"),
    ),
    Target(
        "manifest_trust",
        "data/_manifest.py",
        ("resolve_root", "check_inside", "edit_problems"),
        ("tests/test_manifest_trust.py",),
    ),
]


@dataclass
class Named:
    """A hand-written mutant: one or more ``(old, new)`` edits of a module, all applied."""

    name: str
    module: str | tuple[str, ...]  # relative to src/tlkit; a tuple: the first that exists
    edits: tuple[tuple[tuple[str, str], ...], ...]  # alternatives (old code, new code)
    tests: tuple[str, ...]
    stub_backbones: bool = False


# The mutants issue 13 found surviving, in the old and the new code (the first
# alternative whose "old" text is present is applied). A tuple of modules names the
# current one first, then the one of older checkouts (``--tree``): before issue 11 the
# checkpoint reader was the one module ``_torch_pickle.py``.
NAMED = [
    Named(
        "reader allows builtins.getattr",
        ("backbones/_pickle_vm.py", "backbones/_torch_pickle.py"),
        (
            (
                (
                    '"collections OrderedDict": _ordered_dict,',
                    '"collections OrderedDict": _ordered_dict, "builtins getattr": getattr,',
                ),
                ("_CALLABLES = (_ordered_dict,", "_CALLABLES = (getattr, _ordered_dict,"),
            ),
            (
                (
                    '("collections", "OrderedDict"): collections.OrderedDict,',
                    '("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "getattr"): getattr,',
                ),
            ),
        ),
        ("tests/test_torch_pickle_hostile.py", "tests/test_torch_pickle.py"),
        stub_backbones=True,
    ),
    Named(
        "no bounds check on legacy storage views",
        ("backbones/_pickle_vm.py", "backbones/_torch_pickle.py"),
        (
            (
                (
                    "offset < 0 or view_numel < 0 or offset + view_numel > storage.numel",
                    "offset < 0 or view_numel < 0",
                ),
            ),
        ),
        ("tests/test_torch_pickle_hostile.py", "tests/test_torch_pickle.py"),
        stub_backbones=True,
    ),
    Named(
        "backward hooks accepted",
        ("backbones/_pickle_vm.py", "backbones/_torch_pickle.py"),
        (
            (("    if hooks:\n", "    if False:\n"),),
            (("    if backward_hooks:\n", "    if False:\n"),),
        ),
        ("tests/test_torch_pickle_hostile.py", "tests/test_torch_pickle.py"),
        stub_backbones=True,
    ),
    Named(
        "McNemar significance on the raw p",
        ("compare/_analysis.py", "compare/_comparator.py"),
        (
            (("bool(p < alpha)", "bool(t.p_value < alpha)"),),
            (("bool(p < self.alpha)", "bool(t.p_value < self.alpha)"),),
        ),
        (
            "tests/test_compare_boundaries.py",
            "tests/test_compare_stats.py",
            "tests/test_compare_report.py",
        ),
    ),
    Named(
        "baseline warning from the point estimate",
        ("compare/_verdict.py", "compare/_comparator.py"),
        ((("if ci.low <= b_bal:", "if bal <= b_bal:"),),),
        (
            "tests/test_compare_boundaries.py",
            "tests/test_compare_stats.py",
            "tests/test_compare_report.py",
        ),
    ),
    Named(
        "min_support: <= instead of <",
        ("compare/_verdict.py", "compare/_comparator.py"),
        (
            (("if n < min_support:", "if n <= min_support:"),),
            (("if n < self.min_support:", "if n <= self.min_support:"),),
        ),
        (
            "tests/test_compare_boundaries.py",
            "tests/test_compare_stats.py",
            "tests/test_compare_report.py",
        ),
    ),
    Named(
        "EXIF orientations not permuted with the paths",
        "data/_pipeline.py",
        ((("tf.constant(orientations[order], dtype", "tf.constant(orientations, dtype"),),),
        ("tests/test_pipeline_exif_shuffle.py", "tests/test_pipeline.py"),
    ),
    Named(
        "splitter orders ties by hash() instead of blake2b",
        "data/_grouping.py",
        (
            (
                (
                    'hashlib.blake2b(f"{seed}\\x00{g[0].path}".encode(), digest_size=8).digest()',
                    'hash(f"{seed}\\x00{g[0].path}").to_bytes(8, "little", signed=True)',
                ),
            ),
        ),
        (
            "tests/test_splitter_determinism.py",
            "tests/test_splitter_properties.py",
            "tests/test_splitter.py",
        ),
    ),
]


def code_lines(source: str, target: Target) -> set[int]:
    """1-based lines of the target's functions, without docstrings."""
    tree = ast.parse(source)
    wanted = set(target.functions)
    lines: set[int] = set()
    docstrings: set[int] = set()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = f"{prefix}{child.name}"
                body = child.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
                if isinstance(child, ast.ClassDef):
                    visit(child, qual + ".")
                    if not wanted and qual not in target.exclude:
                        lines.update(range(child.lineno, child.end_lineno + 1))
                elif (qual in wanted or not wanted) and qual not in target.exclude:
                    lines.update(range(child.lineno, child.end_lineno + 1))
            elif not wanted and not isinstance(child, (ast.Import, ast.ImportFrom, ast.Expr)):
                lines.update(range(child.lineno, child.end_lineno + 1))

    visit(tree, "")
    # The text of error messages is not mutated: a mutant there changes a message, not a
    # decision (the condition that raises is on the line before and is mutated).
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            lines.difference_update(range(node.lineno, node.end_lineno + 1))
    if target.exclude:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in target.exclude:
                lines.difference_update(range(node.lineno, node.end_lineno + 1))
    return lines - docstrings


def mutants(path: Path, target: Target) -> list:
    from mutmut import ALL, Context, list_mutations

    source = path.read_text()
    keep = code_lines(source, target)
    context = Context(source=source, filename=str(path), mutation_id=ALL)
    return [m for m in list_mutations(context) if m.line_number + 1 in keep]


def apply(path: Path, source: str, mutation_id) -> str:
    from mutmut import Context, mutate

    mutated, count = mutate(Context(source=source, filename=str(path), mutation_id=mutation_id))
    assert count == 1, (mutation_id, count)
    return mutated


@dataclass
class Outcome:
    line: int
    text: str
    status: str  # killed, survived, timeout
    seconds: float
    diff: str = ""


@dataclass
class Worker:
    tree: Path
    src: Path = field(init=False)

    def __post_init__(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="tlkit-mutant-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        self.src = home / "src"
        shutil.copytree(self.tree / "src", self.src, ignore=shutil.ignore_patterns("__pycache__"))

    def run(self, target: Target, mutation_id, original: str, timeout: float) -> Outcome:
        path = self.src / "tlkit" / target.module
        mutated = apply(path, original, mutation_id)
        path.write_text(mutated)
        try:
            start = time.perf_counter()
            status = "killed" if not run_tests(self.tree, self.src, target, timeout) else "survived"
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            path.write_text(original)
        line = mutation_id.line_number + 1
        after = mutated.split("\n")[mutation_id.line_number]
        return Outcome(
            line, mutation_id.line.strip(), status, time.perf_counter() - start, after.strip()
        )


def run_named(tree: Path, worker: Worker) -> None:
    """Apply each hand-written mutant of NAMED and run its tests."""
    for m in NAMED:
        candidates = (m.module,) if isinstance(m.module, str) else m.module
        paths = [worker.src / "tlkit" / c for c in candidates]
        path = next((p for p in paths if p.exists()), paths[0])
        if not path.exists():
            print(f"{m.name}: not applicable to this checkout")
            continue
        original = path.read_text()
        for alternative in m.edits:
            if all(old in original for old, _ in alternative):
                mutated = original
                for old, new in alternative:
                    mutated = mutated.replace(old, new, 1)
                break
        else:
            print(f"{m.name}: not applicable to this checkout")
            continue
        path.write_text(mutated)
        start = time.perf_counter()
        try:
            passed = run_tests(tree, worker.src, m, timeout=900)  # type: ignore[arg-type]
        finally:
            path.write_text(original)
        status = "SURVIVED" if passed else "killed"
        print(f"{status:9s} {m.name} ({time.perf_counter() - start:.0f} s)")


def test_files(tree: Path, target: Target | Named) -> list[str]:
    files = [t for t in target.tests if (tree / t).exists()]
    if not files:
        files = [t for t in getattr(target, "fallback_tests", ()) if (tree / t).exists()]
    if not files:
        raise SystemExit(f"{target.name}: none of its test files exist in {tree}")
    return files


def run_tests(tree: Path, src: Path, target: Target | Named, timeout: float) -> bool:
    """True when the target's tests pass against the code under ``src``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(HERE)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cmd = [
        "nice",
        "-n",
        "10",
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-n",
        "0",  # one process per mutant: the runner already runs mutants side by side
        "-p",
        "no:cacheprovider",
        *(["-p", "_mutation_stub"] if target.stub_backbones else []),
        *getattr(target, "pytest_args", ()),
        *test_files(tree, target),
    ]
    # A session of its own, so that a timeout also ends the subprocesses the tests started
    # (a mutant can make one loop forever).
    proc = subprocess.Popen(
        cmd,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return proc.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="checkout to test")
    parser.add_argument("--target", action="append", help="target name(s); default: all")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="only count the mutants")
    parser.add_argument(
        "--sample", type=int, help="test this many mutants per target, a seeded random sample"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument(
        "--named", action="store_true", help="only the hand-written mutants issue 13 found"
    )
    parser.add_argument(
        "--survivors-of",
        type=Path,
        help="re-test only the mutants that survived in this earlier --json report",
    )
    parser.add_argument("--json", type=Path, help="write every outcome here")
    args = parser.parse_args()
    tree = args.tree.resolve()
    targets = [t for t in TARGETS if not args.target or t.name in args.target]
    report: dict[str, list[dict]] = {}
    workers = [Worker(tree) for _ in range(1 if args.list or args.named else args.jobs)]
    if args.named:
        run_named(tree, workers[0])
        return
    for target in targets:
        path = workers[0].src / "tlkit" / target.module
        original = path.read_text()
        found = mutants(path, target)
        total = len(found)
        if args.sample and args.sample < total:
            found = random.Random(f"{args.seed}:{target.name}").sample(found, args.sample)
        if args.survivors_of:
            earlier = json.loads(args.survivors_of.read_text()).get(target.name, [])
            wanted = {(o["line"], o["diff"]) for o in earlier if o["status"] == "survived"}
            found = [
                m
                for m in found
                if (m.line_number + 1, apply(path, original, m).split("\n")[m.line_number].strip())
                in wanted
            ]
        if args.list:
            print(f"{target.name:20s} {len(found):4d} mutants")
            continue
        start = time.perf_counter()
        if not run_tests(tree, workers[0].src, target, timeout=900):
            print(f"{target.name}: the tests fail without any mutant; skipped")
            continue
        baseline = time.perf_counter() - start
        timeout = 3 * baseline + 10
        outcomes: list[Outcome] = []
        with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
            free = list(workers)
            futures = {}
            queue = list(found)
            while queue or futures:
                while queue and free:
                    w = free.pop()
                    futures[pool.submit(w.run, target, queue.pop(0), original, timeout)] = w
                done, _ = concurrent.futures.wait(futures, return_when="FIRST_COMPLETED")
                for f in done:
                    free.append(futures.pop(f))
                    outcomes.append(f.result())
        killed = sum(o.status != "survived" for o in outcomes)
        score = killed / len(outcomes) if outcomes else 1.0
        print(
            f"{target.name}: {killed}/{len(outcomes)} killed ({score:.0%}) of {total} mutants, "
            f"baseline "
            f"{baseline:.1f} s, {time.perf_counter() - start:.0f} s"
        )
        for o in sorted(outcomes, key=lambda o: o.line):
            if o.status == "survived":
                print(f"  survived line {o.line}: {o.text}\n                  -> {o.diff}")
        report[target.name] = [o.__dict__ for o in outcomes]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
