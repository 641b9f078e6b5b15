"""``check`` without a collector: an archive judged against --target platforms or a --facts file."""

from __future__ import annotations

import io
import json
import tarfile
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
@pytest.mark.parametrize("flags, says", [
    (["--max-bytes", "-5"], "argument --max-bytes: expected a number above 0, got -5"),
    (["--max-bytes", "0"], "argument --max-bytes: expected a number above 0, got 0"),
    (["--max-bytes", "lots"], "argument --max-bytes: expected a whole number"),
    (["--timeout", "-1"], "argument --timeout: expected a number above 0"),
    (["--timeout", "nan"], "argument --timeout: expected a number above 0"),
])
def test_limits_must_be_above_zero(demo: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str) -> None:
    assert cli.main(["check", str(demo), "--target", "linux/amd64", *flags], env={}) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"enoexec-collector: error: {says}") and err.count("\n") == 1


def test_limits_hold_for_an_archive(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-bytes bounds a local archive's read as it bounds a registry's (it was ignored for archives)."""
    code, doc = run(capsys, str(demo), "--target", "linux/amd64", "--max-bytes", "100")
    (entry,) = doc["entrypoints"]
    assert entry["kind"] == "unreadable" and "the limit is 100" in entry["error"]
    assert doc["hosts"][0]["status"] == "unknown" and code == 0
    assert run(capsys, str(demo), "--target", "linux/amd64", "--strict", "--max-bytes", "100")[0] == 1


@pytest.mark.parametrize("name, says", [
    ("missing.tar", "missing.tar: no such archive file (for a registry image of that name, give its tag: missing.tar:latest)"),
    ("./missing", "./missing: no such archive file"),
    ("{tmp}", "{tmp} is a directory: give an archive file (docker save -o FILE IMAGE), or an image reference"),
])
def test_an_archive_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, says: str) -> None:
    """Not a registry look-up (exit 3, 'could not reach the registry for missing.tar'): a usage error naming the file."""
    name, says = name.replace("{tmp}", str(tmp_path)), says.replace("{tmp}", str(tmp_path))
    assert cli.main(["check", name, "--target", "linux/amd64"], env={}) == 2
    assert capsys.readouterr().err == f"enoexec-collector: error: {says}\n"


def test_a_truncated_layer_is_unknown_not_a_missing_entrypoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A layer blob that ends inside /app's data (a declared size far past the end) was read as
    "/app: no such file": `fails: entrypoint_not_found`. It is a damaged archive: unknown, saying so;
    and the summary no longer says every host can run what none could be judged on."""
    head = tarfile.TarInfo("app")
    head.size = 8**11 - 1
    layer = head.tobuf() + b"\x7fELF"
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/app"]}}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("c.json", config), ("l.tar", layer), ("manifest.json", b'[{"Config": "c.json", "Layers": ["l.tar"]}]')):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    path = tmp_path / "cut.tar"
    path.write_bytes(out.getvalue())
    code, doc = run(capsys, str(path), "--target", "linux/amd64")
    (host,) = doc["hosts"]
    assert code == 0 and host["status"] == "unknown" and "l.tar is truncated" in host["detail"], host
    assert cli.main(["check", str(path), "--target", "linux/amd64"], env={}) == 0
    text = capsys.readouterr().out
    assert "every known host can run it" not in text and "0 of 1 known host(s) can run it" in text, text


def test_not_a_regular_file_and_endless_facts(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """/dev/null was "no such archive file"; --facts /dev/zero read until memory ran out (a MemoryError traceback)."""
    assert cli.main(["check", "/dev/null", "--target", "linux/amd64"], env={}) == 2
    assert capsys.readouterr().err == "enoexec-collector: error: /dev/null is not a regular file: give an archive file (docker save -o FILE IMAGE)\n"
    assert cli.main(["check", str(demo), "--facts", "/dev/zero"], env={}) == 2
    assert capsys.readouterr().err == "enoexec-collector: error: --facts /dev/zero: larger than 16777216 bytes: not host facts\n"


@pytest.mark.parametrize("doc", ["[]", '{"hosts": []}'])
def test_a_facts_file_of_no_hosts_is_a_usage_error(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: str) -> None:
    """It fell back to the collector at --url: the gate judged against some other fleet, or exited 3."""
    path = tmp_path / "fleet.json"
    path.write_text(doc)
    assert cli.main(["check", str(demo), "--facts", str(path)], env={}) == 2
    assert capsys.readouterr().err == f"enoexec-collector: error: --facts {path}: names no hosts (enoexec-agent facts --json of each host, in a list)\n"
