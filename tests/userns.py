"""Run a command in a new user and mount namespace with a private binfmt_misc.

``python3 tests/userns.py [--qemu ARCH]... -- COMMAND...``

The namespace maps every uid and gid to itself (the caller must be root), so
files keep their owners, yet it owns its mount namespace: on Linux >= 6.7 it can
mount a binfmt_misc of its own. QEMU interpreters registered there (with the F
flag, so they work inside a chroot) are seen only by this process tree; the
host's /proc/sys/fs/binfmt_misc is never touched.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
BINFMT = "/proc/sys/fs/binfmt_misc"

# name: (magic, mask, interpreter) as in Debian's /usr/lib/binfmt.d/qemu-*.conf.
QEMU = {
    "arm": (
        r"\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        "/usr/bin/qemu-arm-static",
    ),
    "aarch64": (
        r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        "/usr/bin/qemu-aarch64-static",
    ),
}


def _child(ready_w: int, go_r: int, qemu: list[str], argv: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        sys.stderr.write(f"userns: unshare: {os.strerror(err)}\n")
        os._exit(3)
    os.write(ready_w, b"u")
    if os.read(go_r, 1) != b"g":
        os._exit(3)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT], check=True)
    for name in qemu:
        magic, mask, interp = QEMU[name]
        with open(f"{BINFMT}/register", "w") as f:
            f.write(f":qemu-{name}:M::{magic}:{mask}:{interp}:OCF")
    os.execvp(argv[0], argv)


def main(args: list[str]) -> int:
    qemu: list[str] = []
    while args and args[0] == "--qemu":
        qemu.append(args[1])
        args = args[2:]
    if not args or args[0] != "--":
        sys.stderr.write(__doc__ or "")
        return 2
    argv = args[1:]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _child(ready_w, go_r, qemu, argv)
        except Exception as e:  # noqa: BLE001 - report and exit from the forked child
            sys.stderr.write(f"userns: {e}\n")
        os._exit(3)
    if os.read(ready_r, 1) != b"u":
        os.waitpid(pid, 0)
        return 3
    # Identity maps: the parent (root in the initial namespace) may write any range.
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("0 0 4294967295\n")
    for sig in (signal.SIGTERM, signal.SIGINT):  # stopping the helper stops the command
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    os.write(go_w, b"g")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
