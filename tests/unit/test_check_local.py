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


# -- CPU level before it runs: an armv7 binary and an ARMv6 board (Pi Zero) -------------


@pytest.fixture
def armv7(tmp_path: Path) -> Path:
    """A single-platform image labelled linux/arm/v7 whose binary says ARMv7 in its .ARM.attributes, at its end."""
    from tests.unit.test_rootfs import arm_elf

    path = tmp_path / "armv7.tar"
    path.write_bytes(archive("acme/armv7:1", [File("/app", arm_elf(10))], architecture="arm", variant="v7", entrypoint=["/app"]))
    return path


def agent_facts(name: str, host_id: str) -> dict:
    """What `enoexec-agent facts --json` prints on a fixture host (tests/fixtures/hosts)."""
    from agent.delivery import wire
    from agent.host import hostfacts
    from enoexec.eventjson import to_json
    from tests.unit.test_hostfacts import fixture

    return to_json(wire.host_pb(hostfacts.gather(**fixture(name, host_id=host_id))))


def test_target_armv6_says_cpu_level_for_an_armv7_binary(armv7: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run(capsys, str(armv7), "--target", "linux/arm/v6", "--target", "linux/arm/v7")
    assert code == 1 and [h["host_id"] for h in doc["cannot_run"]] == ["linux/arm/v6"]
    (v6,) = doc["cannot_run"]
    assert (v6["status"], v6["cause"], v6["hint_id"]) == ("fails", "cpu_level", "match_cpu_level") and "armv6" in v6["detail"]
    (entry,) = doc["entrypoints"]
    assert entry["binary_platform"] == "linux/arm/v7" and entry["files_read_to_end"] == [f"/app ({entry['size']} bytes)"]


def test_a_pi_zeros_facts_file_says_cpu_level(armv7: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    facts = [agent_facts("pi-zero-armv6", "pi-zero"), agent_facts("pi-armv7l", "pi-4")]
    assert facts[0]["cpu_level"] == "armv6"
    path = tmp_path / "pis.json"
    path.write_text(json.dumps(facts))
    code, doc = run(capsys, str(armv7), "--facts", str(path))
    assert code == 1 and {h["host_id"]: (h["status"], h["cause"]) for h in doc["hosts"]} == {
        "pi-zero": ("fails", "cpu_level"), "pi-4": ("runs", "")}
    # A saved /api/v1/hosts page carries the same facts under "facts".
    path.write_text(json.dumps({"hosts": [{"host_id": "pi-zero", "platform": "linux/arm/v6", "facts": facts[0]}]}))
    code, doc = run(capsys, str(armv7), "--facts", str(path))
    assert code == 1 and doc["cannot_run"][0]["cause"] == "cpu_level"
