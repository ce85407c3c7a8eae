"""The import rules of DESIGN.md, read from the source: only ``api`` imports FastAPI or
Starlette, and only ``cli`` imports typer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "landexplorer"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "node_modules" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_import_rules(path):
    part = path.relative_to(PACKAGE).parts[0]
    names = _imports(path)
    if part != "api":
        assert not names & {"fastapi", "starlette"}, f"{path} imports the web framework"
    if part != "cli":
        assert "typer" not in names, f"{path} imports typer"


# ----- the import graph -------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in SOURCES}


def _top_level_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of the imports run when the module is imported: those at module
    level, also inside a module-level ``if`` (``TYPE_CHECKING``) or ``try``, not those
    inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, list[str]]] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.If | ast.Try):
            todo += node.body + node.orelse
            if isinstance(node, ast.Try):
                todo += node.finalbody + [s for h in node.handlers for s in h.body]
    return found


def _edges(module: str) -> set[str]:
    """The landexplorer modules ``module`` imports at its top level (``from pkg import sub``
    counts as importing the submodule; a module's own packages are loaded before it, so
    naming them is no edge)."""
    out: set[str] = set()
    for target, names in _top_level_imports(MODULES[module]):
        if target in MODULES and not module.startswith(target + "."):
            out.add(target)
        out.update(f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES)
    out.discard(module)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := visit(n)) is not None:
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)) is not None:
            return found
    return None


def test_cycle_finder_finds_one() -> None:
    """The check can fail: modules importing each other, directly or round three, are a
    circle; a chain is not."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    # the PostGIS store's own modules are seen as edges (as when they imported each other)
    assert "landexplorer.catalog.pgquery" in _edges("landexplorer.catalog.postgis")


def test_no_import_cycle() -> None:
    cycle = _cycle({m: _edges(m) for m in MODULES})
    assert cycle is None, "modules import each other in a circle: " + " -> ".join(cycle or [])


def test_analysis_does_not_import_layers() -> None:
    for path in SOURCES:
        if path.relative_to(PACKAGE).parts[0] != "analysis":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("landexplorer.layers"), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("landexplorer.layers") for a in node.names), path


def test_no_private_names_across_catalog_modules() -> None:
    """A helper one store shares with the other has a public name in a neutral module."""
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "landexplorer.catalog"
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path} borrows {private} from {node.module}"
