"""Tiny static x86-64 programs, built byte by byte for tests (no compiler, no libc).

``program`` writes a message to stderr, then exits with a code or executes
``ud2`` (SIGILL). It may name a program loader (``PT_INTERP``: the kernel then
needs that file in the image) and carry a GNU property note that marks it for an
x86-64 level, as ``-march=x86-64-v3`` builds of glibc are marked.
"""

from __future__ import annotations

import struct

EM_X86_64 = 62
BASE = 0x400000
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002


def isa_note(level: int) -> bytes:
    """A ``.note.gnu.property`` body needing x86-64-v``level`` (1 = baseline)."""
    bits = sum(1 << i for i in range(level))
    desc = struct.pack("<III", GNU_PROPERTY_X86_ISA_1_NEEDED, 4, bits) + b"\0" * 4
    return struct.pack("<III", 4, len(desc), 5) + b"GNU\0" + desc


def program(code: int = 0, message: bytes = b"", *, interp: str = "", isa_level: int = 0,
            align: int = 0x1000, sigill: bool = False) -> bytes:
    after_lea = b""
    if message:
        after_lea += b"\xba" + struct.pack("<I", len(message))  # mov edx, len
        after_lea += bytes.fromhex("0f05")  # syscall (write)
    if sigill:
        after_lea += bytes.fromhex("0f0b")  # ud2
    else:
        after_lea += b"\xb8" + struct.pack("<I", 60) + b"\xbf" + struct.pack("<I", code) + bytes.fromhex("0f05")
    text = b""
    if message:
        text += bytes.fromhex("b801000000") + bytes.fromhex("bf02000000")  # mov eax, 1; mov edi, 2
        text += bytes.fromhex("488d35") + struct.pack("<i", len(after_lea))  # lea rsi, [rip + len(after_lea)]
    text += after_lea + message
    n_ph = 1 + bool(interp) + bool(isa_level)
    off = 64 + 56 * n_ph
    parts, phdrs = [], []
    if isa_level:
        note = isa_note(isa_level)
        phdrs.append(struct.pack("<IIQQQQQQ", 4, 4, off, BASE + off, BASE + off, len(note), len(note), 8))
        parts.append(note)
        off += len(note)
    if interp:
        raw = interp.encode() + b"\0"
        phdrs.insert(0, struct.pack("<IIQQQQQQ", 3, 4, off, BASE + off, BASE + off, len(raw), len(raw), 1))
        raw += b"\0" * (-len(raw) % 8)
        parts.append(raw)
        off += len(raw)
    entry = BASE + off
    size = off + len(text)
    phdrs.append(struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, align))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, EM_X86_64, 1, entry, 64, 0, 0, 64, 56, n_ph, 0, 0, 0)
    return hdr + b"".join(phdrs) + b"".join(parts) + text
