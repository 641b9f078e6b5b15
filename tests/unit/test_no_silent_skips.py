"""No test may skip in CI but for a missing tool: every skip goes through tests/require.py:missing(),
which CI (ENOEXEC_REQUIRE_INTEGRATION=1) turns into a failure. A plain pytest.skip, importorskip,
skipif or skip mark would let a test pass in CI without running."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {ROOT / "tests" / "require.py"}
FORBIDDEN = {"skip", "importorskip", "skipif", "xfail"}


def skips_in(source: str) -> list[tuple[int, str]]:
    """(line, name) of every ``pytest.skip``/``importorskip``/``mark.skip*``/``xfail`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            base = node.value
            names = {base.id} if isinstance(base, ast.Name) else {base.attr} if isinstance(base, ast.Attribute) else set()
            if names & {"pytest", "mark"}:
                found.append((node.lineno, node.attr))
    return found


def test_no_skip_but_the_missing_tool_helper() -> None:
    files = [p for p in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py")) if p not in ALLOWED]
    assert len(files) > 50
    offenders = [f"{p.relative_to(ROOT)}:{line} {name}" for p in files for line, name in skips_in(p.read_text())]
    assert not offenders, "use tests.require.missing(reason) instead: " + ", ".join(offenders)


def test_the_check_sees_each_form() -> None:
    src = ("import pytest\npytest.skip('x')\nm = pytest.importorskip('m')\n"
           "@pytest.mark.skipif(True, reason='r')\ndef f(): pass\n@pytest.mark.skip\ndef g(): pass\n")
    assert sorted(name for _, name in skips_in(src)) == ["importorskip", "skip", "skip", "skipif"]
