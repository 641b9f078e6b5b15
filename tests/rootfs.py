"""Minimal Debian bookworm root filesystems from this machine's apt sources, for
the install tests, built with mmdebstrap and cached as tarballs (one per
architecture, package set and day, so a run a day later picks up security updates).

Foreign architectures are built inside ``tests/userns.py``: a private user and
mount namespace with its own binfmt_misc, QEMU registered there only.
"""

from __future__ import annotations

import atexit
import datetime
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USERNS = ROOT / "tests" / "userns.py"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUITE = "bookworm"
# A minimal userland the agent installs on: Python with venv, no compiler, no Recommends.
AGENT_PACKAGES = ["python3", "python3-venv", "ca-certificates", "passwd"]
# The amd64 userland that boots systemd (tests/integration/test_systemd_boot.py).
BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates", "openssl", "passwd"]
BOOT_VARIANT = "minbase"

# Debian architecture -> (QEMU binfmt name in tests/userns.py, machine as uname -m reports it)
ARCHES = {
    "armhf": ("arm", "armv7l"),
    "arm64": ("aarch64", "aarch64"),
    "amd64": (None, "x86_64"),
}

# apt/mirror trouble, not ours: a mirror being synced, a proxy, no network.
OUTAGE = re.compile(
    r"unexpected size|Hash Sum mismatch|File has unexpected|Failed to fetch|Temporary failure resolving|"
    r"Could not (connect|resolve)|Connection (failed|timed out|refused)|Release file .* is not valid yet|"
    r"does not have a Release file|404\s+Not Found|Clearsigned file isn't valid",
)


class MirrorOutage(Exception):
    """The Debian mirror (or the way to it) failed; the message quotes apt."""


def cache_dir() -> Path:
    d = Path(os.environ.get("ENOEXEC_TEST_CACHE", "/var/cache/enoexec-tests"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def sources() -> Path:
    if SOURCES.is_file():
        return SOURCES
    legacy = Path("/etc/apt/sources.list")
    return legacy


@dataclass(frozen=True)
class Rootfs:
    tarball: Path
    note: str = ""  # e.g. which suite was left out because its mirror failed


def build(arch: str, include: list[str], *, variant: str = "apt", timeout: float = 1500) -> Rootfs:
    """A tarball of a bookworm rootfs for ``arch`` with ``include``; cached for the day.

    When only an update suite's index fails (bookworm-security's armhf index
    has been seen with "unexpected size" for hours), the rootfs is built
    without that suite and ``note`` says so; when the main suite fails,
    MirrorOutage quotes apt.
    """
    text = sources().read_text()
    try:
        return Rootfs(_build(arch, include, variant, text, timeout))
    except MirrorOutage as e:
        suite = e.args[1] if len(e.args) > 1 else ""
        if not suite or suite == SUITE:
            raise
        reduced = _without_suite(text, suite)
        note = f"built without {suite}: {e.args[0]}"
        return Rootfs(_build(arch, include, variant, reduced, timeout), note)


def _build(arch: str, include: list[str], variant: str, sources_text: str, timeout: float) -> Path:
    key = hashlib.sha256(f"{variant} {' '.join(sorted(include))} {sources_text}".encode()).hexdigest()[:10]
    out = cache_dir() / f"{SUITE}-{arch}-{datetime.date.today().isoformat()}-{key}.tar"
    # One build per tarball at a time: a second test run waits for the first one's.
    with open(cache_dir() / f"{SUITE}-{arch}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        return _build_locked(arch, include, variant, sources_text, timeout, key, out)


def _build_locked(arch: str, include: list[str], variant: str, sources_text: str, timeout: float, key: str, out: Path) -> Path:
    for old in cache_dir().glob(f"{SUITE}-{arch}-*-{key}.tar"):
        old.unlink()  # an older day's tarball
    partial = out.with_suffix(".partial.tar")
    src = cache_dir() / f"sources-{key}.sources"
    src.write_text(sources_text)
    argv = [
        "mmdebstrap", "--mode=root", f"--arch={arch}", f"--variant={variant}",
        f"--include={','.join(include)}", "--aptopt=Acquire::Retries \"3\"",
        "--skip=output/mknod,check/qemu", SUITE, str(partial), str(src),
    ]
    qemu = ARCHES[arch][0]
    if qemu is not None:
        argv = [sys.executable, str(USERNS), "--qemu", qemu, "--", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        apt_lines = [line.strip() for line in proc.stderr.splitlines() if OUTAGE.search(line)]
        if apt_lines:
            line = next((x for x in apt_lines if x.startswith("E:")), apt_lines[0])
            failed = re.search(r"/dists/([\w.-]+)/", line)
            raise MirrorOutage(f"Debian mirror failed while building the {arch} rootfs: {line[:300]}", failed.group(1) if failed else "")
        raise RuntimeError(f"mmdebstrap {arch} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    partial.rename(out)
    return out


def _without_suite(sources_text: str, suite: str) -> str:
    """deb822 sources without ``suite`` (a stanza left with no suite goes too)."""
    out = []
    for stanza in sources_text.split("\n\n"):
        lines = stanza.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Suites:"):
                kept = [x for x in line.split()[1:] if x != suite]
                lines[i] = "Suites: " + " ".join(kept) if kept else ""
        if any(line.startswith("Suites:") for line in lines) or not any(line.startswith("Types:") for line in lines):
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


class NoWheel(Exception):
    """A dependency has no wheel for the platform."""


class DownloadFailed(Exception):
    """PyPI could not be reached."""


BOOKWORM_PYTHON = "3.11"
FETCH_WHEELS = ROOT / "deploy" / "fetch-wheels.sh"


@functools.cache
def wheels(machine: str, *, collector: bool = False) -> Path:
    """A directory filled by deploy/fetch-wheels.sh for ``machine`` and CPython 3.11
    (the agent's wheels; with ``collector`` the collector's too), once per process."""
    d = Path(tempfile.mkdtemp(prefix=f"wheels-{machine}-", dir=cache_dir()))
    atexit.register(shutil.rmtree, d, True)
    argv = ["bash", str(FETCH_WHEELS), str(d), "--arch", machine, "--python-version", BOOKWORM_PYTHON, "--glibc", "2.36"]
    if collector:
        argv.append("--collector")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "PYTHON": sys.executable})
    if proc.returncode != 0:
        if "has no wheel" in proc.stderr:
            raise NoWheel(f"fetch-wheels.sh: a dependency has no CPython {BOOKWORM_PYTHON} wheel for {machine}:\n{proc.stderr[-2000:]}")
        raise DownloadFailed(f"fetch-wheels.sh could not fill a wheel directory: {proc.stderr.strip()[-500:]}")
    return d


# Mount what the chroot needs (in the private namespace only) and run a command in it.
CHROOT = r"""
set -e
R=$1; SOCK=$2; shift 2
mount --rbind /proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
[ -z "$SOCK" ] || mount --bind "$SOCK" "$R/run/docker.sock"
exec chroot "$R" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
"""


@dataclass(frozen=True)
class Chroot:
    """Commands in an extracted rootfs, in a private namespace (QEMU registered there for a foreign arch).

    With ``network=False`` the commands run in a network namespace of their own:
    no interface but a loopback that is down, so no name resolves and no host
    answers (an air-gapped host). The Docker socket, a file, still works.
    """

    root: Path
    qemu: str | None
    docker_socket: str = ""  # bound to /run/docker.sock inside
    network: bool = True

    def argv(self, *command: str) -> list[str]:
        qemu = ["--qemu", self.qemu] if self.qemu else []
        offline = [] if self.network else ["unshare", "--net"]
        return [*offline, sys.executable, str(USERNS), *qemu, "--", "bash", "-c", CHROOT, "chroot", str(self.root), self.docker_socket, *command]

    def run(self, *command: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*command), capture_output=True, text=True, timeout=timeout, check=False)


def prepare(root: Path, wheels: Path) -> None:
    """Copy this checkout (its git-tracked and new files) to /src and the wheels to /wheels."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        src = ROOT / name
        if src.is_file():
            dest = root / "src" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    (root / "wheels").mkdir()
    for w in wheels.glob("*.whl"):
        shutil.copy2(w, root / "wheels" / w.name)
    (root / "run/docker.sock").touch()


def extract(tarball: Path, dest: Path) -> Path:
    """Unpack a cached rootfs (as root, owners kept) into ``dest``."""
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(dest), "--numeric-owner"], check=True)
    return dest


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
