"""The modules of `latent/` import one another without a cycle.

The graph is read from the source with `ast`, not by importing. Both module-level and function-level imports count:
an import moved into a function only postpones a cycle to the first call, and the modules still depend on each
other. `if TYPE_CHECKING:` imports count as well (they are imports a reader has to follow). An edge goes to the
module named (`from latent.data.dataset import x` -> latent.data.dataset; `from latent.data import stream` ->
latent.data.stream when that is a module): a package's `__init__` runs first at import time, but it is the
package's public face, not a dependency of the module that happens to live inside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "latent"

pytestmark = pytest.mark.unit


def module_files(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package under `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name the module imports, anywhere in its body, relative imports resolved."""
    names = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from p import name` names the module p.name when there is one, else p (resolved by the caller)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of the package it imports (each name resolved to the longest module it names)."""
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """(one cycle through it, its modules) for each strongly connected component with more than one module (or a
    module importing itself), in a stable order (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        components.append(sorted(component))
    return [(_cycle_through(c, graph), c) for c in sorted(components)]


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle inside a strongly connected component, from its first module back to it."""
    members, first = set(component), component[0]
    paths = {first: [first]}
    queue = [first]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == first:
                return [*paths[node], first]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return component


def test_latent_has_no_import_cycles():
    modules = module_files()
    assert "latent.data.dataset" in modules, "the module walk found no modules"
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles in latent/:\n" + "\n".join(
        f"{' -> '.join(c)}  (modules importing one another: {', '.join(sorted(set(m)))})" for c, m in cycles
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a.py": "import pkg.b\n", "b.py": "def f():\n    from pkg import a\n"}, [["pkg.a", "pkg.b", "pkg.a"]]),
        ({"a.py": "from . import b\n", "b.py": "from .c import x\n", "c.py": "from pkg.a import y\n"}, 1),
        ({"__init__.py": "from pkg.a import x\n", "a.py": "from pkg.b import y\n", "b.py": "import os\n"}, []),
        ({"sub/__init__.py": "from pkg.sub.m import x\n", "sub/m.py": "from pkg.sub import other\n"}, 1),
        ({"sub/__init__.py": "from pkg.sub.m import x\n", "sub/m.py": "from pkg.sub import n\n", "sub/n.py": ""}, []),
    ],
    ids=["function-level", "relative", "package-face", "name-from-own-package", "module-from-own-package"],
)
def test_the_cycle_finder_sees_cycles_through_any_kind_of_import(tmp_path, files, expected):
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "pkg" / "__init__.py").touch()
    cycles = find_cycles(import_graph(module_files(tmp_path / "pkg")))
    if isinstance(expected, int):
        assert len(cycles) == expected, cycles
    else:
        assert [cycle for cycle, _ in cycles] == expected
