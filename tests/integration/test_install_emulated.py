"""deploy/install.sh --agent on the real Debian bookworm userlands of a 32-bit
and a 64-bit Raspberry Pi (armhf, arm64), run under QEMU user emulation.

Each rootfs is made by mmdebstrap from this machine's apt sources with no
Recommends and no compiler. The agent's wheels are downloaded here for the
target platform and installed offline (PIP_NO_INDEX), which proves no build
step is needed. Inside the rootfs the installed agent then reads host facts
and diagnoses a dead container from the Docker Engine on this machine (its
socket bound in), and streams to a collector on this machine over loopback.

QEMU is registered only in a private binfmt_misc (tests/userns.py); the test
checks the machine's own /proc/sys/fs/binfmt_misc is the same afterwards.
A Debian mirror outage skips with apt's message; an install failure fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests import images, procs, require, rootfs
from tests.images import File

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["python3", "python3-venv", "ca-certificates", "passwd"]
BOOKWORM_PYTHON = "3.11"
HOST_BINFMT = Path("/proc/sys/fs/binfmt_misc")

# Mount what the chroot needs (in the private namespace only) and run a command in it.
CHROOT = r"""
set -e
R=$1; SOCK=$2; shift 2
mount --rbind /proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount --bind "$SOCK" "$R/run/docker.sock"
exec chroot "$R" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels "$@"
"""


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
    """The agent's dependencies and build requirements as wheels for ``machine``, CPython 3.11."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = meta["project"]["dependencies"] + meta["build-system"]["requires"]
    d = rootfs.cache_dir() / f"wheels-{machine}-cp{BOOKWORM_PYTHON.replace('.', '')}-{time.strftime('%Y-%m-%d')}"
    done = d / ".complete"
    if done.exists():
        return d
    platforms = [f"manylinux_2_36_{machine}", f"manylinux2014_{machine}", f"linux_{machine}"]
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", BOOKWORM_PYTHON,
            "--dest", str(d), *[f"--platform={p}" for p in platforms], *reqs]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if "No matching distribution" in proc.stderr:
            pytest.fail(f"an agent dependency has no CPython {BOOKWORM_PYTHON} wheel for {machine}:\n{proc.stderr[-2000:]}")
        require.missing(f"cannot download wheels from PyPI: {proc.stderr.strip().splitlines()[-1:]}")
    done.touch()
    return d


class Chroot:
    def __init__(self, root: Path, qemu: str, socket_path: str) -> None:
        self.root, self.qemu, self.socket = root, qemu, socket_path

    def argv(self, *command: str) -> list[str]:
        return [sys.executable, str(rootfs.USERNS), "--qemu", self.qemu, "--",
                "bash", "-c", CHROOT, "chroot", str(self.root), self.socket, *command]

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*command), capture_output=True, text=True, timeout=timeout)


def copy_tree(src_files: list[str], dest: Path) -> None:
    dest.mkdir(parents=True)
    tar = subprocess.Popen(["tar", "-cf", "-", "-T", "-"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    untar = subprocess.Popen(["tar", "-xf", "-", "-C", str(dest)], stdin=tar.stdout)
    assert tar.stdin is not None and tar.stdout is not None
    tar.stdout.close()
    tar.stdin.write("\n".join(src_files).encode())
    tar.stdin.close()
    assert tar.wait() == 0 and untar.wait() == 0


@pytest.mark.parametrize("arch", ["armhf", "arm64"])
def test_agent_installs_and_runs_on_pi_userland(arch: str, tmp_path: Path, engine: Any, dock: Any, collector: Any) -> None:
    prerequisites()
    if not engine.url.startswith("unix://"):
        require.missing("the rootfs binds the Docker Engine's unix socket; DOCKER_HOST is not one")
    qemu, machine = rootfs.ARCHES[arch]
    assert qemu is not None
    before = host_binfmt()
    try:
        fs = rootfs.build(arch, PACKAGES)
    except rootfs.MirrorOutage as e:
        pytest.skip(str(e.args[0]))  # the mirror's fault, not the installer's: even in CI
    if fs.note:
        print(f"\n{arch}: {fs.note}")
    wheel_dir = wheels(machine)

    root = rootfs.extract(fs.tarball, tmp_path / "root")
    assert not (root / "usr/bin/gcc").exists() and not (root / "usr/bin/cc").exists(), "the rootfs must have no compiler"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    copy_tree([f for f in files.stdout.splitlines() if (ROOT / f).is_file()], root / "src")
    (root / "wheels").mkdir()
    for w in wheel_dir.glob("*.whl"):
        (root / "wheels" / w.name).write_bytes(w.read_bytes())
    sock = engine.url.removeprefix("unix://")
    (root / "run/docker.sock").touch()
    chroot = Chroot(root, qemu, sock)

    coll = collector()
    foreign = dock.load("s390x-app", [File("/app", images.elf(images.EM_S390, little=False))], architecture="s390x", entrypoint=["/app"])
    dead = dock.run(foreign)
    agent_proc: subprocess.Popen[str] | None = None
    try:
        gid = os.stat(sock).st_gid
        assert chroot.run("groupadd", "-o", "-g", str(gid), "docker").returncode == 0

        started = time.monotonic()
        install = chroot.run("bash", "/src/deploy/install.sh", "--agent", "--insecure",
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
