"""``check`` without a collector: an archive judged against --target platforms or a --facts file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector import cli
from tests.images import EM_AARCH64, File, archive, elf


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    path = tmp_path / "demo.tar"
    path.write_bytes(archive("enoexec-demo/arm64:latest", [File("/app", elf(EM_AARCH64))], architecture="arm64", entrypoint=["/app"]))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = cli.main(["check", *argv, "--json"], env={})
    return code, json.loads(capsys.readouterr().out)


def test_targets(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run(capsys, str(demo), "--target", "linux/arm64")
    assert code == 0 and doc["platforms_from"] == "archive" and doc["cannot_run"] == []
    code, doc = run(capsys, str(demo), "--target", "linux/arm64", "--target", "linux/amd64")
    assert code == 1 and [h["host_id"] for h in doc["cannot_run"]] == ["linux/amd64"]


def test_a_facts_file_from_agents(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `enoexec-agent facts --json` of two hosts, collected into a list: an x86 host emulating arm64, and a plain one.
    facts = [
        {"host_id": "ci-x86", "platform": "linux/amd64", "can_run_32bit": True, "runnable_platforms": ["linux/amd64", "linux/386"],
         "emulators": [{"name": "qemu-aarch64", "platform": "linux/arm64", "interpreter": "/usr/bin/qemu-aarch64", "flags": "F", "enabled": True}]},
        {"host_id": "plain-x86", "platform": "linux/amd64", "runnable_platforms": ["linux/amd64"]},
    ]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(facts))
    code, doc = run(capsys, str(demo), "--facts", str(path))
    assert code == 1
    assert {h["host_id"]: h["status"] for h in doc["hosts"]} == {"ci-x86": "runs", "plain-x86": "fails"}


def test_bad_inputs_are_usage_errors(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(demo), "--target", "linux/banana"], env={}) == 2
    assert cli.main(["check", str(demo), "--facts", str(tmp_path / "none.json")], env={}) == 2
    assert cli.main(["check", str(demo), "--target", "linux/amd64", "--platform", "linux/amd64"], env={}) == 2
    assert "Traceback" not in capsys.readouterr().err
