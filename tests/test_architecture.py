"""The layout keeps the design card's promises: dependencies point one way, no import cycle,
one module changes statuses, no function too long to read (``docs/architecture.md``: 80 lines
in ``orchestrator/``, 60 in ``planners/``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("models", "devices", "planners", "db", "orchestrator")
ALLOWED = {  # what each top-level package may import of the others
    "models": set(),
    "devices": {"models"},
    "planners": {"models"},
    "db": {"models"},
    "orchestrator": {"models", "devices", "planners", "db"},
}
STATUS_WRITES = {"set_experiment_status", "set_campaign_status", "add_observation", "decide"}
STATUS_WRITERS = {"orchestrator.campaign.lifecycle", "db.database"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every project module ``name`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: set(_imports(name, path)) for name, path in MODULES.items()}


def test_dependencies_point_one_way():
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if target.split(".")[0] != name.split(".")[0]
        and target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    ]
    assert wrong == []


def test_no_module_imports_itself_through_others():
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_only_the_lifecycle_changes_a_status():
    writers = {
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in STATUS_WRITES
        )
        or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_experiment"
            and any(k.arg == "status" for k in node.keywords)
        )
    }
    assert writers <= STATUS_WRITERS


@pytest.mark.parametrize(("package", "limit"), [("orchestrator", 80), ("planners", 60)])
def test_no_function_is_too_long_to_read(package, limit):
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for name, path in MODULES.items()
        if name.split(".")[0] == package
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > limit
    ]
    assert long == []


def test_the_cli_starts_without_the_heavy_libraries():
    """`qdlab --help` (and every command's parsing) imports no ophyd, bluesky, SQLAlchemy,
    scipy or torch: each costs seconds of CPU before a command does anything."""
    import subprocess
    import sys

    heavy = ["ophyd", "bluesky", "sqlalchemy", "scipy", "torch", "botorch", "caproto"]
    code = f"import sys, orchestrator.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
