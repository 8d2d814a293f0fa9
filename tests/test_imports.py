"""No import cycle among tinyzoo's modules, counting imports inside functions too.

The graph is read from the source with ``ast`` (nothing is imported). An edge A -> B is an
``import`` or ``from ... import`` in A, at module level or in a function body, of B, a
module of ``tinyzoo`` or ``tinyzoo_plugins``; importing ``a.b.c`` also runs the packages
``a.b`` and ``a``, so those count as imported too, except A's own parent packages (they are
running already when A is). Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = {"tinyzoo": REPO / "tinyzoo", "tinyzoo_plugins": REPO / "plugins"}


def modules_of(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file of each package folder."""
    found = {}
    for name, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _runs(node: ast.AST) -> list[ast.AST]:
    """The nodes under ``node`` that can run, leaving out ``if TYPE_CHECKING:`` bodies."""
    out, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.If) and "TYPE_CHECKING" in ast.unparse(item.test):
            stack.extend(item.orelse)
            continue
        out.append(item)
        stack.extend(ast.iter_child_nodes(item))
    return out


def _targets(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    """The modules of ``modules`` an import statement in ``package`` names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parent = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    targets = []
    for name in names:
        while name and name not in modules:  # `import a.b.attr` style: the longest module prefix
            name = name.rpartition(".")[0]
        if name:
            targets.append(name)
    return targets


def _where(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of the first import}, as the module doc describes."""
    graph: dict[str, dict[str, str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own_parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges: dict[str, str] = {}
        for node in _runs(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, package, modules):
                parts = target.split(".")
                implied = {".".join(parts[:i]) for i in range(1, len(parts))} - own_parents
                for module in [target, *sorted(implied & modules.keys())]:
                    if module != name:
                        edges.setdefault(module, f"{_where(path)}:{node.lineno}")
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as a list of modules (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    return "; ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_among_tinyzoos_modules():
    graph = import_graph(modules_of(PACKAGES))
    assert "tinyzoo.console" in graph["tinyzoo.cli"]  # the reader sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {describe(cycle, graph)}"


def test_the_checker_finds_cycles_through_functions_and_packages(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\nfrom . import a\n")
    (pkg / "c.py").write_text("import pkg.b\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.leaf import x\n")
    (pkg / "sub" / "leaf.py").write_text("from pkg.sub import other\nx = 1\n")
    (pkg / "sub" / "other.py").write_text("")
    (pkg / "d.py").write_text("from pkg.sub.leaf import x\n")
    (pkg / "e.py").write_text("")
    modules = modules_of({"pkg": pkg})
    graph = import_graph(modules)
    assert set(graph["pkg.a"]) == {"pkg.b"}  # inside a function
    assert set(graph["pkg.b"]) == {"pkg.a"}  # the TYPE_CHECKING import is left out
    assert set(graph["pkg.d"]) == {"pkg.sub.leaf", "pkg.sub"}  # the package runs too
    assert set(graph["pkg.sub.leaf"]) == {"pkg.sub.other"}  # not its own package
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "a.py").write_text("")
    assert find_cycle(import_graph(modules_of({"pkg": pkg}))) is None
    (pkg / "e.py").write_text("import pkg.d\n")  # e -> d -> sub -> leaf: no way back
    (pkg / "sub" / "other.py").write_text("def g():\n    import pkg.e\n")  # ... until other -> e
    cycle = find_cycle(import_graph(modules_of({"pkg": pkg})))
    assert cycle is not None and {"pkg.d", "pkg.e", "pkg.sub.other"} <= set(cycle)
