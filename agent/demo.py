"""``enoexec-agent demo``: make a foreign-architecture image locally and run it.

The image is built from scratch (no registry): its entrypoint is an ELF header
for another CPU, so this host's kernel refuses it with a genuine exec format
error, which a running agent catches within seconds. Without ``--platform`` the
platform is chosen (:func:`choose_platform`) so that this host neither runs it
natively nor has any binfmt_misc registration for it: an arm64 host gets amd64,
an amd64 host arm64, a host emulating both s390x.
"""

from __future__ import annotations

import io
from typing import Any

from agent.engine import scratch_image
from agent.errors import AgentError, ConfigError
from agent.model import HostFacts
from enoexec import platforms

# platform -> (e_machine, bits, little endian, image architecture, variant)
_TARGETS = {
    platforms.ARM64: (scratch_image.EM_AARCH64, 64, True, "arm64", ""),
    platforms.AMD64: (scratch_image.EM_X86_64, 64, True, "amd64", ""),
    platforms.S390X: (scratch_image.EM_S390, 64, False, "s390x", ""),
    platforms.PPC64LE: (scratch_image.EM_PPC64, 64, True, "ppc64le", ""),
    platforms.RISCV64: (scratch_image.EM_RISCV, 64, True, "riscv64", ""),
    platforms.ARM_V7: (scratch_image.EM_ARM, 32, True, "arm", "v7"),
}
TARGETS = tuple(_TARGETS)  # also the order of preference


def choose_platform(host: HostFacts, targets: tuple[str, ...] = TARGETS) -> str:
    """The first of ``targets`` this host can neither run nor emulate.

    Every enabled binfmt_misc registration counts, with the F flag or without: an
    entry without F would make the kernel look for the emulator inside the demo
    image and fail with "no such file or directory" instead of exec format error.
    """
    ruled_out = _runs_or_emulates(host)
    for p in targets:
        if p not in ruled_out:
            return p
    raise AgentError(f"this host runs or emulates every demo platform ({', '.join(targets)}); nothing would fail here")


def check_platform(host: HostFacts, platform: str) -> None:
    """Refuse a ``--platform`` this host runs or emulates: the demo would not fail there."""
    if platform in _runs_or_emulates(host):
        raise ConfigError(f"--platform {platform}: this host runs or emulates it, so the demo would not fail with "
                          f"exec format error; leave --platform out to get {choose_platform(host)}")


def _runs_or_emulates(host: HostFacts) -> set[str]:
    ruled_out = set(host.runnable_platforms) | {host.platform}
    return ruled_out | {e.platform for e in host.emulators if e.enabled and e.platform}


def run(api: Any, platform: str = platforms.ARM64) -> dict[str, Any]:
    """Load ``enoexec-demo/<arch>:latest`` and run it once; returns the container's state."""
    if platform not in _TARGETS:
        raise AgentError(f"--platform: choose one of {', '.join(TARGETS)}")
    machine, bits, little, arch, variant = _TARGETS[platform]
    tag = f"enoexec-demo/{arch}{variant}:latest"
    data = scratch_image.archive(
        tag, [scratch_image.File("/app", scratch_image.elf(machine, bits=bits, little=little))],
        architecture=arch, variant=variant, entrypoint=["/app"],
    )
    for _ in api.load_image(io.BytesIO(data)):
        pass
    c = api.create_container(tag, host_config=api.create_host_config(network_mode="none"), name=None)
    api.start(c["Id"])
    api.wait(c["Id"], timeout=60)
    state = api.inspect_container(c["Id"])["State"]
    logs = api.logs(c["Id"], tail=1).decode(errors="replace").strip()
    return {"image": tag, "container": c["Id"], "exit_code": state["ExitCode"], "log": logs}
