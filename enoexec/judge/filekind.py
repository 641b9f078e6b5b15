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
    ZEROS = "zeros"  # nothing but NUL bytes: a file lost to a crash or a full disk


@dataclass(frozen=True)
class Sniff:
    kind: Kind
    platform: str = ""  # OCI platform of an ELF; "" for other kinds or an unknown e_machine
    elf_class: int = 0  # 32 or 64
    endianness: str = ""  # "little" / "big"
    machine: int = 0  # raw e_machine
    interpreter: str = ""  # PT_INTERP path when it lies within the bytes read
    shebang: str = ""  # first line after "#!" (SCRIPT and BOM_SCRIPT)
    shebang_path: str = ""  # SCRIPT: the interpreter path as the kernel reads it (a CR stays in it)
    shebang_cr_arg: str = ""  # SCRIPT: the last #! argument when the line ends in CR, CR kept ("python3\r")
    prefix: bytes = b""  # BOM_SCRIPT: the bytes before "#!"
    truncated: bool = False  # header cut short
    description: str = ""  # one-line human summary
    variant_guessed: bool = False  # ELF arm variant is the v7 default, not read from the file
    # ELF: what it needs of the machine (enoexec.judge.elf_facts)
    isa_level: int = 0  # x86-64 level its GNU property note needs (0: unmarked)
    phdr_end: int = 0  # where its program header table ends
    load_end: int = 0  # where its loadable segments end in the file
    load_align: int = 0  # smallest PT_LOAD p_align
