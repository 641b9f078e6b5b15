"""An armv7 binary on an ARMv6 board (Raspberry Pi Zero/1): a real Debian armhf
binary, judged against the Pi Zero fixture host, and the real SIGILL it dies of
on an ARM1176 (QEMU's arm1176 model, in the private binfmt_misc namespace of
tests/userns.py: the machine's own binfmt_misc is never touched).

The death cannot happen in this machine's Docker Engine (its containers have no
ARM emulation, and registering one for it is forbidden here), so the exit the
Diagnoser is handed says what QEMU showed: exit 132, SIGILL, in the first
second; everything else is real: the image, the container, the archive reads
(the ELF's .ARM.attributes sit in the last KiB of a 1.2 MiB file).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.diagnosis.diagnose import Diagnoser, Exit
from agent.host import hostfacts
from enoexec import causes
from tests import debs, require
from tests.images import File
from tests.unit.test_hostfacts import fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def busybox() -> bytes:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        require.missing("apt-get and dpkg-deb are needed to fetch a Debian armhf binary")
    return debs.binary("busybox-static", "armhf", "bin/busybox")


def test_armhf_busybox_dies_of_sigill_on_an_arm1176(busybox: bytes, tmp_path: Path) -> None:
    if shutil.which("qemu-arm-static") is None:
        require.missing("qemu-arm-static is needed (apt-get install qemu-user-static)")
    exe = tmp_path / "busybox"
    exe.write_bytes(busybox)
    exe.chmod(0o755)
    # The kernel hands the ELF to QEMU through the namespace's binfmt_misc; binfmt_misc
    # passes no options, so QEMU_CPU picks the core. The shell prints the exit status.
    script = f'{exe} true; echo "v7 $?"; QEMU_CPU=arm1176 {exe} true; echo "arm1176 $?"'
    done = subprocess.run([sys.executable, str(ROOT / "tests/userns.py"), "--qemu", "arm", "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[:2] == ["v7 0", "arm1176 132"], (done.stdout, done.stderr)  # 128 + SIGILL
    assert "Illegal instruction" in done.stderr


def test_armhf_binary_on_a_pi_zero_is_cpu_level(dock: Any, api: Any, busybox: bytes) -> None:
    pi_zero = hostfacts.gather(**fixture("pi-zero-armv6"))
    assert (pi_zero.platform, pi_zero.cpu_level) == ("linux/arm/v6", "armv6")
    tag = dock.load("bb-armhf", [File("/bin/busybox", busybox)], architecture="arm", variant="v7",
                    entrypoint=["/bin/busybox"], cmd=["true"])
    # No log: what this engine's runtime printed (exec format error) is not what a Pi Zero's prints.
    cid = dock.run(tag, host_config={"log_config": {"Type": "none", "Config": {}}})
    ev = Diagnoser(api, lambda: pi_zero, lookup_registry=False).diagnose(Exit(cid, 132, tag)).event
    assert ev is not None
    assert (ev.cause, ev.failure, ev.evidence) == (causes.CPU_LEVEL, causes.START_FAILURE, "exit_signal")
    # The variant was read from the file's own build attributes, at its end.
    assert (ev.binary.platform, ev.binary.variant_guessed, ev.binary.size) == ("linux/arm/v7", False, len(busybox))
    assert "armv6" in ev.explanation and "v7" in ev.explanation
    # A Pi 4 (ARMv7) runs it: the same crash there is not a CPU-level problem.
    pi4 = hostfacts.gather(**fixture("pi-armv7l"))
    assert Diagnoser(api, lambda: pi4, lookup_registry=False).diagnose(Exit(cid, 132, tag)).event is None
