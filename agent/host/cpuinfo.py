"""Name a host's CPU from /proc/cpuinfo, and know which arm64 cores lack AArch32. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuInfo:
    fields: Mapping[str, str]  # first value of every "key : value" line, keys as printed
    cores: tuple[tuple[int, int], ...] = ()  # arm: (CPU implementer, CPU part) per processor


def parse_cpuinfo(text: str) -> CpuInfo:
    fields: dict[str, str] = {}
    cores, implementer = [], -1
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            continue
        fields.setdefault(key, value)
        try:
            if key == "CPU implementer":
                implementer = int(value, 16)
            elif key == "CPU part" and implementer >= 0:
                cores.append((implementer, int(value, 16)))
        except ValueError:
            continue
    return CpuInfo(fields, tuple(cores))


_IMPLEMENTERS = {0x41: "ARM", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon", 0x4E: "NVIDIA",
                 0x51: "Qualcomm", 0x61: "Apple", 0xC0: "Ampere"}  # fmt: skip
# (implementer, part) -> core name, as lscpu prints it.
_CORES = {
    (0x41, 0xB76): "ARM1176", (0x41, 0xC07): "Cortex-A7", (0x41, 0xC08): "Cortex-A8",
    (0x41, 0xC09): "Cortex-A9", (0x41, 0xC0F): "Cortex-A15", (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35", (0x41, 0xD05): "Cortex-A55", (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72", (0x41, 0xD09): "Cortex-A73", (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76", (0x41, 0xD0C): "Neoverse-N1", (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD40): "Neoverse-V1", (0x41, 0xD41): "Cortex-A78", (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD46): "Cortex-A510", (0x41, 0xD47): "Cortex-A710", (0x41, 0xD48): "Cortex-X2",
    (0x41, 0xD49): "Neoverse-N2", (0x41, 0xD4A): "Neoverse-E1", (0x41, 0xD4D): "Cortex-A715",
    (0x41, 0xD4E): "Cortex-X3", (0x41, 0xD4F): "Neoverse-V2", (0x41, 0xD80): "Cortex-A520",
    (0x41, 0xD81): "Cortex-A720", (0x41, 0xD82): "Cortex-X4", (0x41, 0xD84): "Neoverse-V3",
    (0x48, 0xD01): "Kunpeng-920", (0xC0, 0xAC3): "Ampere-1", (0xC0, 0xAC4): "Ampere-1a",
    (0x46, 0x001): "A64FX", (0x43, 0x0AF): "ThunderX2-99xx",
}  # fmt: skip
# Cores without AArch32 at EL0, per Arm's technical reference manuals. Only cores we
# are sure of; every Apple core (implementer 0x61) is AArch64-only too.
_NO_AARCH32 = frozenset({(0x41, 0xD48), (0x41, 0xD4D), (0x41, 0xD4E), (0x41, 0xD4F)})


def lacks_aarch32(cpu: CpuInfo) -> bool:
    """True if some core is known to run no 32-bit arm code (Linux then refuses it)."""
    return any(core in _NO_AARCH32 or core[0] == 0x61 for core in cpu.cores)


def _core_name(implementer: int, part: int) -> str:
    vendor = _IMPLEMENTERS.get(implementer, f"implementer 0x{implementer:02x}")
    return _CORES.get((implementer, part), f"{vendor} part 0x{part:03x}")


def cpu_model(cpu: CpuInfo, board: str = "") -> str:
    """A Raspberry Pi's "Model", else the device-tree board, else arm core names, else "model name"."""
    cores = " + ".join(dict.fromkeys(_core_name(*c) for c in cpu.cores))
    for candidate in (cpu.fields.get("Model"), board, cores, cpu.fields.get("model name"),
                      cpu.fields.get("Processor"), cpu.fields.get("cpu")):  # fmt: skip
        if candidate:
            return candidate
    return ""
