"""The import graph of the project's modules, read from their source with ``ast``: no import cycle
(function-level imports count: they are cycles deferred, not gone), no module importing another
module's private (underscore) names, dependencies pointing one way (DESIGN.md: jobs → operators →
udfs, connectors → udfs, ui → connectors → udfs), and nothing in the repository importing the
folders by their bare names (installed, they are ``streamdrift.<folder>``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobs", "operators", "udfs", "connectors", "ui")
ALLOWED = {  # what each folder may import besides itself (DESIGN.md, "Layout")
    "udfs": set(),
    "operators": {"udfs"},
    "connectors": {"udfs"},
    "ui": {"connectors", "udfs"},
    "jobs": {"operators", "connectors", "udfs", "ui"},
}


def modules(root: Path, packages=PACKAGES, prefix: str = "streamdrift") -> dict[str, Path]:
    """``streamdrift.<folder>.<module>`` → its file, for every ``.py`` file of the folders."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def _imports(module: str, path: Path):
    """``(line, imported module, imported name or None)`` of every import statement of a module."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base, alias.name


def import_graph(mods: dict[str, Path]) -> tuple[dict[str, dict[str, int]], list[str]]:
    """The edges ``module → {imported module: line}`` among ``mods`` (an import of ``a.b.c`` also
    runs the package ``a.b``'s ``__init__``), and the imports of another module's private names."""
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    private = []
    for module, path in mods.items():
        for line, base, name in _imports(module, path):
            target = f"{base}.{name}" if name and f"{base}.{name}" in mods else base
            if target not in mods:
                continue
            parents = [".".join(target.split(".")[:i]) for i in range(2, target.count(".") + 1)]
            for imported in [*parents, target]:
                if imported in mods and imported != module and not module.startswith(imported + "."):
                    edges[module].setdefault(imported, line)
            if name and target == base and name.startswith("_") and not name.startswith("__") and base != module:
                private.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}: "
                               f"imports {name} of {base}")
    return edges, private


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def _describe(component: list[str], edges) -> str:
    inside = [f"  {a} -> {b} (line {line})" for a in component for b, line in edges[a].items() if b in component]
    return "cycle of " + ", ".join(component) + ":\n" + "\n".join(inside)


MODULES = modules(ROOT)
EDGES, PRIVATE = import_graph(MODULES)


def test_the_graph_is_read():
    assert len(MODULES) > 50
    assert "streamdrift.operators.parse" in EDGES["streamdrift.jobs.monitoring_job"]  # a function-level import
    assert "streamdrift.udfs.window" in EDGES["streamdrift.udfs.batch"]
    assert "streamdrift.connectors.tsdb" in EDGES["streamdrift.connectors.tsdb.tdengine"] or \
        "streamdrift.connectors.tsdb.base" in EDGES["streamdrift.connectors.tsdb.tdengine"]


def test_the_cycle_finder_finds_cycles_and_private_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from pkg.sub.c import _hidden\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg import a\n")
    (pkg / "sub" / "c.py").write_text("from . import d\n_hidden = 1\n")
    (pkg / "sub" / "d.py").write_text("")
    mods = modules(tmp_path, ("pkg",), prefix="x")
    edges, private = import_graph({name.removeprefix("x."): path for name, path in mods.items()})
    # a → b → pkg.sub (its __init__) → a; c → d is no cycle
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.sub"]]
    assert edges["pkg.sub.c"] == {"pkg.sub.d": 1}
    assert [p.split(": ", 1)[1] for p in private] == ["imports _hidden of pkg.sub.c"]


def test_no_import_cycle_among_the_projects_modules():
    found = cycles(EDGES)
    assert not found, "\n".join(_describe(c, EDGES) for c in found)


def test_no_module_imports_another_modules_private_names():
    assert not PRIVATE, "\n".join(PRIVATE)


def test_dependencies_point_one_way():
    wrong = [f"{a} -> {b} (line {line})" for a, targets in EDGES.items() for b, line in targets.items()
             if b.split(".")[1] != a.split(".")[1] and b.split(".")[1] not in ALLOWED[a.split(".")[1]]]
    assert not wrong, "\n".join(wrong)


BARE = re.compile(r"^\s*(?:from|import)\s+(" + "|".join(PACKAGES) + r")(?:\.|\s|$)", re.M)


def test_nothing_imports_the_folders_by_their_bare_names():
    files = [p for p in ROOT.rglob("*.py")
             if not any(part.startswith(".") or part in ("build", "dist") for part in p.relative_to(ROOT).parts)]
    assert len(files) > 100
    bare = [f"{p.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
            for p in files for text in [p.read_text(encoding="utf-8")] for m in BARE.finditer(text)]
    assert not bare, "\n".join(bare)
