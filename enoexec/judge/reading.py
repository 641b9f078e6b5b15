"""From the bytes read to the facts judged: the steps the agent (Docker's archive
endpoint) and ``check`` (registry layers, archives) share. Pure: each reader does
its own I/O and hands the bytes here, so both name a file alike.

The order a reader follows, as the kernel does:

1. :func:`facts` of the file the runtime would execute (``size`` from its tar
   header: a cut-short ELF is ``damage``).
2. A script: read :func:`next_interpreter` and fold it in with
   :func:`through_interpreter` (a ``#!`` path ending in ``\\r`` is never found:
   ``missing`` keeps the CR, which is what ``crlf_shebang`` reads).
3. A 32-bit ARM ELF whose variant is only guessed: read its last
   :data:`TAIL_BYTES` (files up to :data:`TAIL_MAX_FILE`) and :func:`with_tail`
   (``.ARM.attributes`` sit at the end of the file).
4. An ELF naming a loader (:func:`loader_of`): read it; when it is missing, ask
   whether the other libc's loader (:func:`other_loader`) is there and
   :func:`without_loader`; else :func:`with_loader` (its x86-64 level counts).
"""

from __future__ import annotations

from dataclasses import replace

from enoexec import platforms
from enoexec.facts import BinaryFacts
from enoexec.judge import elf_facts, libc, sniff

TAIL_BYTES = 64 * 1024  # the end of a 32-bit ARM ELF, for its .ARM.attributes
# Only files up to this size are read to their end (a tar stream reads only forward).
TAIL_MAX_FILE = 64 * 1024 * 1024


def damage(s: sniff.Sniff, size: int) -> str:
    """Why an ELF of ``size`` bytes is cut short, from its headers; "" when it is not."""
    if s.kind != sniff.Kind.ELF or size < 0:
        return ""
    if s.phdr_end > size:
        return f"its program headers end at byte {s.phdr_end}, past the end of the file ({size} bytes)"
    if s.load_end > size:
        return f"its loadable segments end at byte {s.load_end}, past the end of the file ({size} bytes)"
    return ""


def unreadable(path: str, requested: str, source: str, error: str) -> BinaryFacts:
    return BinaryFacts(path, "unreadable", source=source, requested_path=requested, error=error)


def facts(data: bytes, size: int, path: str, requested: str, source: str) -> BinaryFacts:
    """What the file whose first bytes are ``data`` (of ``size`` in all; -1 unknown) is."""
    s = sniff.sniff(data)
    if s.kind == sniff.Kind.ZEROS and size > len(data):
        s = replace(s, description=f"{s.description} (the first {len(data)} of {size} bytes read)")
    return BinaryFacts(
        size=size,
        damage=damage(s, size),
        isa_level=s.isa_level,
        load_align=s.load_align,
        libc=libc.family(s.interpreter),
        path=path,
        kind=s.kind.value,
        platform=s.platform,
        shebang=s.shebang,
        interpreter=s.interpreter or s.shebang_path,
        missing=s.shebang_cr_arg,  # what the interpreter (env, a shell) will look for and not find
        description=s.description,
        source=source,
        requested_path=requested,
        truncated=s.truncated,
        variant_guessed=s.variant_guessed,
    )


def next_interpreter(script: BinaryFacts) -> str:
    """The path the kernel executes for a script (its ``#!`` path, a trailing CR kept); "" none."""
    return script.interpreter if script.kind == "script" and script.interpreter.startswith("/") else ""


def through_interpreter(script: BinaryFacts, inner: BinaryFacts, inner_missing: bool) -> BinaryFacts:
    """The script is fine; its interpreter (``inner``) is what the kernel executes."""
    return replace(inner, shebang=script.shebang, requested_path=script.requested_path,
                   missing=script.interpreter if inner_missing else script.missing)


def wants_tail(b: BinaryFacts) -> bool:
    """A 32-bit ARM ELF whose variant its first bytes could not tell."""
    return b.kind == "elf" and b.platform.startswith("linux/arm/") and b.variant_guessed and bool(b.path)


def with_tail(b: BinaryFacts, head: bytes, tail: bytes, size: int) -> BinaryFacts:
    """The variant from ``Tag_CPU_arch`` when the file's head and tail hold it; else ``b``."""
    arch = elf_facts.arm_cpu_arch(head, tail, size)
    if arch is None:
        return b
    variant = platforms.arm_variant_from_cpu_arch(arch)
    return replace(b, platform=platforms.from_elf(platforms.EM_ARM, 32, True, variant), variant_guessed=False,
                   description=b.description.replace(", variant guessed", ""))


def loader_of(b: BinaryFacts) -> str:
    """The program loader (``PT_INTERP``) an ELF names; "" for a static one."""
    return b.interpreter if b.kind == "elf" and b.interpreter.startswith("/") else ""


def other_loader(b: BinaryFacts) -> tuple[str, str]:
    """(family, path) of the other libc's loader for the ELF's platform; ("", "") unknown."""
    return libc.other_loader(b.interpreter, b.platform)


def without_loader(b: BinaryFacts, other_family: str, other_present: bool) -> BinaryFacts:
    """The image lacks the ELF's loader; ``other_present``: it has ``other_family``'s."""
    return replace(b, missing=b.interpreter, image_libc=other_family if other_present else "")


def with_loader(b: BinaryFacts, loader_head: bytes) -> BinaryFacts:
    """The loader is there: a level it is marked for counts as the program's."""
    needed = sniff.sniff(loader_head).isa_level
    return replace(b, isa_level=needed) if needed > b.isa_level else b
