"""``enoexec-agent demo`` without --platform runs an image this host cannot run."""

from __future__ import annotations

import re
import subprocess
import sys

import docker.errors

from agent import demo
from agent.engine.connect import gather_facts


def test_demo_picks_a_foreign_platform_and_fails_with_exec_format_error(engine, api) -> None:
    expected = demo.choose_platform(gather_facts(api, "demo"))
    res = subprocess.run([sys.executable, "-m", "agent.cli", "demo", "--docker-host", engine.url],
                         capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r"ran (\S+): exit (\d+): (.*)\ncontainer ([0-9a-f]{12})", res.stdout)
    try:
        assert res.returncode == 0, res.stderr
        assert found, res.stdout
        image, code, log, _ = found.groups()
        arch = expected.split("/", 1)[1].replace("/", "")
        assert image == f"enoexec-demo/{arch}:latest"
        assert code != "0" and "exec format error" in log
    finally:
        if found:
            try:
                api.remove_container(found.group(4), force=True)
                api.remove_image(found.group(1), force=True)
            except docker.errors.NotFound:
                pass
