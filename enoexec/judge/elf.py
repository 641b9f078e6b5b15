"""ELF headers: class, byte order, machine -> OCI platform, interpreter, arm variant.

Part of the sniffer (:mod:`agent.sniff`); reads only the bytes it is given and
never raises on them past what ``sniff`` catches.
"""

from __future__ import annotations

import struct

from enoexec import platforms
from enoexec.judge import elf_facts
from enoexec.judge.elf_facts import cpu_arch_of_attributes
from enoexec.judge.filekind import Kind, Sniff

# --- ELF -------------------------------------------------------------------

_ET = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core file"}
_MACHINE_NAMES = {
    2: "SPARC", 3: "Intel 80386", 6: "Intel 80486", 8: "MIPS", 10: "MIPS (RS3000 LE)",
    20: "PowerPC", 21: "64-bit PowerPC", 22: "IBM S/390", 40: "ARM", 43: "SPARC V9",
    62: "x86-64", 183: "ARM aarch64", 243: "UCB RISC-V", 258: "LoongArch",
}
_PT_INTERP, _PT_DYNAMIC = 3, 2
_SHT_ARM_ATTRIBUTES = 0x70000003
_HEADER = {32: ("HHIIIIIHHHHHH", 52), 64: ("HHIQQQIHHHHHH", 64)}
_PHDR = {32: ("IIIIIIII", (0, 1, 4)), 64: ("IIQQQQQQ", (0, 2, 5))}  # fields: type, offset, filesz
_SHDR = {32: ("IIIIIIIIII", (1, 4, 5)), 64: ("IIQQQQIIQQ", (1, 4, 5))}  # fields: type, offset, size


def sniff_elf(data: bytes) -> Sniff:
    cls = {1: 32, 2: 64}.get(data[4]) if len(data) > 4 else None
    little = data[5] != 2 if len(data) > 5 else True
    order = "<" if little else ">"
    fmt, size = _HEADER.get(cls or 32, _HEADER[32])
    if len(data) < size:
        machine = struct.unpack_from(order + "H", data, 18)[0] if len(data) >= 20 else 0
        return Sniff(
            Kind.ELF, elf_class=cls or 0, endianness=_endian(data, little), machine=machine,
            truncated=True, description=f"truncated ELF header ({len(data)} of {size} bytes)",
        )
    if cls is None:
        return Sniff(Kind.ELF, machine=0, description=f"ELF with invalid class byte {data[4]}")
    e_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _ = (
        struct.unpack_from(order + fmt, data, 16)
    )
    phdrs = _table(data, order, cls, _PHDR, phoff, phentsize, phnum)
    interp = ""
    for p_type, offset, filesz in phdrs:
        if p_type == _PT_INTERP and 0 < filesz <= 4096 and offset + filesz <= len(data):
            interp = data[offset : offset + filesz].split(b"\0", 1)[0].decode("utf-8", "replace")
    variant, guessed = "", False
    if machine == platforms.EM_ARM:
        variant = _arm_variant(data, order, cls, shoff, shentsize, shnum)
        guessed = not variant
    platform = platforms.from_elf(machine, cls, little, variant)
    kind = _ET.get(e_type, f"type {e_type:#x}")
    if e_type == 3 and interp:
        kind = "pie executable"
    parts = [f"ELF {cls}-bit {'LSB' if little else 'MSB'} {kind}"]
    name = _MACHINE_NAMES.get(machine, f"machine {machine}")
    parts.append(f"{name} ({platform or 'unknown platform'}{', variant guessed' if guessed else ''})")
    if interp:
        parts.append(f"interpreter {interp}")
    elif phnum and len(phdrs) == phnum and not any(p[0] == _PT_DYNAMIC for p in phdrs):
        parts.append("statically linked")
    layout = elf_facts.load_layout(data)
    isa = elf_facts.x86_isa_needed(data)
    if isa > 1:
        parts.append(f"needs x86-64-v{isa}")
    return Sniff(
        Kind.ELF, platform=platform, elf_class=cls, endianness=_endian(data, little),
        machine=machine, interpreter=interp, description=", ".join(parts), variant_guessed=guessed,
        isa_level=isa, phdr_end=layout.phdr_end, load_end=layout.load_end, load_align=layout.load_align,
    )


def _endian(data: bytes, little: bool) -> str:
    return ("little" if little else "big") if len(data) > 5 and data[5] in (1, 2) else ""


def _table(data, order, cls, layouts, offset, entsize, count) -> list[tuple[int, int, int]]:
    """The (type, offset, size) of each header-table entry that lies within ``data``."""
    fmt, picks = layouts[cls]
    need = struct.calcsize(order + fmt)
    if entsize < need or offset <= 0:
        return []
    rows = []
    for i in range(min(count, max(0, (len(data) - offset) // entsize))):
        row = struct.unpack_from(order + fmt, data, offset + i * entsize)
        rows.append(tuple(row[k] for k in picks))
    return rows


def _arm_variant(data, order, cls, shoff, shentsize, shnum) -> str:
    for sh_type, offset, size in _table(data, order, cls, _SHDR, shoff, shentsize, shnum):
        if sh_type == _SHT_ARM_ATTRIBUTES and offset + size <= len(data):
            cpu_arch = cpu_arch_of_attributes(data[offset : offset + size], order)
            if cpu_arch is not None:
                return platforms.arm_variant_from_cpu_arch(cpu_arch)
    return ""
