"""The one-shot commands import only what they need (issue #12 item 6): ``--help`` and
``facts`` load neither asyncio nor grpc nor protobuf; only ``facts --json`` and
``diagnose`` load protobuf (the wire's JSON form), only ``run`` asyncio and grpc."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("asyncio", "grpc", "google.protobuf", "docker")


def loaded(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(res.stdout))


@pytest.mark.parametrize(
    ("command", "code", "expected"),
    [
        ("--help", "from agent import cli; cli.parser().format_help()", set()),
        ("facts", "from agent import cli, render; from agent.engine import connect", {"docker"}),
        ("diagnose", "import agent.cli; from agent.engine import connect, images; from agent.diagnosis import diagnose; "
                     "from agent import render; from agent.delivery import wire",
         {"docker", "google.protobuf"}),
        ("run", "import agent.cli, agent.service", set(HEAVY)),
    ],
)
def test_each_command_imports_only_what_it_uses(command: str, code: str, expected: set[str]) -> None:
    assert loaded(code) == expected, command


def test_help_runs_without_the_heavy_imports() -> None:
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent.cli", "facts", "--help"],
                         capture_output=True, text=True, check=True, timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"asyncio", "grpc", "google.protobuf", "requests", "docker"}
