"""Name the failures users mistake for an exec format error. Pure.

A look-alike is only named from file evidence that agrees with how the
container died (``Trigger``), never from log words alone:

- ``ENOENT``: the runtime said "no such file or directory" about the file it
  tried to execute, and that file exists: its loader (``PT_INTERP``) or its
  ``#!`` interpreter is missing (``missing_loader``, ``crlf_shebang`` when the
  path ends in a carriage return, ``missing_interpreter``).
- ``FILE``: no runtime line could be read, the exit code is the runtime's
  exec-failure code, and the script's interpreter is missing (read anyway).
- ``CRASH``: SIGILL/SIGBUS/SIGSEGV/SIGABRT in the first seconds: a file cut
  short (``corrupt_file``), an x86-64 level or ARM architecture the CPU lacks
  (``cpu_level``), or segments aligned below the kernel's page size (``page_size``).
- ``LOADER``: the loader's, glibc's or jemalloc's own words (``loader_words``)
  with the file evidence of ``CRASH``.
"""

from __future__ import annotations

import enum
import re

from enoexec import platforms
from enoexec.causes import (
    CORRUPT_FILE,
    CPU_LEVEL,
    CRLF_SHEBANG,
    EMULATED,
    MISSING_INTERPRETER,
    MISSING_LOADER,
    PAGE_SIZE,
)
from enoexec.facts import BinaryFacts, Diagnosis, HostFacts
from enoexec.judge.classify import is_runnable
from enoexec.platforms import level_number


class Trigger(str, enum.Enum):
    ENOENT = "enoent"
    FILE = "file"
    CRASH = "crash"
    LOADER = "loader"


ISA_WORDS = ("cpu isa level is lower than required", "cpu does not support x86-64-v")
PAGE_WORDS = (
    "<jemalloc>: unsupported system page size",
    "elf load command address/offset not page-aligned",
    "elf load command address/offset not properly aligned",
    "elf load command alignment not page-aligned",
)
# Signals a CPU or a mapping refuses a program with: SIGILL, SIGABRT, SIGBUS, SIGSEGV
# (a container's exit code is 128 + the signal).
CRASH_EXIT_CODES = frozenset({132, 134, 135, 139})


_ISA_LEVEL = re.compile(r"cpu does not support x86-64-v(\d)")


def loader_words(log: str) -> str:
    """"isa" (or "isa:N" when the words name x86-64-vN) or "page" when the log's last
    lines carry the loader's, glibc's or jemalloc's words about the CPU level or the
    page size; else ""."""
    text = log.lower()
    if any(w in text for w in ISA_WORDS):
        m = _ISA_LEVEL.search(text)
        return f"isa:{m.group(1)}" if m else "isa"
    if any(w in text for w in PAGE_WORDS):
        return "page"
    return ""


def judge(binary: BinaryFacts, host: HostFacts, trigger: Trigger, words: str = "") -> Diagnosis | None:
    """The look-alike the evidence shows, or ``None`` (then nothing is reported)."""
    where = binary.requested_path or binary.path or "the entrypoint"
    if trigger in (Trigger.ENOENT, Trigger.FILE) and binary.missing:
        return _missing(binary, where)
    if trigger in (Trigger.CRASH, Trigger.LOADER) and binary.kind == "elf":
        if binary.damage and is_runnable(binary, host):
            return Diagnosis(CORRUPT_FILE, f"{where} is damaged: {binary.damage}")
        return (_cpu_level(binary, host, where) or _glibc_says_cpu_level(binary, host, where, words)
                or _page_size(binary, host, where, words))
    return None


def emulated(binary: BinaryFacts, host: HostFacts) -> Diagnosis | None:
    """A warning when a started container's entrypoint is an ELF this host runs only
    through a binfmt_misc emulator (QEMU): slow, and crashes QEMU cannot explain."""
    p = binary.platform
    if binary.kind != "elf" or not p:
        return None
    kernel = platforms.from_uname(host.kernel_machine) if host.kernel_machine else ""
    native = {*platforms.native_platforms(host.platform, host.can_run_32bit),
              *(platforms.native_platforms(kernel, host.can_run_32bit) if kernel else ())}
    if p in native or any(platforms.arch_of(p) == platforms.arch_of(n) for n in native):
        return None
    by = [e for e in host.emulators if e.enabled and e.platform and platforms.arch_of(e.platform) == platforms.arch_of(p)
          and "F" in e.flags]
    if not by:
        return None
    where = binary.requested_path or binary.path or "the entrypoint"
    return Diagnosis(EMULATED, f"{where} is built for {p}; this {host.platform} host runs it through binfmt_misc "
                               f"({by[0].name}: {by[0].interpreter}), emulated: slow, and crashes come from the emulator")


def _missing(b: BinaryFacts, where: str) -> Diagnosis:
    if b.kind == "elf" and b.missing == b.interpreter:
        wants = f"the {b.libc} program loader" if b.libc else "the program loader"
        if b.image_libc and b.image_libc != b.libc:
            has = f"; the image has {b.image_libc}'s loader instead"
        else:
            has = "" if b.image_libc else "; the image has no libc loader for that platform"
        of = f" (the interpreter of {where})" if b.shebang else ""
        return Diagnosis(MISSING_LOADER, f"{b.path}{of} needs {wants} {b.missing}, which the image lacks{has}")
    if b.missing.endswith("\r"):
        who = "the kernel looks for the interpreter" if b.missing.startswith("/") else f"{b.path} looks for"
        return Diagnosis(CRLF_SHEBANG, f"the #! line of {where} ends in a carriage return (Windows line endings): "
                                       f"{who} {b.missing[:-1]}\\r, which does not exist")
    return Diagnosis(MISSING_INTERPRETER, f"{where} names the interpreter {b.missing} in its #! line, which the image lacks")


def _cpu_level(b: BinaryFacts, host: HostFacts, where: str) -> Diagnosis | None:
    have = level_number(host.cpu_level)
    if not have:
        return None
    if b.platform == platforms.AMD64 and host.cpu_level.startswith("x86-64") and b.isa_level > have:
        return Diagnosis(CPU_LEVEL, f"{where} (or its loader) is built for x86-64-v{b.isa_level}; "
                                    f"this host's CPU is {host.cpu_level}")
    if (b.platform.startswith("linux/arm/") and not b.variant_guessed and host.cpu_level.startswith("armv")
            and level_number("v" + b.platform.rsplit("/v", 1)[-1]) > have):
        return Diagnosis(CPU_LEVEL, f"{where} is built for ARM{b.platform.rsplit('/', 1)[-1]} (Tag_CPU_arch); "
                                    f"this host's CPU is {host.cpu_level} ({host.cpu_model or 'ARMv6'})")
    return None


def _glibc_says_cpu_level(b: BinaryFacts, host: HostFacts, where: str, words: str) -> Diagnosis | None:
    """glibc's loader said the CPU lacks a level, and the file agrees that glibc's
    loader ran it: an amd64 ELF dynamically linked against glibc (a static program
    printing the words has no loader), on a host whose flags give a lower level."""
    if not words.startswith("isa") or b.platform != platforms.AMD64 or b.libc != "glibc" or b.missing:
        return None
    have = level_number(host.cpu_level) if host.cpu_level.startswith("x86-64") else 0
    named = int(words[4:]) if words[4:].isdigit() else 0
    if not have or have >= (named or 4):
        return None
    need = f"x86-64-v{named}" if named else "a higher x86-64 level"
    return Diagnosis(CPU_LEVEL, f"glibc's loader says this CPU lacks {need}, which {where} (or a library it loads) "
                                f"was built for; this host's CPU is {host.cpu_level}")


def _page_size(b: BinaryFacts, host: HostFacts, where: str, words: str) -> Diagnosis | None:
    if host.page_size <= 4096 or not is_runnable(b, host):
        return None
    if b.load_align and b.load_align < host.page_size:
        return Diagnosis(PAGE_SIZE, f"{where} has segments aligned to {b.load_align} bytes; this kernel's pages are "
                                    f"{host.page_size} bytes")
    if words == "page":
        return Diagnosis(PAGE_SIZE, f"{where} says it cannot use this kernel's {host.page_size}-byte pages "
                                    f"(jemalloc or the loader built for 4096)")
    return None
