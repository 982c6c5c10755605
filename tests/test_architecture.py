"""The layer order of docs/architecture.md holds: imports point down, and nothing imports in a loop.

Every module under ``src/conveyor`` is read with ``ast`` (nothing is imported), so a violation is
reported even in a module no other test loads. Imports under ``if TYPE_CHECKING:`` never run and
are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

CORE, BROKERS, EXECUTION, COORDINATION, TASKS, RUNTIME, ADMIN, APP, ENTRY = range(9)
LAYER_NAMES = {
    CORE: "core",
    BROKERS: "brokers",
    EXECUTION: "execution",
    COORDINATION: "coordination",
    TASKS: "task/publish/results",
    RUNTIME: "worker, beat",
    ADMIN: "admin",
    APP: "app",
    ENTRY: "cli, dashboard, httpapi, metrics",
}

#: The layer of every module, by module or package name (a package covers everything in it).
#: A module may import from its own layer and the layers below, never from one above.
LAYERS: dict[str, int] = {
    # core types: plain data and rules, no I/O
    "conveyor.states": CORE,
    "conveyor.message": CORE,
    "conveyor.codecs": CORE,
    "conveyor.exceptions": CORE,
    "conveyor.options": CORE,
    "conveyor.config": CORE,
    "conveyor.request": CORE,
    "conveyor.taskrecord": CORE,
    "conveyor.appproto": CORE,
    "conveyor.signals": CORE,
    "conveyor.einfo": CORE,
    "conveyor.log": CORE,
    "conveyor.celerynames": CORE,
    # the broker contract and its implementations
    "conveyor.brokers": BROKERS,
    # how one run ends: retry decisions, outcomes, the run-guard protocol
    "conveyor.execution": EXECUTION,
    "conveyor.retry": EXECUTION,
    # locks, unique enqueue, rate and concurrency limits
    "conveyor.coordination": COORDINATION,
    # the producer side: tasks, enqueueing, results
    "conveyor.task": TASKS,
    "conveyor.publish": TASKS,
    "conveyor.results": TASKS,
    "conveyor.progress": TASKS,
    "conveyor.routing": TASKS,
    "conveyor.registry": TASKS,
    "conveyor.aio": TASKS,
    "conveyor.canvas": TASKS,
    # the runtime: consumers of tasks
    "conveyor.worker": RUNTIME,
    "conveyor.beat": RUNTIME,
    # the read/control API the CLI and dashboard stand on
    "conveyor.admin": ADMIN,
    # the application object, and the package that exports it
    "conveyor.app": APP,
    "conveyor.loading": APP,
    "conveyor": APP,
    # integrations with other software (optional extras): beside the app, they may use anything below
    "conveyor.contrib": APP,
    # entry points
    "conveyor.cli": ENTRY,
    "conveyor.dashboard": ENTRY,
    "conveyor.httpapi": ENTRY,
    "conveyor.metrics": ENTRY,
    "conveyor.__main__": ENTRY,
}

#: Packages other work reshapes inside; for the import-loop check each counts as one node.
WHOLE_PACKAGES = ("conveyor.brokers", "conveyor.worker")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted((SRC / "conveyor").rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The layer of ``module``: its own entry or its closest package's (the root only by name)."""
    name = module
    while name:
        if name in LAYERS and (name != "conveyor" or module == "conveyor"):
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt], *, functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run: not under ``if TYPE_CHECKING``; inside functions only if asked."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_nodes(node.body, functions=functions)
            yield from _import_nodes(node.orelse, functions=functions)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if functions:
                yield from _import_nodes(node.body, functions=functions)
        elif isinstance(node, ast.ClassDef | ast.With | ast.For | ast.While):
            yield from _import_nodes(node.body, functions=functions)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_nodes(block, functions=functions)


def imports(module: str, *, functions: bool = False) -> Iterator[tuple[str, int]]:
    """``(imported conveyor module, line)`` for each import in ``module`` that runs."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _import_nodes(ast.parse(path.read_text()).body, functions=functions):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            if node.level == 0:
                base = node.module or ""
            elif node.module:
                base = f"{base}.{node.module}"
            # ``from package import submodule`` imports the submodule, ``from module import name``
            # the module itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            if target == "conveyor" or target.startswith("conveyor."):
                yield target, node.lineno


def test_every_module_has_a_layer() -> None:
    unmapped = [m for m in MODULES if layer_of(m) is None]
    assert not unmapped, f"give these modules a layer in LAYERS (tests/test_architecture.py): {unmapped}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = []
    for module, path in MODULES.items():
        own = layer_of(module)
        assert own is not None
        for target, line in imports(module):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                upward.append(
                    f"{path.relative_to(SRC)}:{line}: {module} ({LAYER_NAMES[own]}) "
                    f"imports {target} ({LAYER_NAMES[theirs]})"
                )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def _node(module: str) -> str:
    for package in WHOLE_PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_loop_at_run_time() -> None:
    """Imports inside functions count too: a late import only hides a loop from the importer."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        source = _node(module)
        for imported, _ in imports(module, functions=True):
            target = _node(imported)
            # A package's __init__ gathers its own modules (a module importing its package back
            # is a loop); the root package only re-exports.
            if target not in (source, "conveyor") and not target.startswith(source + "."):
                graph.setdefault(source, set()).add(target)
    loops = _cycles(graph)
    assert not loops, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in loops)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("conveyor.brokers.redis.keys", BROKERS),
        ("conveyor.worker.anything.new", RUNTIME),
        ("conveyor", APP),
        ("conveyor.cli.main", ENTRY),
        ("conveyor.nowhere", None),
    ],
)
def test_the_layer_table_covers_packages_whole(module: str, expected: int | None) -> None:
    assert layer_of(module) == expected
