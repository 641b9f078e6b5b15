"""Which platforms the registry offers, asked through the Docker Engine.

A real registry (Debian's ``docker-registry``, ``tests.registry``) runs on
127.0.0.1; the test dockerd treats 127.0.0.0/8 registries as insecure (plain
HTTP), so ``GET /distribution/{name}/json`` really goes daemon -> registry. An
arm64 scratch image is loaded under the registry's reference and really run on
this (amd64) host, so the kernel refuses it; the diagnosis then carries the
registry's answer, and the hint depends on it: ``pull_platform`` when the
registry offers the host's platform, ``rebuild_multiplatform`` when it does not
or when nobody can tell. Registry failures are bounded in time, reported as
"unknown" and cached, like successes.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from agent import render
from agent.diagnosis.diagnose import Diagnoser, Exit
from agent.engine.connect import gather_facts
from agent.engine.images import ImageInspector
from agent.model import Event, HostFacts
from tests import images
from tests.images import File
from tests.registry import local_registry, push_multiplatform_index

RUNTIME_LINE = "exec /app: exec format error"


class CountingApi:
    """The real APIClient, counting the ``_get`` calls that ask ``/distribution``."""

    def __init__(self, api: Any) -> None:
        self._real = api
        self.distribution_gets: list[str] = []

    def _get(self, url: str, *args: Any, **kw: Any) -> Any:
        if "/distribution/" in url:
            self.distribution_gets.append(url)
        return self._real._get(url, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with local_registry() as address:
        yield address


@pytest.fixture(scope="module")
def host(api: Any) -> HostFacts:
    facts = gather_facts(api, "test-host")
    # The arm64 image below must be foreign here, and the hints name this platform.
    assert facts.platform == "linux/amd64", facts
    assert "linux/arm64" not in facts.runnable_platforms, facts  # no arm64 emulator registered
    return facts


@pytest.fixture
def counting(api: Any) -> CountingApi:
    return CountingApi(api)


def load_arm64(dock: Any, ref: str) -> str:
    """``docker load`` an arm64 scratch image under exactly ``ref``; ``dock`` removes it after its containers."""
    data = images.archive(ref, [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    for _ in dock.api.load_image(io.BytesIO(data)):
        pass
    dock.images.append(ref)
    assert dock.api.inspect_image(ref)["Architecture"] == "arm64"
    return ref


def run_dead(dock: Any, ref: str) -> dict[str, Any]:
    """Run ``ref`` (network none) to its end; it must have died of an exec format error."""
    cid = dock.run(ref)
    attrs = dock.api.inspect_container(cid)
    assert not attrs["State"]["Running"]
    assert attrs["State"]["ExitCode"] != 0
    assert attrs["Config"]["Image"] == ref
    assert RUNTIME_LINE in dock.api.logs(cid).decode(errors="replace")
    return attrs


def diagnose(diagnoser: Diagnoser, attrs: dict[str, Any]) -> Event:
    outcome = diagnoser.diagnose(Exit(attrs["Id"], attrs["State"]["ExitCode"], attrs["Config"]["Image"]))
    assert outcome.event is not None
    ev = outcome.event
    assert ev.container.id == attrs["Id"]
    assert ev.container.runtime_message == RUNTIME_LINE
    assert ev.cause == "arch_mismatch", ev.explanation
    assert ev.binary.platform == "linux/arm64"
    assert ev.image.ref == attrs["Config"]["Image"]
    assert ev.image.declared_platform == "linux/arm64"
    return ev


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def stopped_registry() -> Iterator[str]:
    """The address of a registry that held the index and has been stopped: connection refused."""
    with local_registry() as address:
        push_multiplatform_index(address, "enoexec/app", "1", ["linux/amd64", "linux/arm64"])
    yield address


# --- the registry offers the host's platform: pull it -------------------------


def test_registry_offering_the_host_platform_gives_pull_platform(dock, api, host, registry, counting) -> None:
    ref = f"{registry}/enoexec/app:1"
    push_multiplatform_index(registry, "enoexec/app", "1", ["linux/amd64", "linux/arm64"], attestation=True)
    # The daemon itself reaches the registry (plain HTTP on loopback) and sees the attestation entry too.
    seen = api.inspect_distribution(ref)
    assert {(p["os"], p["architecture"]) for p in seen["Platforms"]} == {("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown")}
    attrs = run_dead(dock, load_arm64(dock, ref))

    ev = diagnose(Diagnoser(counting, lambda: host, lookup_registry=True), attrs)

    assert ev.image.available_platforms == ("linux/amd64", "linux/arm64")  # attestation dropped
    assert len(counting.distribution_gets) == 1
    hint = render.hint_json(ev)
    assert hint["id"] == "pull_platform", hint
    assert f"docker pull --platform linux/amd64 {ref}" in hint["commands"], hint
    assert "registry offers linux/amd64, linux/arm64" in render.event_text(ev)


def test_cli_diagnose_asks_the_registry(dock, api, engine, registry) -> None:
    ref = f"{registry}/enoexec/cli:1"
    push_multiplatform_index(registry, "enoexec/cli", "1", ["linux/arm64", "linux/amd64"], attestation=True)
    attrs = run_dead(dock, load_arm64(dock, ref))

    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", "diagnose", attrs["Id"], "--json", "--docker-host", engine.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["cause"] == "arch_mismatch"
    assert doc["container"]["id"] == attrs["Id"]
    assert doc["image"]["ref"] == ref
    assert doc["image"]["available_platforms_known"] is True
    assert doc["image"]["available_platforms"] == ["linux/amd64", "linux/arm64"]
    assert doc["hint"]["id"] == "pull_platform"
    assert f"docker pull --platform linux/amd64 {ref}" in doc["hint"]["commands"]


# --- the registry does not offer it: rebuild ----------------------------------


def test_registry_without_the_host_platform_gives_rebuild(dock, host, registry, counting) -> None:
    ref = f"{registry}/enoexec/armonly:1"
    push_multiplatform_index(registry, "enoexec/armonly", "1", ["linux/arm64", "linux/arm/v7"], attestation=True)
    attrs = run_dead(dock, load_arm64(dock, ref))

    ev = diagnose(Diagnoser(counting, lambda: host, lookup_registry=True), attrs)

    assert ev.image.available_platforms == ("linux/arm/v7", "linux/arm64")
    hint = render.hint_json(ev)
    assert hint["id"] == "rebuild_multiplatform", hint
    assert "linux/arm64" in hint["text"] and "linux/arm/v7" in hint["text"], hint  # says what is offered
    assert not any("docker pull --platform" in c for c in hint["commands"]), hint


# --- the registry cannot be asked: unknown, bounded, cached ------------------


@pytest.mark.parametrize("unreachable", [stopped_registry, silent_listener], ids=["refused", "silent"])
def test_unreachable_registry_is_unknown_bounded_and_cached(dock, host, counting, unreachable) -> None:
    with unreachable() as address:
        ref = f"{address}/enoexec/app:1"
        attrs = run_dead(dock, load_arm64(dock, ref))
        diagnoser = Diagnoser(counting, lambda: host, images=ImageInspector(counting), lookup_registry=True)

        ev = diagnose(diagnoser, attrs)  # bounded: the inspector's timeout ends a silent lookup

        assert ev.image.available_platforms is None  # unknown, not "offers nothing"
        assert len(counting.distribution_gets) == 1
        hint = render.hint_json(ev)
        assert hint["id"] == "rebuild_multiplatform", hint
        assert "not known which platforms" in hint["text"], hint
        assert "registry's platforms not known" in render.event_text(ev)

        # The failure is cached: diagnosing it again does not ask the daemon again (so cannot wait for it).
        again = diagnose(diagnoser, attrs)
        assert again.image.available_platforms is None
        assert len(counting.distribution_gets) == 1


# --- the cache: one question per image ---------------------------------------


def test_two_containers_of_one_image_ask_the_registry_once(dock, host, registry, counting) -> None:
    ref = f"{registry}/enoexec/twice:1"
    push_multiplatform_index(registry, "enoexec/twice", "1", ["linux/amd64", "linux/arm64"])
    load_arm64(dock, ref)
    first, second = run_dead(dock, ref), run_dead(dock, ref)
    assert first["Id"] != second["Id"]
    diagnoser = Diagnoser(counting, lambda: host, lookup_registry=True)

    a, b = diagnose(diagnoser, first), diagnose(diagnoser, second)

    assert a.image.available_platforms == b.image.available_platforms == ("linux/amd64", "linux/arm64")
    assert counting.distribution_gets == [counting._real._url("/distribution/{0}/json", ref)]
    assert render.hint_json(a)["id"] == render.hint_json(b)["id"] == "pull_platform"
