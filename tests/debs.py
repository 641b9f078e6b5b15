"""One real Debian binary for a foreign architecture, from the Debian archive
this machine's apt uses, without touching the machine's dpkg or apt state: a
private apt configuration (its own lists and cache, one architecture) downloads
the package, ``dpkg-deb -x`` unpacks it. Cached for the day (tests.rootfs.cache_dir).
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests import rootfs


def binary(package: str, arch: str, path: str, *, timeout: float = 600) -> bytes:
    """The file ``path`` from ``package`` (``arch``) of bookworm, e.g.
    ``binary("busybox-static", "armhf", "bin/busybox")``."""
    day = datetime.date.today().isoformat()
    out = rootfs.cache_dir() / f"deb-{package}-{arch}-{day}-{path.replace('/', '_')}"
    if out.exists():
        return out.read_bytes()
    apt = rootfs.cache_dir() / f"apt-{arch}"
    for d in ("lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(rootfs.sources(), apt / "etc/sources.list.d" / rootfs.sources().name)
    opts = [
        "-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}",
        "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}",
        "-o", f"Dir::State::status={apt / 'status'}",
        "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={apt / 'etc/sources.list.d'}",
        "-o", f"Dir::Etc::Preferences.d={apt / 'etc/preferences.d'}",
        "-o", "Debug::NoLocking=1", "-q",
    ]
    (apt / "status").touch()
    with tempfile.TemporaryDirectory(prefix="enoexec-deb-") as tmp:
        for command in (["update"], ["download", f"{package}:{arch}"]):
            done = subprocess.run(["apt-get", *opts, *command], cwd=tmp, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise rootfs.MirrorOutage(f"apt-get {command[0]} {package}:{arch}: {done.stderr.strip()[-500:]}")
        deb = next(Path(tmp).glob(f"{package}_*_{arch}.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True, timeout=120)
        data = (Path(tmp) / "x" / path).read_bytes()
    out.write_bytes(data)
    return data
