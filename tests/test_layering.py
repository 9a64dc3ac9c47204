"""The packages import only downwards: ir < frontends < passes < backends < compiler, runtime below backends.

Every ``.py`` file of the six top-level packages is parsed with ``ast``;
every import counts, wherever it is (inside functions, under
``TYPE_CHECKING``), and so does ``importlib.import_module("...")`` or
``__import__("...")`` with a literal name.  A failure names each offending
``file:line``.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ir", "frontends", "passes", "runtime", "backends", "compiler")

# What each package may not import (directly or lazily).
FORBIDDEN = {
    "ir": {"frontends", "passes", "runtime", "backends", "compiler"},
    "frontends": {"passes", "backends", "runtime", "compiler"},
    "passes": {"backends", "compiler", "runtime"},
    "runtime": {"frontends", "passes", "backends", "compiler"},
    "backends": {"compiler"},
    "compiler": set(),
}


class Edge(NamedTuple):
    source: str  # top-level package of the importing file
    target: str  # top-level package imported
    where: str   # file:line
    module: str  # the module named by the import

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.module}"


def _package_parts(path: Path) -> list[str]:
    """The dotted package a file belongs to, as parts (``passes/a.py`` -> ``["passes"]``)."""
    return list(path.relative_to(ROOT).parent.parts)


def _imported_modules(tree: ast.AST, path: Path):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package_parts(path)
                base = pkg[:len(pkg) - (node.level - 1)]
                yield node.lineno, ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value


@lru_cache(maxsize=None)
def cross_package_imports() -> tuple[Edge, ...]:
    edges = []
    for pkg in PACKAGES:
        files = sorted((ROOT / pkg).rglob("*.py"))
        assert files, f"no Python files under {pkg}/"
        for path in files:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in _imported_modules(tree, path):
                top = module.split(".")[0]
                if top in PACKAGES and top != pkg:
                    edges.append(Edge(pkg, top, f"{path.relative_to(ROOT)}:{line}", module))
    return tuple(edges)


def test_the_scan_sees_imports_of_every_kind():
    edges = cross_package_imports()
    found = {(e.source, e.target) for e in edges}
    # Known edges: module-level imports, and a lazy one inside a function.
    assert ("compiler", "backends") in found and ("backends", "runtime") in found
    assert ("passes", "ir") in found and ("frontends", "ir") in found
    lazy = [e for e in edges if e.where.startswith("backends/base.py") and e.module == "runtime.weights"]
    assert lazy, "imports inside functions must count"


def test_relative_imports_resolve_to_their_package():
    tree = ast.parse("from . import a\nfrom .. import b\nfrom ..x import y\nimport importlib\n"
                     "importlib.import_module('compiler.driver')\n")
    path = ROOT / "backends" / "cpu" / "kernels" / "mod.py"  # not read: only its place matters
    assert list(_imported_modules(tree, path)) == [
        (1, "backends.cpu.kernels"), (2, "backends.cpu"), (3, "backends.cpu.x"), (4, "importlib"),
        (5, "compiler.driver")]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_go_only_down(package):
    bad = [e for e in cross_package_imports() if e.source == package and e.target in FORBIDDEN[package]]
    assert not bad, (f"{package}/ may not import {', '.join(sorted(FORBIDDEN[package]))}; found:\n"
                     + "\n".join(f"  {e}" for e in bad))


def test_no_cycle_between_packages():
    graph = nx.DiGraph()
    graph.add_nodes_from(PACKAGES)
    where: dict[tuple[str, str], list[Edge]] = {}
    for e in cross_package_imports():
        graph.add_edge(e.source, e.target)
        where.setdefault((e.source, e.target), []).append(e)
    cycles = list(nx.simple_cycles(graph))
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle + [cycle[0]]))
        for a, b in zip(cycle, cycle[1:] + cycle[:1]):
            lines.extend(f"    {e}" for e in where[(a, b)][:3])
    assert not cycles, "import cycles between top-level packages:\n" + "\n".join(lines)


def test_one_definition_of_the_alignment():
    """The 64-byte alignment of weights, arena and buffers is ``ir.memory.ALIGNMENT``, defined once."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                        and node.value.value == 64:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [t.id for t in targets if isinstance(t, ast.Name) and "ALIGN" in t.id.upper()]
                    found += [(f"{path.relative_to(ROOT)}", node.lineno, n) for n in names]
    assert [(f, n) for f, _, n in found] == [("ir/memory.py", "ALIGNMENT")], \
        "\n".join(f"{f}:{line} defines {n} = 64" for f, line, n in found)
