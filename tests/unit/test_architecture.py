"""The package's floors: dependencies run one way, no cycle, no private name shared.

Floors, lowest first: ground (no shipshape import above it) < adapters (server processes,
Pulumi stack outputs) < targets and db < engine < ops < commands < callers (tasks, the
Pulumi gate, the local app process, the console). A module may import its own floor or
any floor below it, never one above. Read from the source with ast, function-level
imports included: a lazy import that runs upward is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shipshape"

FLOORS = [
    {"__init__", "errors", "paths", "settings", "secrets", "outputs", "yamlfile", "progress",
     "text"},
    {"adapters"},
    {"targets", "db"},
    {"engine"},
    {"ops"},
    {"commands"},
    {"tasks", "pulumi_gate", "appserver", "console"},
]


def _floor(component: str) -> int:
    for number, members in enumerate(FLOORS):
        if component in members:
            return number
    raise AssertionError(f"shipshape.{component} belongs to no floor: add it to FLOORS")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every shipshape import in the file."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("shipshape")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if not base.startswith("shipshape"):
                continue
            names = [a.name for a in node.names]
            # `from shipshape.engine import migrations` imports the module engine.migrations,
            # and runs the package's __init__ first: both are edges
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            found += [(m, [], node.lineno) for m in submodules]
            found.append((base, [n for n in names if f"{base}.{n}" not in MODULES],
                          node.lineno))
    return found


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


EDGES = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_sits_on_a_floor():
    for module in MODULES:
        _floor(_component(module))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_never_run_upward(module):
    mine = _floor(_component(module))
    upward = [f"line {line}: {target}" for target, _, line in EDGES[module]
              if _floor(_component(target)) > mine]
    assert not upward, f"{module} (floor {mine}) imports from a floor above it: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module):
    private = [f"line {line}: {target}.{name}" for target, names, line in EDGES[module]
               for name in names if name.startswith("_") and target != module]
    assert not private, f"{module} imports private names of other modules: {private}"


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in EDGES[m] if t in MODULES and t != m} for m in MODULES}
    # a package's __init__ is imported by its own submodules' import machinery, not by
    # their code: only the code's edges count
    cycles = _strongly_connected(graph)
    assert not cycles, f"import cycles: {cycles}"


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; the components with more than one module."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return result


@pytest.mark.parametrize("module", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_init_files_only_hand_names_on(module):
    tree = ast.parse(MODULES[module].read_text())
    allowed = (ast.Import, ast.ImportFrom, ast.Expr, ast.Assign)
    others = [type(n).__name__ for n in tree.body if not isinstance(n, allowed)]
    assigns = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
               if isinstance(t, ast.Name) and t.id not in ("__all__", "__version__")]
    assert not others and not assigns, f"{module}/__init__.py holds code: {others or assigns}"


def test_the_check_itself_sees_an_upward_import(tmp_path):
    """The floors test must be able to fail: an engine module importing ops is caught."""
    fake = "from shipshape.ops import doctor\n"
    path = tmp_path / "fake.py"
    path.write_text(fake)
    edges = _imports("shipshape.engine.fake", path)
    assert any(_floor(_component(t)) > _floor("engine") for t, _, _ in edges)
