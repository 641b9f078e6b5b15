"""What a host's CPU can run beyond its platform: the x86-64 level (from the
``flags`` of /proc/cpuinfo) or the ARM architecture version. Pure.

The x86-64 levels are the psABI's (x86-64-v2: SSE4.2 and POPCNT era; v3: AVX2,
BMI2, FMA; v4: AVX-512). On ARM, /proc/cpuinfo's ``CPU architecture`` says 7 on
an ARMv6 ARM1176 (Raspberry Pi 1 and Zero), so the ``model name`` (``ARMv6-compatible
processor``), the core (ARM1176) and ``uname -m`` (``armv6l``) decide first.
"""

from __future__ import annotations

from agent.host.cpuinfo import CpuInfo
from enoexec.platforms import level_number

__all__ = ["cpu_level", "level_number", "missing_x86_flags", "x86_level"]

_X86_LEVELS = (
    (2, frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})),
    (3, frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})),
    (4, frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)
_ARM1176 = (0x41, 0xB76)


def x86_level(flags: set[str] | frozenset[str]) -> int:
    """The highest x86-64 level (1-4) whose flags are all present."""
    level = 1
    for n, needed in _X86_LEVELS:
        if not needed <= flags:
            break
        level = n
    return level


def missing_x86_flags(flags: set[str] | frozenset[str], level: int) -> tuple[str, ...]:
    """The flags x86-64-v``level`` needs that ``flags`` lacks."""
    needed: set[str] = set()
    for n, more in _X86_LEVELS:
        if n <= level:
            needed |= more
    return tuple(sorted(needed - flags))


def cpu_level(kernel_machine: str, cpu: CpuInfo) -> str:
    """"x86-64-vN", "armv6", "armv7", "armv8", or "" when /proc/cpuinfo does not say."""
    if kernel_machine == "x86_64":
        flags = cpu.fields.get("flags", "")
        return f"x86-64-v{x86_level(frozenset(flags.split()))}" if flags else ""
    if kernel_machine == "aarch64":
        return "armv8"
    if not kernel_machine.startswith("arm"):
        return ""
    model = cpu.fields.get("model name", "") or cpu.fields.get("Processor", "")
    if kernel_machine.startswith("armv6") or model.lower().startswith("armv6") or _ARM1176 in cpu.cores:
        return "armv6"
    arch = cpu.fields.get("CPU architecture", "")
    if arch.isdigit():
        return f"armv{arch}"
    return ""
