"""What an ELF needs of the machine, beyond its platform. Pure, from bytes.

- ``x86_isa_needed``: the x86-64 micro-architecture level the file is marked
  for (``GNU_PROPERTY_X86_ISA_1_NEEDED`` in its ``.note.gnu.property``, which
  glibc's loader checks: "CPU ISA level is lower than required"); 0 unmarked.
- ``load_layout``: where its program headers and loadable segments end (past
  the file's size: the file was cut short) and the smallest ``p_align`` of a
  ``PT_LOAD`` (below the kernel's page size, the segments cannot be mapped as
  built: 4 KiB-aligned binaries on 16K/64K-page kernels).
- ``arm_cpu_arch``: ``Tag_CPU_arch`` of ``.ARM.attributes`` read from the head
  *and the tail* of a file (section headers live at its end).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_PT_LOAD, _PT_NOTE, _PT_GNU_PROPERTY = 1, 4, 0x6474E553
_NT_GNU_PROPERTY_TYPE_0 = 5
_GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
_SHT_ARM_ATTRIBUTES = 0x70000003
# Program header fields: (type, offset, filesz, align) by class.
_PHDR = {32: ("IIIIIIII", (0, 1, 4, 7)), 64: ("IIQQQQQQ", (0, 2, 5, 7))}
_SHDR = {32: ("IIIIIIIIII", (1, 4, 5)), 64: ("IIQQQQIIQQ", (1, 4, 5))}
_EHDR = {32: "HHIIIIIHHHHHH", 64: "HHIQQQIHHHHHH"}


@dataclass(frozen=True)
class LoadLayout:
    phdr_end: int = 0  # offset where the program header table ends
    load_end: int = 0  # largest p_offset + p_filesz of a PT_LOAD whose header was read
    load_align: int = 0  # smallest p_align of a PT_LOAD (0: none read)


def _header(data: bytes) -> tuple[str, int, tuple[int, ...]] | None:
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] not in (1, 2):
        return None
    cls = 32 if data[4] == 1 else 64
    order = ">" if data[5] == 2 else "<"
    if len(data) < (52 if cls == 32 else 64):
        return None
    return order, cls, struct.unpack_from(order + _EHDR[cls], data, 16)


def _phdrs(data: bytes, order: str, cls: int, phoff: int, entsize: int, count: int) -> list[tuple[int, ...]]:
    fmt, picks = _PHDR[cls]
    if entsize < struct.calcsize(order + fmt) or phoff <= 0:
        return []
    rows = []
    for i in range(min(count, max(0, (len(data) - phoff) // entsize))):
        row = struct.unpack_from(order + fmt, data, phoff + i * entsize)
        rows.append(tuple(row[k] for k in picks))
    return rows


def load_layout(data: bytes) -> LoadLayout:
    h = _header(data)
    if h is None:
        return LoadLayout()
    order, cls, (_, _, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = h
    loads = [p for p in _phdrs(data, order, cls, phoff, phentsize, phnum) if p[0] == _PT_LOAD]
    return LoadLayout(
        phdr_end=phoff + phentsize * phnum if phnum else 0,
        load_end=max((off + filesz for _, off, filesz, _ in loads), default=0),
        load_align=min((align for *_, align in loads if align), default=0),
    )


def x86_isa_needed(data: bytes) -> int:
    """The x86-64 level (1-4) the file's GNU property note needs; 0 when unmarked or unread."""
    h = _header(data)
    if h is None:
        return 0
    order, cls, (_, machine, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = h
    if machine != 62:
        return 0
    level = 0
    for p_type, off, filesz, _ in _phdrs(data, order, cls, phoff, phentsize, phnum):
        if p_type in (_PT_NOTE, _PT_GNU_PROPERTY) and off + filesz <= len(data):
            level = max(level, _isa_from_notes(data[off : off + filesz], order, 8 if cls == 64 else 4))
    return level


def _isa_from_notes(buf: bytes, order: str, align: int) -> int:
    pos, level = 0, 0
    while pos + 12 <= len(buf):
        namesz, descsz, n_type = struct.unpack_from(order + "III", buf, pos)
        name_end = pos + 12 + namesz
        desc = name_end + (-(12 + namesz) % align)
        if desc + descsz > len(buf):
            return level
        if n_type == _NT_GNU_PROPERTY_TYPE_0 and buf[pos + 12 : name_end] == b"GNU\0":
            level = max(level, _isa_from_properties(buf[desc : desc + descsz], order, align))
        pos = desc + descsz + (-descsz % align)
    return level


def _isa_from_properties(desc: bytes, order: str, align: int) -> int:
    pos = 0
    while pos + 8 <= len(desc):
        pr_type, size = struct.unpack_from(order + "II", desc, pos)
        if pr_type == _GNU_PROPERTY_X86_ISA_1_NEEDED and size >= 4 and pos + 12 <= len(desc):
            (bits,) = struct.unpack_from(order + "I", desc, pos + 8)
            # bit 0 baseline, 1 x86-64-v2, 2 v3, 3 v4
            return max((i + 1 for i in range(4) if bits & (1 << i)), default=0)
        pos += 8 + size + (-size % align)
    return 0


def arm_cpu_arch(head: bytes, tail: bytes, size: int) -> int | None:
    """``Tag_CPU_arch`` of a 32-bit ARM ELF whose first bytes are ``head`` and last
    ``tail`` (of ``size`` bytes in all); ``None`` when the section is not in them."""
    h = _header(head)
    if h is None or h[1] != 32:
        return None
    order, cls, (_, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum, _) = h
    if machine != 40:
        return None
    tail_start = size - len(tail)

    def piece(off: int, n: int) -> bytes | None:
        if off + n <= len(head):
            return head[off : off + n]
        if off >= tail_start and off + n <= size:
            return tail[off - tail_start : off - tail_start + n]
        return None

    fmt, picks = _SHDR[cls]
    if shentsize < struct.calcsize(order + fmt) or not 0 < shnum <= 4096:
        return None
    for i in range(shnum):
        raw = piece(shoff + i * shentsize, struct.calcsize(order + fmt))
        if raw is None:
            return None
        row = struct.unpack_from(order + fmt, raw)
        sh_type, off, sz = (row[k] for k in picks)
        if sh_type == _SHT_ARM_ATTRIBUTES:
            body = piece(off, sz)
            return cpu_arch_of_attributes(body, order) if body is not None else None
    return None


def _uleb(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]  # IndexError on a short buffer: caught below
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80 or shift > 63:
            return value, pos


def cpu_arch_of_attributes(buf: bytes, order: str) -> int | None:
    """``Tag_CPU_arch`` from an ``.ARM.attributes`` section body (ARM IHI 0045)."""
    if buf[:1] != b"A":
        return None
    pos = 1
    try:
        while pos + 4 < len(buf):
            (length,) = struct.unpack_from(order + "I", buf, pos)
            end, vendor_end = pos + length, buf.find(b"\0", pos + 4)
            if length < 5 or end > len(buf) or not 0 <= vendor_end < end:
                return None
            sub = vendor_end + 1
            while buf[pos + 4 : vendor_end] == b"aeabi" and sub < end:
                tag, p = _uleb(buf, sub)
                (size,) = struct.unpack_from(order + "I", buf, p)
                sub_end, p = min(sub + size, end), p + 4
                while tag == 1 and p < sub_end:  # Tag_File: attributes of the whole file
                    attr, p = _uleb(buf, p)
                    if attr == 6:  # Tag_CPU_arch
                        return _uleb(buf, p)[0]
                    if attr in (4, 5) or (attr > 32 and attr % 2):  # NTBS-valued
                        p = buf.index(b"\0", p) + 1
                    else:  # ULEB128-valued; Tag_compatibility (32) adds an NTBS
                        p = _uleb(buf, p)[1]
                        if attr == 32:
                            p = buf.index(b"\0", p) + 1
                sub = sub + size if size >= 5 else end
            pos = end
    except (IndexError, ValueError, struct.error):
        pass
    return None
