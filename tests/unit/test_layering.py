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
    f.write_text("import os\nfrom collector.store.store import Store\nfrom . import sibling\n")
    assert imported_roots(f) == {"os", "collector"}


def test_every_package_folder_is_a_regular_package() -> None:
    """setuptools' find_packages skips a folder without __init__.py: the wheel would lack it."""
    folders = {p.parent for pkg in FORBIDDEN for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file()) == []


# The collector's groups, lowest first: a group imports only its own and those listed for it.
# `base` is the top-level leaf modules every group may use; `entry` wires everything together.
COLLECTOR_BASE = {"errors", "auth", "listen"}
COLLECTOR_LAYERS = {
    "base": {"base"},
    "store": {"base", "store"},
    "check": {"base", "check"},
    "ingest": {"base", "store", "ingest"},
    "http": {"base", "store", "ingest", "check", "http"},
    "entry": {"base", "store", "ingest", "check", "http", "entry"},
}


def collector_group(dotted: str) -> str:
    """``collector.store.schema`` -> ``store``; ``collector.errors`` -> ``base``; ``collector.cli`` -> ``entry``."""
    parts = dotted.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in COLLECTOR_LAYERS):
        return parts[1]
    return "base" if len(parts) == 2 and parts[1] in COLLECTOR_BASE else "entry"


def collector_imports(path: Path) -> set[str]:
    """Dotted names of the collector modules (or groups) ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("collector."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "collector":
            if node.module == "collector":
                found.update(f"collector.{a.name}" for a in node.names)
            else:
                found.add(node.module)
    return found


def test_collector_groups_import_only_downwards() -> None:
    bad = {}
    for p in sources("collector"):
        dotted = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        if dotted.endswith(".__init__"):
            continue
        group = collector_group(dotted)
        wrong = sorted(m for m in collector_imports(p) if collector_group(m) not in COLLECTOR_LAYERS[group])
        if wrong:
            bad[dotted] = wrong
    assert bad == {}


def test_every_collector_module_belongs_to_a_known_group() -> None:
    folders = {p.parent.name for p in sources("collector") if p.parent != ROOT / "collector"}
    assert folders <= set(COLLECTOR_LAYERS)


@pytest.mark.parametrize(
    ("dotted", "group"),
    [("collector.store.schema", "store"), ("collector.errors", "base"), ("collector.cli", "entry"), ("collector.http", "http")],
)
def test_collector_group_names(dotted: str, group: str) -> None:
    assert collector_group(dotted) == group


def test_an_upward_import_is_seen(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from collector.http.metrics import FleetCollector\nfrom collector import server\n")
    assert {collector_group(m) for m in collector_imports(f)} == {"http", "entry"}
