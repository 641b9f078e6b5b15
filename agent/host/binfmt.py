"""binfmt_misc registrations: which foreign platforms the kernel hands to an emulator.

Each file under ``/proc/sys/fs/binfmt_misc`` (except ``register`` and ``status``)
describes one registration::

    enabled
    interpreter /usr/bin/qemu-aarch64-static
    flags: F
    offset 0
    magic 7f454c460201010000000000000000000200b700
    mask ffffffffffffff00fffffffffffffffffeffffff

The platform an entry emulates is found by testing its magic and mask against the
ELF header every known platform writes, and only when that is not conclusive by the
interpreter's name (``qemu-aarch64`` -> ``linux/arm64``).

Containers and the F flag
-------------------------
Without ``F`` ("fix binary") the kernel opens the interpreter path at exec time,
inside the mount namespace of the process calling ``execve``: in a container that
path must exist in the container's own filesystem, which it almost never does, so
the container dies with ``exec format error`` although ``docker run`` on the host
shell would work. With ``F`` the kernel opened the interpreter when it was
registered and uses that file everywhere. ``to_emulators`` keeps every entry, as
the facts the host reports; ``usable_in_containers`` says which of them count as
emulation when judging whether a container can run (``hostfacts`` builds
``runnable_platforms`` from those only).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from agent.model import Emulator
from enoexec import platforms

logger = logging.getLogger(__name__)

BINFMT_DIR = "sys/fs/binfmt_misc"  # relative to the /proc root
_CONTROL_FILES = frozenset({"register", "status"})

MAGIC = "magic"
EXTENSION = "extension"

# (e_machine, ELF class, little endian) of the platforms an entry can emulate.
_ELF_CANDIDATES = (
    (platforms.EM_X86_64, 64, True),
    (platforms.EM_386, 32, True),
    (platforms.EM_AARCH64, 64, True),
    (platforms.EM_ARM, 32, True),
    (platforms.EM_PPC64, 64, True),
    (platforms.EM_PPC64, 64, False),
    (platforms.EM_S390, 64, False),
    (platforms.EM_RISCV, 64, True),
    (platforms.EM_MIPS, 64, True),
    (platforms.EM_MIPS, 64, False),
    (platforms.EM_MIPS, 32, True),
    (platforms.EM_MIPS, 32, False),
    (platforms.EM_LOONGARCH, 64, True),
)

# QEMU target names (qemu-<target>, <target>-binfmt-P) -> OCI platform.
_QEMU_TARGETS = {
    "x86_64": platforms.AMD64,
    "i386": platforms.I386,
    "i486": platforms.I386,
    "aarch64": platforms.ARM64,
    "arm": platforms.ARM_V7,
    "ppc64le": platforms.PPC64LE,
    "ppc64": platforms.PPC64,
    "s390x": platforms.S390X,
    "riscv64": platforms.RISCV64,
    "mips64el": platforms.MIPS64LE,
    "mips64": platforms.MIPS64,
    "mipsel": platforms.MIPSLE,
    "mips": platforms.MIPS,
    "loongarch64": platforms.LOONG64,
}


@dataclass(frozen=True)
class BinfmtEntry:
    name: str
    enabled: bool
    interpreter: str
    flags: str  # as the kernel prints them, e.g. "POCF"; unknown letters are kept
    offset: int
    magic: bytes
    mask: bytes  # b"" when the entry has no mask (every bit counts)
    kind: str  # MAGIC or EXTENSION
    extension: str = ""  # for EXTENSION entries, without the dot


def parse_entry(name: str, text: str) -> BinfmtEntry | None:
    """Parse the text of one binfmt_misc entry file; None if it is not one."""
    state: bool | None = None
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line in ("enabled", "disabled"):
            state = line == "enabled"
            continue
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    if state is None or not fields.get("interpreter"):
        return None
    try:
        magic = bytes.fromhex(fields.get("magic", ""))
        mask = bytes.fromhex(fields.get("mask", ""))
        offset = int(fields.get("offset", "0"))
    except ValueError:
        logger.warning("binfmt_misc entry %s has malformed magic, mask or offset; ignoring it", name)
        return None
    is_ext = "extension" in fields
    return BinfmtEntry(
        name=name,
        enabled=state,
        interpreter=fields["interpreter"],
        flags=fields.get("flags", ""),
        offset=offset,
        magic=magic,
        mask=mask,
        kind=EXTENSION if is_ext else MAGIC,
        extension=fields.get("extension", "").lstrip(".") if is_ext else "",
    )


def _elf_headers(machine: int, elf_class: int, little_endian: bool) -> tuple[bytes, ...]:
    """The first 24 bytes of an executable and of a PIE/shared object for that target."""
    order: Literal["little", "big"] = "little" if little_endian else "big"
    ident = b"\x7fELF" + bytes([1 if elf_class == 32 else 2, 1 if little_endian else 2, 1, 0]) + bytes(8)
    tail = machine.to_bytes(2, order) + (1).to_bytes(4, order)  # e_machine, e_version
    return tuple(ident + e_type.to_bytes(2, order) + tail for e_type in (2, 3))  # ET_EXEC, ET_DYN


def _matches(entry: BinfmtEntry, header: bytes) -> bool:
    mask = entry.mask or b"\xff" * len(entry.magic)
    for i, (want, bits) in enumerate(zip(entry.magic, mask, strict=False)):
        pos = entry.offset + i
        if pos >= len(header):
            break  # bytes past e_version (e_flags...) refine within an architecture
        if header[pos] & bits != want & bits:
            return False
    return True


def _platform_by_magic(entry: BinfmtEntry) -> str:
    if entry.kind != MAGIC or entry.offset != 0 or not entry.magic.startswith(b"\x7fELF"):
        return ""
    found = {
        platforms.from_elf(machine, cls, le)
        for machine, cls, le in _ELF_CANDIDATES
        if any(_matches(entry, h) for h in _elf_headers(machine, cls, le))
    }
    found.discard("")
    return found.pop() if len(found) == 1 else ""


def _platform_by_name(name: str) -> str:
    base = os.path.basename(name).lower()
    for suffix in ("-binfmt-p", "-binfmt", "-static"):
        base = base.removesuffix(suffix)
    return _QEMU_TARGETS.get(base.removeprefix("qemu-"), "")


def platform_of(entry: BinfmtEntry) -> str:
    """The OCI platform ``entry`` emulates, or "" if it is not an ELF emulator we know."""
    return (
        _platform_by_magic(entry)
        or _platform_by_name(entry.interpreter)
        or _platform_by_name(entry.name)
    )


def usable_in_containers(entry: BinfmtEntry | Emulator) -> bool:
    """True if the entry also works inside containers: enabled, with the F flag."""
    return entry.enabled and "F" in entry.flags


def to_emulators(entries: Iterable[BinfmtEntry]) -> tuple[Emulator, ...]:
    """Every entry as an ``Emulator`` fact, usable in containers or not."""
    return tuple(
        Emulator(name=e.name, platform=platform_of(e), interpreter=e.interpreter, flags=e.flags, enabled=e.enabled)
        for e in entries
    )


def _read_dir(proc_root: Path) -> dict[str, str]:
    """name -> text of every readable file in the binfmt_misc directory."""
    directory = Path(proc_root) / BINFMT_DIR
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError:
        return {}
    out = {}
    for name in names:
        if name == "register":
            continue
        try:
            out[name] = (directory / name).read_text(errors="replace")
        except OSError as e:
            logger.debug("cannot read binfmt_misc entry %s: %s", name, e)
    return out


def read_entries(proc_root: Path = Path("/proc")) -> list[BinfmtEntry]:
    """The registrations under ``proc_root``, by name; [] when binfmt_misc is not mounted.

    When the ``status`` file says binfmt_misc is disabled as a whole, every entry is
    reported disabled, since the kernel then ignores them all.
    """
    files = _read_dir(proc_root)
    globally_enabled = files.get("status", "enabled").strip() != "disabled"
    entries = []
    for name, text in files.items():
        if name in _CONTROL_FILES:
            continue
        entry = parse_entry(name, text)
        if entry is None:
            logger.debug("skipping %s: not a binfmt_misc entry", name)
            continue
        entries.append(entry if globally_enabled else replace(entry, enabled=False))
    return entries


def signature(proc_root: Path = Path("/proc")) -> str:
    """A hash of the binfmt_misc directory: cheap to compute, changes with any registration."""
    digest = hashlib.sha256()
    for name, text in _read_dir(proc_root).items():
        digest.update(f"{name}\0{text}\0".encode())
    return digest.hexdigest()


def mounted(proc_root: Path = Path("/proc")) -> bool:
    """Whether the binfmt_misc file system is mounted (its ``status`` file exists)."""
    return (Path(proc_root) / BINFMT_DIR / "status").exists()
