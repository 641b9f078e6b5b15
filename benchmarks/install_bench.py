"""Install time of ``deploy/install.sh --agent`` per architecture, on minimal
Debian bookworm root filesystems (tests/rootfs.py), armhf and arm64 under QEMU
user emulation, amd64 natively (the baseline from the same run).

Wheels are fetched for each platform beforehand (deploy/fetch-wheels.sh) and
installed offline (install.sh --wheels, no network in the rootfs), so
the figure is the installer's own work (virtualenv, resolve, unpack, byte-
compile, users, config) without the network. Also times ``enoexec-agent
--help`` (the import cost every command pays). Needs root, mmdebstrap and
qemu-user-static; rootfs tarballs are cached for the day (ENOEXEC_TEST_CACHE).

    sudo .venv/bin/python benchmarks/install_bench.py [--quick] [--arch ARCH ...]

--quick: amd64 and arm64 only, once each (under a minute with cached rootfs
tarballs). Emulation is slower than the hardware: a Raspberry Pi 4 runs
armhf code several times faster than QEMU on one x86 core.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import rootfs  # noqa: E402


def bench(arch: str) -> dict[str, object]:
    qemu, machine = rootfs.ARCHES[arch]
    started = time.monotonic()
    fs = rootfs.build(arch, rootfs.AGENT_PACKAGES)
    build_s = time.monotonic() - started
    wheels = rootfs.wheels(machine)
    with tempfile.TemporaryDirectory(prefix="enoexec-install-bench-") as tmp:
        root = rootfs.extract(fs.tarball, Path(tmp) / "root")
        try:
            rootfs.prepare(root, wheels)
            chroot = rootfs.Chroot(root, qemu, network=False)
            started = time.monotonic()
            proc = chroot.run("bash", "/src/deploy/install.sh", "--agent", "--insecure", "--wheels", "/wheels",
                              "--collector-address", "127.0.0.1:7469", "--python", "/usr/bin/python3")
            install_s = time.monotonic() - started
            if proc.returncode != 0:
                raise SystemExit(f"{arch}: install.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            started = time.monotonic()
            chroot.run("enoexec-agent", "--help")
            help_s = time.monotonic() - started
        finally:
            rootfs.remove(root)
    return {"arch": arch, "emulated": qemu is not None, "rootfs_s": build_s, "install_s": install_s, "help_s": help_s, "note": fs.note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="amd64 and arm64 only")
    parser.add_argument("--arch", action="append", choices=sorted(rootfs.ARCHES), help="architectures (default: all)")
    args = parser.parse_args()
    arches = args.arch or (["amd64", "arm64"] if args.quick else ["amd64", "arm64", "armhf"])
    print(f"machine: {platform.machine()}, {platform.node()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print("| arch | run as | rootfs build s (0 = cached) | install.sh --agent s | enoexec-agent --help s |")
    print("|---|---|---|---|---|")
    for arch in arches:
        r = bench(arch)
        how = "QEMU user emulation" if r["emulated"] else "native (baseline)"
        print(f"| {arch} | {how} | {r['rootfs_s']:.0f} | {r['install_s']:.0f} | {r['help_s']:.1f} |", flush=True)
        if r["note"]:
            print(f"  ({arch}: {r['note']})")


if __name__ == "__main__":
    main()
