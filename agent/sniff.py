"""What a file is, judged from its first bytes alone: the pure half of diagnosis.

``sniff(data)`` never raises and does no I/O; hand it as many leading bytes of the
entrypoint as you have (the whole file when it is small). Rules worth knowing:

* Zero bytes is ``EMPTY``. An ELF, Mach-O or DOS header cut short stays that
  kind with ``truncated=True``; the classifier reports it as ``empty_file``.
* 32-bit ARM variant: from ``Tag_CPU_arch`` in the ``.ARM.attributes`` section
  when the section headers and that section lie within ``data``; otherwise
  ``v7`` (Docker's default, right for Debian/Alpine armhf-v7 builds) with
  ``variant_guessed=True``, so nobody treats the guess as evidence.
* ``#!`` at offset 0 is a ``SCRIPT``. ``#!`` within the first 64 bytes behind a
  prefix with no ASCII letters or digits (a BOM, whitespace, NULs, punctuation)
  is a ``BOM_SCRIPT``: the kernel sees that prefix and refuses the file.
* ``CAFEBABE`` is a Mach-O fat binary when it declares 1-20 architectures; a
  Java class file (major version >= 45 in the same four bytes) is ``DATA``.
"""

from __future__ import annotations

import enum
import logging
import re
import struct
from dataclasses import dataclass

from agent import platforms

logger = logging.getLogger(__name__)


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


def sniff(data: bytes) -> Sniff:
    """Say what ``data`` (the leading bytes of a file) is. Never raises."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return Sniff(Kind.DATA, description=f"sniffer error: expected bytes, got {type(data).__name__}")
    try:
        data = bytes(data)
        if not data:
            return Sniff(Kind.EMPTY, description="empty file (0 bytes)")
        for magic, judge in _MAGICS:
            if data.startswith(magic) or (2 <= len(data) < len(magic) and magic.startswith(data)):
                found = judge(data)
                if found is not None:
                    return found
        return _sniff_text(data)
    except Exception as e:  # a bug here must not cost the diagnosis
        logger.warning("sniffer error on %d bytes: %r", len(data), e, exc_info=True)
        return Sniff(Kind.DATA, description=f"sniffer error: {e!r}")


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


def _sniff_elf(data: bytes) -> Sniff:
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
    return Sniff(
        Kind.ELF, platform=platform, elf_class=cls, endianness=_endian(data, little),
        machine=machine, interpreter=interp, description=", ".join(parts), variant_guessed=guessed,
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
            cpu_arch = _cpu_arch(data[offset : offset + size], order)
            if cpu_arch is not None:
                return platforms.arm_variant_from_cpu_arch(cpu_arch)
    return ""


def _uleb(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]  # IndexError on a short buffer: caught by _cpu_arch
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80 or shift > 63:
            return value, pos


def _cpu_arch(buf: bytes, order: str) -> int | None:
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


# --- Windows PE and Mach-O -------------------------------------------------

_PE_MACHINES = {0x14C: "Intel 80386", 0x8664: "x86-64", 0xAA64: "ARM64", 0x1C4: "ARMv7 Thumb-2",
                0x1C0: "ARM", 0x200: "Intel Itanium", 0x5064: "RISC-V 64-bit"}


def _sniff_pe(data: bytes) -> Sniff:
    if len(data) < 64:
        return Sniff(Kind.PE, truncated=True,
                     description=f"truncated MS-DOS/PE header ({len(data)} of 64 bytes)")
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if data[lfanew : lfanew + 4] != b"PE\0\0" or len(data) < lfanew + 6:
        return Sniff(Kind.PE, description="MS-DOS executable (MZ), Windows PE header not in the bytes read")
    (machine,) = struct.unpack_from("<H", data, lfanew + 4)
    magic = data[lfanew + 24 : lfanew + 26]
    flavour = {b"\x0b\x01": "PE32", b"\x0b\x02": "PE32+"}.get(magic, "PE")
    name = _PE_MACHINES.get(machine, f"machine {machine:#x}")
    return Sniff(Kind.PE, machine=machine, description=f"{flavour} executable for MS Windows, {name}")


_MACHO_CPUS = {7: "i386", 0x01000007: "x86_64", 12: "arm", 0x0100000C: "arm64",
               0x0200000C: "arm64_32", 18: "ppc", 0x01000012: "ppc64"}
_MACHO_TYPES = {1: "object", 2: "executable", 6: "dynamically linked shared library", 8: "bundle"}


def _sniff_macho(data: bytes) -> Sniff:
    magic = data[:4]
    bits = 64 if magic in (b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe") else 32
    order = ">" if magic[:1] == b"\xfe" else "<"
    need = 32 if bits == 64 else 28
    if len(data) < need:
        return Sniff(Kind.MACHO, truncated=True,
                     description=f"truncated Mach-O header ({len(data)} of {need} bytes)")
    cpu, _, filetype = struct.unpack_from(order + "III", data, 4)
    cpu_name = _MACHO_CPUS.get(cpu, f"cpu {cpu:#x}")
    what = _MACHO_TYPES.get(filetype, f"filetype {filetype}")
    return Sniff(Kind.MACHO, description=f"Mach-O {bits}-bit {what} {cpu_name} (macOS)")


def _sniff_fat(data: bytes) -> Sniff | None:
    if len(data) < 8:
        return Sniff(Kind.MACHO, truncated=True,
                     description=f"truncated Mach-O universal header ({len(data)} of 8 bytes)")
    (count,) = struct.unpack_from(">I", data, 4)
    if not 1 <= count <= 20:  # a Java class: minor version (u2) then major version (u2 >= 45)
        major = count & 0xFFFF
        return Sniff(Kind.DATA, description=f"compiled Java class data, version {major}") if major >= 45 else None
    step = 32 if data[3] == 0xBF else 20
    cpus = [struct.unpack_from(">I", data, 8 + i * step)[0] for i in range(count)
            if 8 + i * step + 4 <= len(data)]
    names = " ".join(_MACHO_CPUS.get(c, f"cpu {c:#x}") for c in cpus) or "architectures not read"
    return Sniff(Kind.MACHO, description=f"Mach-O universal binary with {count} architectures: [{names}]")


# --- text ------------------------------------------------------------------

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\0\0", "utf-32-le"), (b"\0\0\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_LFS = re.compile(r"version https://(git-lfs\.github\.com|hawser\.github\.com)/spec/v1")
_MARKUP = ("<!doctype html", "<html", "<?xml", "<head", "<body")
_TITLE = re.compile(r"<title[^>]*>([^<]{0,200})", re.IGNORECASE)
_ALNUM = re.compile(rb"[A-Za-z0-9]")
_PATH = re.compile(r"[ \t]*/")  # a BOM_SCRIPT's "#!" must be followed by an absolute path
_ALLOWED_CONTROLS = set("\t\n\r\f\b\x1b")
_TEXT_SAMPLE = 64 * 1024  # bytes judged for text-ness; callers may hand in a whole file


def _decode(data: bytes) -> tuple[str, str]:
    """(text, encoding) honouring a byte-order mark; undecodable bytes become U+FFFD."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, "replace"), encoding
    return data.decode("utf-8", "replace"), "utf-8"


def _sniff_text(data: bytes) -> Sniff:
    data = data[:_TEXT_SAMPLE]
    text, encoding = _decode(data)
    if data.startswith(b"#!"):
        return Sniff(Kind.SCRIPT, shebang=_line(text[2:]), description=_script_desc(text[2:]))
    needle = "#!".encode(encoding)  # b"#\0!\0" in UTF-16-LE
    bang = data.find(needle, 1, 256)
    if bang > 0:
        prefix, after = data[:bang], data[bang + len(needle) :].decode(encoding, "replace")
        if not _ALNUM.search(_decode(prefix)[0].encode("ascii", "replace")) and _PATH.match(after):
            return Sniff(Kind.BOM_SCRIPT, shebang=_line(after), prefix=prefix,
                         description=f"{_script_desc(after)}, preceded by {prefix!r}")
    head = text.lstrip("\ufeff \t\r\n")
    if _LFS.match(head):
        oid = re.search(r"^oid (\S+)", head, re.MULTILINE)
        size = re.search(r"^size (\d+)", head, re.MULTILINE)
        return Sniff(Kind.LFS_POINTER, description="Git LFS pointer"
                     + (f" to {oid.group(1)}" if oid else "") + (f" ({size.group(1)} bytes)" if size else ""))
    if head[:16].lower().startswith(_MARKUP):
        title = _TITLE.search(text)
        what = "XML document" if head.startswith("<?xml") and "<html" not in text[:1024].lower() else "HTML document"
        return Sniff(Kind.HTML, description=what + (f': "{title.group(1).strip()}"' if title else ""))
    if _is_text(text, data, encoding):
        first = _line(text.lstrip("\ufeff"))
        return Sniff(Kind.TEXT, description=f'{encoding} text, first line "{first[:80]}"')
    return Sniff(Kind.DATA, description=next((d for m, d in _DATA_MAGICS if data.startswith(m)), "data"))


def _line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def _script_desc(after_bang: str) -> str:
    line = after_bang.split("\n", 1)[0]
    crlf = ", with CRLF line terminator" if line.endswith("\r") else ""
    return f"script, interpreter {line.strip() or '(none)'}{crlf}"


def _is_text(text: str, data: bytes, encoding: str) -> bool:
    if encoding == "utf-8" and b"\0" in data:
        return False
    body = text[:-1] if text.endswith("\ufffd") else text  # last char may be cut mid-sequence
    if not body:
        return False
    bad = sum(1 for c in body if c == "\ufffd" or (c < " " and c not in _ALLOWED_CONTROLS) or c == "\x7f")
    return bad <= len(body) // 20


_DATA_MAGICS = (
    (b"\x1f\x8b", "gzip compressed data"), (b"PK\x03\x04", "Zip archive data"),
    (b"BZh", "bzip2 compressed data"), (b"\xfd7zXZ\0", "XZ compressed data"),
    (b"\x28\xb5\x2f\xfd", "Zstandard compressed data"), (b"\0asm", "WebAssembly (wasm) binary module"),
    (b"\x89PNG", "PNG image data"),
)

_MAGICS = (
    (b"\x7fELF", _sniff_elf),
    (b"MZ", _sniff_pe),
    (b"\xfe\xed\xfa\xce", _sniff_macho), (b"\xfe\xed\xfa\xcf", _sniff_macho),
    (b"\xce\xfa\xed\xfe", _sniff_macho), (b"\xcf\xfa\xed\xfe", _sniff_macho),
    (b"\xca\xfe\xba\xbe", _sniff_fat), (b"\xca\xfe\xba\xbf", _sniff_fat),
)
