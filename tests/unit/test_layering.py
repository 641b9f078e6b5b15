"""The core imports neither program, and the agent and the collector never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"enoexec": {"agent", "collector"}, "agent": {"collector"}, "collector": {"agent"}}
# Libraries the agent must not need: they are the collector's extra.
COLLECTOR_ONLY = {"aiohttp", "sqlalchemy", "psycopg", "prometheus_client"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def sources(package: str) -> list[Path]:
    return [p for p in sorted((ROOT / package).rglob("*.py")) if "_pb2" not in p.name]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    bad = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN[package]) for p in sources(package)}
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize("package", ["enoexec", "agent"])
def test_agent_side_needs_no_collector_library(package: str) -> None:
    bad = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & COLLECTOR_ONLY) for p in sources(package)}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom collector.store import Store\nfrom . import sibling\n")
    assert imported_roots(f) == {"os", "collector"}


def test_every_package_folder_is_a_regular_package() -> None:
    """setuptools' find_packages skips a folder without __init__.py: the wheel would lack it."""
    folders = {p.parent for pkg in FORBIDDEN for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file()) == []
