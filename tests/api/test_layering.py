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
