"""deploy/install.sh --agent on the real Debian bookworm userlands of a 32-bit
and a 64-bit Raspberry Pi (armhf, arm64), run under QEMU user emulation.

Each rootfs is made by mmdebstrap from this machine's apt sources with no
Recommends and no compiler. deploy/fetch-wheels.sh fills a wheel directory
here for the target platform (binary wheels only, which proves no build step
is needed), and ``install.sh --wheels`` installs from it inside the rootfs in
a network namespace of its own: no name resolves, no index answers, as on an
air-gapped Pi. Inside the rootfs the installed agent then reads host facts
and diagnoses a dead container from the Docker Engine on this machine (its
socket bound in), and streams to a collector on this machine over loopback.

QEMU is registered only in a private binfmt_misc (tests/userns.py); the test
checks the machine's own /proc/sys/fs/binfmt_misc is the same afterwards.
A Debian mirror outage skips with apt's message; an install failure fails.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import images, procs, require, rootfs
from tests.images import File

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = rootfs.AGENT_PACKAGES
HOST_BINFMT = Path("/proc/sys/fs/binfmt_misc")


def host_binfmt() -> dict[str, str]:
    """The machine's own binfmt_misc entries (empty when it is not mounted)."""
    if not (HOST_BINFMT / "status").exists():
        return {}
    return {p.name: p.read_text() for p in sorted(HOST_BINFMT.iterdir()) if p.name != "register"}


def prerequisites() -> None:
    if os.geteuid() != 0:
        require.missing("the emulated install test needs root (mmdebstrap --mode=root, chroot)")
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("qemu-arm-static", "qemu-user-static"),
                          ("qemu-aarch64-static", "qemu-user-static"), ("chroot", "coreutils")):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            require.missing(f"{tool} not found (apt-get install {package})")
    probe = subprocess.run([sys.executable, str(rootfs.USERNS), "--qemu", "arm", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        require.missing(f"no private binfmt_misc in a user namespace (Linux >= 6.7 needed): {probe.stderr.strip()}")


def wheels(machine: str) -> Path:
    try:
        return rootfs.wheels(machine)
    except rootfs.NoWheel as e:
        pytest.fail(str(e))
    except rootfs.DownloadFailed as e:
        require.missing(str(e))


PI_ARCHES = ("armhf", "arm64")


@pytest.fixture(scope="module")
def pi_rootfs() -> Iterator[dict[str, rootfs.Rootfs | BaseException]]:
    """Both root filesystems, built at once (each mmdebstrap runs mostly one emulated CPU)."""
    prerequisites()
    before = host_binfmt()
    with concurrent.futures.ThreadPoolExecutor(len(PI_ARCHES) + 1) as pool:
        futures = {arch: pool.submit(rootfs.build, arch, PACKAGES) for arch in PI_ARCHES}
        # Meanwhile warm the cache for test_systemd_boot (its failure is that test's to report).
        pool.submit(rootfs.build, "amd64", rootfs.BOOT_PACKAGES, variant=rootfs.BOOT_VARIANT)
    built: dict[str, rootfs.Rootfs | BaseException] = {}
    for arch, f in futures.items():
        built[arch] = f.exception() or f.result()
    assert host_binfmt() == before, "building the root filesystems changed the machine's own binfmt_misc"
    yield built


@pytest.mark.parametrize("arch", PI_ARCHES)
def test_agent_installs_and_runs_on_pi_userland(arch: str, tmp_path: Path, pi_rootfs: Any, engine: Any, dock: Any, collector: Any) -> None:
    if not engine.url.startswith("unix://"):
        require.missing("the rootfs binds the Docker Engine's unix socket; DOCKER_HOST is not one")
    qemu, machine = rootfs.ARCHES[arch]
    assert qemu is not None
    before = host_binfmt()
    fs = pi_rootfs[arch]
    if isinstance(fs, rootfs.MirrorOutage):
        require.missing(str(fs.args[0]))  # the mirror's fault, not the installer's, but CI must not pass without it
    if isinstance(fs, BaseException):
        raise fs
    if fs.note:
        print(f"\n{arch}: {fs.note}")
    wheel_dir = wheels(machine)

    root = rootfs.extract(fs.tarball, tmp_path / "root")
    assert not (root / "usr/bin/gcc").exists() and not (root / "usr/bin/cc").exists(), "the rootfs must have no compiler"
    rootfs.prepare(root, wheel_dir)
    sock = engine.url.removeprefix("unix://")
    chroot = rootfs.Chroot(root, qemu, sock)

    coll = collector()
    foreign = dock.load("s390x-app", [File("/app", images.elf(images.EM_S390, little=False))], architecture="s390x", entrypoint=["/app"])
    dead = dock.run(foreign)
    agent_proc: subprocess.Popen[str] | None = None
    try:
        gid = os.stat(sock).st_gid
        assert chroot.run("groupadd", "-o", "-g", str(gid), "docker").returncode == 0

        started = time.monotonic()
        offline = dataclasses.replace(chroot, network=False)
        install = offline.run("bash", "/src/deploy/install.sh", "--agent", "--insecure", "--wheels", "/wheels",
                              "--collector-address", f"127.0.0.1:{coll.grpc}", "--python", "/usr/bin/python3", timeout=1200)
        seconds = time.monotonic() - started
        print(f"\n{arch}: install.sh --agent took {seconds:.0f} s under emulation")
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
        assert "Successfully installed" in install.stdout and "enoexec-" in install.stdout
        listing = chroot.run("/opt/enoexec/venv/bin/python", "-m", "pip", "list", "--format=json")
        installed = {p["name"].lower() for p in json.loads(listing.stdout)}
        assert {"grpcio", "protobuf", "docker", "enoexec"} <= installed
        assert not installed & {"aiohttp", "sqlalchemy", "psycopg", "psycopg-binary", "prometheus-client"}, installed

        facts = chroot.run("enoexec-agent", "facts", "--json", "--docker-host", "unix:///run/docker.sock")
        assert facts.returncode == 0, facts.stderr
        doc = json.loads(facts.stdout)
        # The agent runs on the Pi's userland; the platform is the Docker Engine's (this machine's).
        native = subprocess.run([sys.executable, "-m", "agent.cli", "facts", "--json", "--docker-host", engine.url],
                                capture_output=True, text=True, check=True, cwd=ROOT)
        want_platform = json.loads(native.stdout)["platform"]
        assert doc["kernel_machine"] == machine and doc["platform"] == want_platform, doc
        assert doc.get("docker_version"), doc

        diag = chroot.run("enoexec-agent", "diagnose", dead, "--json", "--no-registry", "--docker-host", "unix:///run/docker.sock")
        assert diag.returncode == 0, diag.stdout + diag.stderr
        event = json.loads(diag.stdout)
        assert event["cause"] == "arch_mismatch", event
        assert event["binary"]["platform"] == "linux/s390x" and event["host"]["platform"] == want_platform, event

        host_id = f"emu-{arch}"
        agent_proc = subprocess.Popen(
            chroot.argv("enoexec-agent", "run", "--config", "/etc/enoexec/agent.toml", "--docker-host", "unix:///run/docker.sock",
                        "--host-id", host_id, "--heartbeat-interval", "1", "--no-lookup-registry"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        api = f"http://127.0.0.1:{coll.http}/api/v1"

        def reported() -> Any:
            hosts = {h["host_id"]: h for h in procs.get_json(f"{api}/hosts")["hosts"]}
            events = procs.get_json(f"{api}/events?host={host_id}")["events"]
            return host_id in hosts and events and (hosts[host_id], events)

        host, events = procs.wait_for(reported, timeout=180, interval=1, what=f"{host_id} and its event at the collector")
        assert host["platform"] == want_platform
        assert events[0]["cause"] == "arch_mismatch"
    finally:
        if agent_proc is not None:
            agent_proc.send_signal(signal.SIGTERM)
            try:
                out, _ = agent_proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                agent_proc.kill()
                out, _ = agent_proc.communicate()
            print(out[-2000:])
        rootfs.remove(root)
        assert host_binfmt() == before, "the machine's own binfmt_misc changed"


@pytest.mark.parametrize("machine", ["armv7l", "aarch64", "x86_64"])
@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_agent_dependencies_have_wheels(machine: str, python: str, tmp_path: Path) -> None:
    """pip install enoexec needs no compiler on any Pi, Graviton or x86 host with CPython 3.11-3.13."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    platforms = [f"--platform=manylinux_2_36_{machine}", f"--platform=manylinux2014_{machine}", f"--platform=linux_{machine}"]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", python,
         "--dest", str(tmp_path), *platforms, *meta["project"]["dependencies"]],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 and "No matching distribution" not in proc.stderr:
        require.missing(f"cannot download wheels from PyPI: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, f"an agent dependency has no wheel for CPython {python} on {machine}:\n{proc.stderr[-2000:]}"
    names = {w.name.split("-")[0].lower() for w in tmp_path.glob("*.whl")}
    assert {"grpcio", "protobuf", "docker"} <= names, names
