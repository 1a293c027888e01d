"""The layering of `latent/`, read from the source with `ast` (nothing is imported): `latent.analysis` reaches no
store, table, workspace or tracking code, and nothing in `latent/` imports Prefect.

Every import counts, also those inside functions (a lazy import runs as soon as the function does); only imports
under `if TYPE_CHECKING:` are left out. Importing `a.b.c` also runs the packages `a` and `a.b`."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]

# What `latent.analysis` must never reach: external packages that are stores, orchestration or table I/O, and the
# project's own modules that read tables, own the workspace, load logged models or log to MLflow.
FORBIDDEN_EXTERNAL = ("mlflow", "prefect", "duckdb", "pyarrow")
FORBIDDEN_INTERNAL = (
    "latent.workspace",
    "latent.tables",
    "latent.tracking",
    "latent.query",
    "latent.data",
    "latent.explore",
    "latent.report",
    "latent.models.io",
)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def index_modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of a package directory (its name the package's)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The dotted names a module imports: project modules (with their parent packages) and top-level names of
    external packages."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            if target in modules:
                found.update(t for t in _with_parents(target) if t in modules)
            elif target and target.split(".")[0] not in {n.split(".")[0] for n in modules}:
                found.add(target.split(".")[0])
    return found


def forbidden_reach(
    modules: dict[str, Path], start: str, external: tuple[str, ...], internal: tuple[str, ...]
) -> list[str]:
    """One line per forbidden import reachable from the modules under `start`, with the chain that reaches it."""
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    queue = deque((name, (name,)) for name in modules if name == start or name.startswith(start + "."))
    seen = {name for name, _ in queue}
    problems = []
    while queue:
        name, chain = queue.popleft()
        for target in sorted(graph[name]):
            bad_internal = any(target == p or target.startswith(p + ".") for p in internal)
            if target in external or bad_internal:
                problems.append(f"{' -> '.join(chain)} imports {target}")
            elif target in modules and target not in seen:
                seen.add(target)
                queue.append((target, (*chain, target)))
    return problems


def test_analysis_reaches_no_store_table_workspace_or_tracking_code():
    modules = index_modules(ROOT / "latent")
    assert any(name.startswith("latent.analysis.metrics.") for name in modules)  # the walk sees the metrics
    problems = forbidden_reach(modules, "latent.analysis", FORBIDDEN_EXTERNAL, FORBIDDEN_INTERNAL)
    assert not problems, "latent.analysis must stay pure:\n" + "\n".join(problems)


def test_nothing_in_latent_imports_prefect():
    modules = index_modules(ROOT / "latent")
    offenders = [name for name, path in modules.items() if "prefect" in imports_of(name, path, modules)]
    assert not offenders, f"latent/ is a library without Prefect; these import it: {offenders}"


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return index_modules(tmp_path / "latent")


@pytest.mark.parametrize(
    "source",
    [
        "import mlflow\n",
        "def f():\n    from latent.tables import x\n",  # a lazy import counts
        "from latent import helper\n",  # helper imports duckdb: caught through the chain
        "from . import helper\n",  # relative imports resolve too
        "from latent.data.sub import thing\n",  # a submodule of a forbidden package
    ],
)
def test_the_walk_finds_forbidden_imports_direct_lazy_and_transitive(tmp_path, source):
    modules = _package(
        tmp_path,
        {
            "latent/__init__.py": "",
            "latent/helper.py": "import duckdb\n",
            "latent/tables.py": "",
            "latent/data/__init__.py": "",
            "latent/data/sub.py": "",
            "latent/analysis/__init__.py": "",
            "latent/analysis/metric.py": source.replace("from . import", "from .. import"),
        },
    )
    assert forbidden_reach(modules, "latent.analysis", FORBIDDEN_EXTERNAL, FORBIDDEN_INTERNAL)


def test_the_walk_passes_a_pure_package_and_skips_type_checking_imports(tmp_path):
    modules = _package(
        tmp_path,
        {
            "latent/__init__.py": "",
            "latent/errors.py": "",
            "latent/analysis/__init__.py": "from latent.analysis.metric import f\n",
            "latent/analysis/metric.py": (
                "from typing import TYPE_CHECKING\nimport numpy\nfrom latent.errors import E\n"
                "if TYPE_CHECKING:\n    import mlflow\n"
            ),
        },
    )
    assert forbidden_reach(modules, "latent.analysis", FORBIDDEN_EXTERNAL, FORBIDDEN_INTERNAL) == []
