"""The layers contract: data flows one way, and so do imports.

data -> models -> train -> export / profile / mcu / runtime -> bridge -> demo / tune / benchmarks, with
the command-line front ends on top. A module imports only from its own layer or below, imports
inside functions included (they are read from the source, not from what Python happened to load),
and no two components import each other.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the design card's top-level folders and the import names they install as
FOLDERS = {"edgehar": "edgehar", "export": "edgehar.export", "firmware_bridge": "edgehar.bridge",
           "calib": "edgehar.calib"}
LAYERS = [  # lowest first
    ["edgehar", "edgehar.errors", "edgehar.atomic", "edgehar.outputs", "edgehar.digest", "edgehar.metrics",
     "edgehar.cachedir"],
    ["edgehar.data"],
    ["edgehar.text", "edgehar.scoring", "edgehar.card", "edgehar.cli_types"],
    ["edgehar.checkpoint", "edgehar.card_io"],
    ["edgehar.models", "edgehar.zeroshot", "edgehar.zoo"],
    ["edgehar.train"],
    # reading a model file (its graph, MACs, TFLM arena) serves both the Cortex-M runs and the
    # reports, which is why the profile package spans three layers
    ["edgehar.recipes", "edgehar.export", "edgehar.calib", "edgehar.interpreters", "edgehar.runtime",
     "edgehar.classes",
     "edgehar.profile.graph", "edgehar.profile.tflite_graph", "edgehar.profile.onnx_graph",
     "edgehar.profile.macs", "edgehar.profile.arena", "edgehar.profile.targets"],
    ["edgehar.mcu"],
    ["edgehar.profile"],
    ["edgehar.bridge"],
    ["edgehar.evaluate", "edgehar.demo", "edgehar.demo_wrist", "edgehar.bench", "edgehar.tune"],
]
# command-line front ends (`edgehar.cli`, `edgehar.train.cli`, `edgehar.profile.cli`, ...) sit
# on top: a thin CLI over its library may import from any layer
FRONT_END = re.compile(r"(^|\.)(\w*cli|__main__)$")


def modules() -> dict[str, Path]:
    found = {}
    for folder, name in FOLDERS.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = [p for p in f.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([name, *parts])] = f
    return found


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported edgehar module or name, line) for every import statement in the file."""
    package = package_of(module, path)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            base, names = import_targets(package, node)
            targets = [base] + names if isinstance(node, ast.ImportFrom) else names
            out += [(t, node.lineno) for t in targets if t == "edgehar" or t.startswith("edgehar.")]
    return out


def package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def import_targets(package: str, node) -> tuple[str, list[str]]:
    """(the module a `from` import reads, relative ones resolved; the full name of each thing
    the statement imports): `from .x import y` in package p -> ("p.x", ["p.x.y"])."""
    if isinstance(node, ast.Import):
        return "", [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return base, [f"{base}.{a.name}" for a in node.names]


def imported_modules(module: str, path: Path, known: dict) -> list[tuple[str, int]]:
    """`imports`, each name resolved to the module it is in (`from pkg import name`: pkg)."""
    return [(t if t in known or t.rpartition(".")[0] not in known else t.rpartition(".")[0], line)
            for t, line in imports(module, path)]


def placed(module: str) -> tuple[str, int]:
    """(the LAYERS entry that holds `module`, its layer): the longest entry it starts with."""
    if FRONT_END.search(module):
        return module, len(LAYERS)
    best = max(((p, i) for i, names in enumerate(LAYERS) for p in names  # "edgehar": __init__ only
                if module == p or p != "edgehar" and module.startswith(p + ".")),
               key=lambda e: len(e[0]), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def layer(module: str) -> int:
    return placed(module)[1]


def component(module: str) -> str:
    """The unit the no-cycle rule is about: the LAYERS entry that holds the module."""
    return placed(module)[0]


def test_every_import_goes_down_the_layers():
    known = modules()
    upward = []
    for module, path in sorted(known.items()):
        for target, line in imported_modules(module, path, known):
            if layer(target) > layer(module):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not upward, "imports up a layer:\n" + "\n".join(sorted(set(upward)))


def test_no_two_components_import_each_other():
    known = modules()
    edges = defaultdict(set)
    for module, path in known.items():
        if FRONT_END.search(module):
            continue
        for target, line in imported_modules(module, path, known):
            a, b = component(module), component(target)
            if a != b and not FRONT_END.search(target):
                edges[a].add((b, f"{path.relative_to(ROOT)}:{line}"))
    cycles = [f"{a} <-> {b} ({where})" for a in edges for b, where in edges[a]
              if a < b and any(t == a for t, _ in edges.get(b, ()))]
    assert not cycles, "components importing each other:\n" + "\n".join(sorted(cycles))


def test_the_contract_reads_function_level_imports(tmp_path):
    # the checker itself: an import inside a function counts like one at the top
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from edgehar.bridge import live\n    from . import card\n")
    assert imports("edgehar.zeroshot", src) == [("edgehar.bridge", 2), ("edgehar.bridge.live", 2),
                                                ("edgehar", 3), ("edgehar.card", 3)]
    assert layer("edgehar.bridge.live") > layer("edgehar.zeroshot")
    assert layer("edgehar.train.cli") == len(LAYERS) and layer("edgehar.data.corpus") == 1
    with pytest.raises(AssertionError, match="in no layer"):
        layer("edgehar.somewhere_new")


def test_the_command_line_is_built_without_the_heavy_libraries():
    """`edgehar --help` builds every sub-command's parser: torch, TensorFlow and scipy load only
    once a command runs."""
    import subprocess
    import sys

    code = ("import sys; from edgehar.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'scipy', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Libraries a command should pay for only once it runs (import time measured here: torch 1.6 s,
# tensorflow 5 s, onnx 0.8 s, scipy.signal 0.8 s, optuna 0.5 s, matplotlib.pyplot 0.45 s), so
# `edgehar --help`, a flag error or a light command never waits on them.
SLOW_TO_IMPORT = ("torch", "tensorflow", "keras", "tf_keras", "onnx", "onnxruntime", "scipy", "matplotlib",
                  "optuna", "sentence_transformers", "tflite_micro", "hypothesis")
DEFERRED = re.compile(r"#.*\bdeferred: \S")
# Modules whose parsers `edgehar --help` (and every flag error) builds: a command's front end
# imports what the command runs inside the function that runs it, so that building every
# sub-command's parser stays cheap.
PARSER_MODULES = {"edgehar.demo.command"}


def _slow(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in SLOW_TO_IMPORT)


def _import_statements(module: str, path: Path, known: dict) -> tuple[list, list]:
    """(module-level, inside-a-function) import statements as (node, names it loads), each
    name resolved to a module where it is one (`from pkg import name`: pkg.name or pkg)."""
    package = package_of(module, path)
    tree = ast.parse(path.read_text())
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    top, nested = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            base, names = import_targets(package, node)
            if isinstance(node, ast.ImportFrom):
                names = [n if n in known else base for n in names]
            (nested if id(node) in inside else top).append((node, names))
    return top, nested


def test_imports_inside_functions_only_defer_a_slow_library():
    """An import sits inside a function only when it would make its module load a slow library
    (SLOW_TO_IMPORT, directly or through the edgehar modules it loads) that the module does not
    load already; in a command-line front end (its parser is built at start-up); or when the
    line says why (`# deferred: <reason>`). Every other import sits at the top, where a reader
    sees what the module needs."""
    known = modules()
    statements = {m: _import_statements(m, p, known) for m, p in known.items()}

    def loads(name: str) -> list[str]:  # `import a.b.c` runs a, a.b and a.b.c
        parts = name.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

    memo: dict[str, set] = {}

    def slow_closure(module: str) -> set:
        if module not in memo:
            memo[module] = set()  # an import cycle adds nothing new
            memo[module] = set().union(*[slow_of(n, module) for node, names in statements[module][0]
                                         for n in names])
        return memo[module]

    def slow_of(name: str, importer: str) -> set:
        out = set()
        for q in loads(name):
            if q in known and q != importer:
                out |= slow_closure(q)
            elif _slow(q):
                out.add(q.split(".")[0])
        return out

    needless = []
    for module, (_, nested) in sorted(statements.items()):
        if FRONT_END.search(module) or module in PARSER_MODULES:
            continue
        path = known[module]
        lines = path.read_text().splitlines()
        for node, names in nested:
            if DEFERRED.search(lines[node.lineno - 1]):
                continue
            if not set().union(*[slow_of(n, module) for n in names]) - slow_closure(module):
                needless.append(f"{path.relative_to(ROOT)}:{node.lineno}: {', '.join(names)}")
    assert not needless, (f"{len(needless)} imports inside functions that load no slow library the module "
                          "lacks (move them to the top, or say `# deferred: <why>`):\n" + "\n".join(needless))
