"""The OCI platform vocabulary: one spelling for every architecture.

Every label, JSON field and log line names a platform as ``os/arch[/variant]``
(``linux/arm/v7``), never as a kernel machine name (``armv7l``) or a compiler
triple. This module converts the other spellings into that one.
"""

from __future__ import annotations

import re

AMD64 = "linux/amd64"
I386 = "linux/386"
ARM64 = "linux/arm64"
ARM_V7 = "linux/arm/v7"
ARM_V6 = "linux/arm/v6"
ARM_V5 = "linux/arm/v5"
PPC64LE = "linux/ppc64le"
S390X = "linux/s390x"
RISCV64 = "linux/riscv64"
MIPS64LE = "linux/mips64le"
UNKNOWN = ""

# `uname -m` -> OCI platform.
_UNAME = {
    "x86_64": AMD64,
    "amd64": AMD64,
    "i386": I386,
    "i486": I386,
    "i586": I386,
    "i686": I386,
    "aarch64": ARM64,
    "arm64": ARM64,
    "armv8l": ARM_V7,  # 32-bit userland on an ARMv8 CPU
    "armv7l": ARM_V7,
    "armv7": ARM_V7,
    "armv6l": ARM_V6,
    "armv5tel": ARM_V5,
    "armv5l": ARM_V5,
    "ppc64le": PPC64LE,
    "s390x": S390X,
    "riscv64": RISCV64,
    "mips64": "linux/mips64",
    "mips64el": MIPS64LE,
}

# Architecture aliases seen in image configs and `docker version`.
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}

# The 32-bit platforms a 64-bit CPU family can run when it supports 32-bit code.
_COMPANIONS_32 = {
    AMD64: (I386,),
    ARM64: (ARM_V7, ARM_V6, ARM_V5),
}

# Older arm variants a newer arm core runs natively.
_ARM_BACKWARDS = {
    ARM_V7: (ARM_V6, ARM_V5),
    ARM_V6: (ARM_V5,),
}


def from_uname(machine: str) -> str:
    """Map a kernel machine name (``uname -m``) to an OCI platform, or "" if unknown."""
    return _UNAME.get(machine.strip().lower(), UNKNOWN)


def normalize(os_name: str, arch: str, variant: str = "") -> str:
    """Build the canonical ``os/arch[/variant]`` string from image-config style parts.

    ``normalize("linux", "aarch64", "v8")`` is ``linux/arm64``; ``normalize("linux",
    "arm", "")`` is ``linux/arm/v7`` (Docker's default arm variant).
    """
    os_name = (os_name or "linux").strip().lower()
    arch = (arch or "").strip().lower()
    variant = (variant or "").strip().lower()
    if not arch:
        return UNKNOWN
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64":
        variant = ""  # v8 is the only arm64 variant in use; drop it.
    elif arch == "arm":
        variant = variant or "v7"
    else:
        variant = ""
    return f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"


def parse(platform: str) -> str:
    """Normalize a user-supplied ``os/arch[/variant]`` string; "" when it is not one."""
    parts = platform.strip().split("/")
    if len(parts) == 1 and parts[0]:
        return normalize("linux", parts[0])
    if len(parts) == 2:
        return normalize(parts[0], parts[1])
    if len(parts) == 3:
        return normalize(parts[0], parts[1], parts[2])
    return UNKNOWN


_WORD = r"[a-z0-9][a-z0-9._-]{0,31}"
_CANONICAL = re.compile(rf"^{_WORD}/{_WORD}(?:/{_WORD})?$")


def is_valid(platform: str) -> bool:
    """True if ``platform`` is already in canonical form, made of short lowercase
    ASCII words (it becomes a metric label and a JSON field)."""
    return bool(_CANONICAL.match(platform)) and parse(platform) == platform


# What an OCI image index may name (Go's GOOS and GOARCH lists, arm variants).
KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
    "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows",
})
KNOWN_ARCH = frozenset({
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le",
    "ppc64", "ppc64le", "riscv64", "s390x", "wasm",
})
_ARM_VARIANTS = frozenset({"v5", "v6", "v7", "v8"})


def is_known(platform: str) -> bool:
    """True if canonical ``platform`` names a real OS and architecture
    (``linux/arm/v7`` yes, ``linux/banana`` no)."""
    if not is_valid(platform):
        return False
    os_name, arch, *variant = platform.split("/")
    if os_name not in KNOWN_OS or arch not in KNOWN_ARCH:
        return False
    return not variant or (arch == "arm" and variant[0] in _ARM_VARIANTS)


def arch_of(platform: str) -> str:
    """The architecture part: ``arm`` for ``linux/arm/v7``."""
    parts = platform.split("/")
    return parts[1] if len(parts) >= 2 else ""


def native_platforms(platform: str, can_run_32bit: bool) -> tuple[str, ...]:
    """Platforms a host of ``platform`` runs without emulation, its own first."""
    if not platform:
        return ()
    out = [platform, *_ARM_BACKWARDS.get(platform, ())]
    if can_run_32bit:
        out.extend(_COMPANIONS_32.get(platform, ()))
    return tuple(dict.fromkeys(out))


def is_32bit_companion(host_platform: str, platform: str) -> bool:
    """True if ``platform`` is the 32-bit sibling of 64-bit ``host_platform``."""
    return platform in _COMPANIONS_32.get(host_platform, ())


# --- ELF headers ------------------------------------------------------------
# e_machine values (from <elf.h>) the sniffer and the binfmt_misc reader name.
EM_SPARC = 2
EM_386 = 3
EM_486 = 6
EM_MIPS = 8
EM_MIPS_RS3_LE = 10
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_SPARCV9 = 43
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258

PPC64 = "linux/ppc64"
MIPS = "linux/mips"
MIPSLE = "linux/mipsle"
MIPS64 = "linux/mips64"
LOONG64 = "linux/loong64"


def from_elf(machine: int, elf_class: int, little_endian: bool, arm_variant: str = "") -> str:
    """Map an ELF header's ``e_machine``, class (32/64) and byte order to an OCI platform.

    Architectures Docker never ships (big-endian arm, 32-bit s390...) get their Go
    ``GOARCH`` spelling, which is what an OCI image config would say; an unknown
    ``e_machine`` gives "". ``arm_variant`` ("v5", "v6", "v7") only matters for
    32-bit arm, where it defaults to Docker's ``v7``.
    """
    is64 = elf_class == 64
    if machine == EM_X86_64:
        return AMD64  # ELFCLASS32 here is the x32 ABI: still an amd64 CPU.
    if machine in (EM_386, EM_486):
        return I386
    if machine == EM_AARCH64:
        return ARM64 if little_endian else "linux/arm64be"
    if machine == EM_ARM:
        return normalize("linux", "arm", arm_variant) if little_endian else "linux/armbe"
    if machine == EM_S390:
        return S390X if is64 else "linux/s390"
    if machine == EM_PPC64:
        return PPC64LE if little_endian else PPC64
    if machine == EM_PPC:
        return "linux/ppc"
    if machine == EM_RISCV:
        return RISCV64 if is64 else "linux/riscv"
    if machine in (EM_MIPS, EM_MIPS_RS3_LE):
        little_endian = little_endian or machine == EM_MIPS_RS3_LE
        if is64:
            return MIPS64LE if little_endian else MIPS64
        return MIPSLE if little_endian else MIPS
    if machine == EM_LOONGARCH:
        return LOONG64 if is64 else UNKNOWN
    if machine == EM_SPARCV9:
        return "linux/sparc64"
    if machine == EM_SPARC:
        return "linux/sparc"
    return UNKNOWN


def arm_variant_from_cpu_arch(cpu_arch: int) -> str:
    """OCI arm variant for an ``.ARM.attributes`` ``Tag_CPU_arch`` value.

    ARMv4/v4T/v5* (0-5) fold into ``v5``, the oldest variant OCI names; ARMv6
    flavours (6-9, 11, 12) are ``v6``; ARMv7 and 32-bit ARMv8+ code (10, 13 and up)
    is ``v7``, as Docker labels it.
    """
    if cpu_arch < 0:
        return ""
    if cpu_arch <= 5:
        return "v5"
    if cpu_arch in (6, 7, 8, 9, 11, 12):
        return "v6"
    return "v7"


def level_number(level: str) -> int:
    """A CPU level's number: 3 for "x86-64-v3", 6 for "armv6", 0 for ""."""
    digits = level.rsplit("v", 1)[-1] if level else ""
    return int(digits) if digits.isdigit() else 0
