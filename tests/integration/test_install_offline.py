"""install.sh on a host with no network: the real cause when there is no index,
``--wheels DIR`` filled by deploy/fetch-wheels.sh when there is none, and the
agent certificate hint followed as printed.

The host is the amd64 Debian bookworm rootfs of tests/integration/test_systemd_boot.py
(mmdebstrap, cached for the day), entered with chroot in a network namespace of
its own (tests/rootfs.py ``Chroot(network=False)``): no interface but a loopback
that is down, so no name resolves and no index answers, as on an air-gapped host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import require, rootfs

pytestmark = pytest.mark.timeout(1200)

INSTALL = ("bash", "/src/deploy/install.sh", "--python", "/usr/bin/python3")
COLLECTOR_ONLY = {"aiohttp", "sqlalchemy", "psycopg", "psycopg-binary", "prometheus-client"}


def wheels(machine: str, *, collector: bool = False) -> Path:
    try:
        return rootfs.wheels(machine, collector=collector)
    except rootfs.NoWheel as e:
        pytest.fail(str(e))
    except rootfs.DownloadFailed as e:
        require.missing(str(e))


@pytest.fixture
def host(tmp_path: Path) -> Iterator[rootfs.Chroot]:
    """A fresh amd64 bookworm with this checkout in /src, an empty /wheels, and no network."""
    if os.geteuid() != 0:
        require.missing("the offline install test needs root (mmdebstrap --mode=root, chroot)")
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("unshare", "util-linux"), ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            require.missing(f"{tool} not found (apt-get install {package})")
    try:
        fs = rootfs.build("amd64", rootfs.BOOT_PACKAGES, variant=rootfs.BOOT_VARIANT)
    except rootfs.MirrorOutage as e:
        require.missing(str(e.args[0]))  # the mirror's fault, not the installer's; CI still fails on it (tests/require.py)
    root = rootfs.extract(fs.tarball, tmp_path / "root")
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    rootfs.prepare(root, empty)
    try:
        chroot = rootfs.Chroot(root, None, network=False)
        probe = chroot.run("python3", "-c", "import socket; socket.getaddrinfo('pypi.org', 443)")
        assert probe.returncode != 0 and "name resolution" in probe.stderr, "the chroot is not offline: " + probe.stderr
        yield chroot
    finally:
        rootfs.remove(root)


def copy_wheels(chroot: rootfs.Chroot, src: Path, pattern: str = "*.whl") -> None:
    for w in src.glob(pattern):
        shutil.copy2(w, chroot.root / "wheels" / w.name)


def test_without_an_index_the_installer_names_the_cause(host: rootfs.Chroot) -> None:
    """No index and no --wheels: the last lines say pip could not resolve the index's name, and how to install offline."""
    proc = host.run(*INSTALL, "--agent", "--collector-address", "127.0.0.1:7469")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-4:]
    cause = [line for line in last if "could not reach the package index" in line]
    assert cause and "name resolution" in cause[0] and "--wheels DIR" in cause[0], "\n".join(last)
    assert not (host.root / "opt/enoexec").exists() and not (host.root / "usr/local/bin/enoexec-agent").exists()


def test_wheels_missing_for_this_host_are_named(host: rootfs.Chroot) -> None:
    """--wheels DIR without this host's wheels: the package and the fetch-wheels.sh command that adds it."""
    copy_wheels(host, wheels("x86_64", collector=True))
    for grpcio in (host.root / "wheels").glob("grpcio-*.whl"):
        grpcio.unlink()
    proc = host.run(*INSTALL, "--agent", "--collector-address", "127.0.0.1:7469", "--wheels", "/wheels")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = "\n".join(proc.stderr.strip().splitlines()[-4:])
    assert re.search(r"/wheels has no wheel of grpcio\S* for this host \(CPython 3\.11 on x86_64\)", last), last
    assert "deploy/fetch-wheels.sh DIR --arch x86_64 --python-version 3.11" in last, last
    assert not (host.root / "opt/enoexec").exists()


def test_offline_install_from_fetched_wheels_and_the_certificate_hint(host: rootfs.Chroot) -> None:
    """fetch-wheels.sh here, install.sh --wheels there with no network; the agent's TLS hint works as printed."""
    filled = wheels("x86_64", collector=True)
    copy_wheels(host, filled)

    # What an earlier build left in the checkout's build/ (a module deleted since) must not be installed.
    stale = host.root / "src/build/lib/agent/stale_module.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("STALE = True\n")

    # An agent for a collector elsewhere: installed offline; no CA here, so it prints where to make its certificate.
    agent = host.run(*INSTALL, "--agent", "--collector-address", "collector.example:7469", "--wheels", "/wheels")
    assert agent.returncode == 0, agent.stdout[-3000:] + agent.stderr[-3000:]
    assert "Successfully installed" in agent.stdout
    assert not list((host.root / "opt/enoexec/venv").rglob("stale_module.py")), "install.sh installed a stale build/ module"
    assert not list((host.root / "tmp").glob("tmp.*")), "install.sh left its copy of the checkout behind"
    hint = [line.split(":", 1)[1].strip() for line in agent.stdout.splitlines() if "make-certs.sh agent" in line]
    assert hint, agent.stdout[-3000:]
    command = hint[0]
    host_id = command.split()[-1]
    assert f'host_id = "{host_id}"' in agent.stdout

    # The collector's host (here the same rootfs): install.sh --collector makes the CA the hint names.
    coll = host.run(*INSTALL, "--collector", "--wheels", "/wheels")
    assert coll.returncode == 0, coll.stdout[-3000:] + coll.stderr[-3000:]
    assert (host.root / "etc/enoexec/tls/ca.key").is_file()

    # The hint's command, run as printed from the checkout on the CA's host.
    made = host.run("bash", "-c", f"cd /src && {command}")
    assert made.returncode == 0, f"{command}: {made.stderr}"
    verify = host.run("openssl", "verify", "-CAfile", "/etc/enoexec/tls/ca.crt", f"/etc/enoexec/tls/agent-{host_id}.crt")
    assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stdout + verify.stderr

    # The wheel fetch-wheels.sh built is the agent alone (README: build the wheel, pip install it).
    alone = host.run("bash", "-c", "python3 -m venv /tmp/alone && /tmp/alone/bin/pip install -q --no-index --find-links /wheels enoexec "
                     "&& /tmp/alone/bin/pip list --format=json")
    assert alone.returncode == 0, alone.stderr[-2000:]
    installed = {p["name"].lower() for p in json.loads(alone.stdout.strip().splitlines()[-1])}
    assert {"enoexec", "grpcio", "protobuf", "docker"} <= installed and not installed & COLLECTOR_ONLY, installed
    assert list(filled.glob("enoexec-*-py3-none-any.whl")), "fetch-wheels.sh built no pure-Python enoexec wheel"
