"""What a file is: the result type of the sniffer (:mod:`agent.sniff`). Pure data."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(str, enum.Enum):
    ELF = "elf"
    PE = "pe"
    MACHO = "macho"
    SCRIPT = "script"
    BOM_SCRIPT = "bom_script"
    TEXT = "text"
    EMPTY = "empty"
    LFS_POINTER = "lfs_pointer"
    HTML = "html"
    DATA = "data"


@dataclass(frozen=True)
class Sniff:
    kind: Kind
    platform: str = ""  # OCI platform of an ELF; "" for other kinds or an unknown e_machine
    elf_class: int = 0  # 32 or 64
    endianness: str = ""  # "little" / "big"
    machine: int = 0  # raw e_machine
    interpreter: str = ""  # PT_INTERP path when it lies within the bytes read
    shebang: str = ""  # first line after "#!" (SCRIPT and BOM_SCRIPT)
    prefix: bytes = b""  # BOM_SCRIPT: the bytes before "#!"
    truncated: bool = False  # header cut short
    description: str = ""  # one-line human summary
    variant_guessed: bool = False  # ELF arm variant is the v7 default, not read from the file
