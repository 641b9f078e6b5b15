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

import logging
import re
import struct

from enoexec.judge.elf import sniff_elf
from enoexec.judge.filekind import Kind, Sniff

logger = logging.getLogger(__name__)

__all__ = ["Kind", "Sniff", "sniff"]


def sniff(data: bytes) -> Sniff:
    """Say what ``data`` (the leading bytes of a file) is. Never raises."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return Sniff(Kind.DATA, description=f"sniffer error: expected bytes, got {type(data).__name__}")
    try:
        data = bytes(data)
        if not data:
            return Sniff(Kind.EMPTY, description="empty file (0 bytes)")
        if not data.strip(b"\0"):
            return Sniff(Kind.ZEROS, description=f"{len(data)} zero bytes")
        for magic, judge in _MAGICS:
            if data.startswith(magic) or (2 <= len(data) < len(magic) and magic.startswith(data)):
                found = judge(data)
                if found is not None:
                    return found
        return _sniff_text(data)
    except Exception as e:  # a bug here must not cost the diagnosis
        logger.warning("sniffer error on %d bytes: %r", len(data), e, exc_info=True)
        return Sniff(Kind.DATA, description=f"sniffer error: {e!r}")




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


def _bytes_name(prefix: bytes) -> str:
    """Bytes before a "#!" said readably: a byte-order mark by its name, else its hex."""
    for bom, encoding in _BOMS:
        if prefix == bom:
            return f"a {encoding.upper()} byte-order mark ({bom.hex(' ').upper()})"
    return f"the bytes {prefix[:16].hex(' ').upper()}" + (" ..." if len(prefix) > 16 else "")


def _sniff_text(data: bytes) -> Sniff:
    data = data[:_TEXT_SAMPLE]
    text, encoding = _decode(data)
    if data.startswith(b"#!"):
        return Sniff(Kind.SCRIPT, shebang=_line(text[2:]), shebang_path=kernel_interpreter(data),
                     shebang_cr_arg=_cr_argument(data), description=_script_desc(text[2:]))
    needle = "#!".encode(encoding)  # b"#\0!\0" in UTF-16-LE
    bang = data.find(needle, 1, 256)
    if bang > 0:
        prefix, after = data[:bang], data[bang + len(needle) :].decode(encoding, "replace")
        if not _ALNUM.search(_decode(prefix)[0].encode("ascii", "replace")) and _PATH.match(after):
            return Sniff(Kind.BOM_SCRIPT, shebang=_line(after), prefix=prefix,
                         description=f"{_script_desc(after)}, preceded by {_bytes_name(prefix)}")
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


def kernel_interpreter(data: bytes) -> str:
    """The interpreter path the kernel takes from a ``#!`` line (binfmt_script): after
    spaces and tabs, up to the next space, tab, newline or NUL. A carriage return is
    *not* an end: ``#!/bin/sh\r\n`` names ``/bin/sh\r``."""
    line = data[2:256].split(b"\n", 1)[0].lstrip(b" \t")
    for stop in (b" ", b"\t", b"\0"):
        line = line.split(stop, 1)[0]
    return line.decode("utf-8", "replace")


def _cr_argument(data: bytes) -> str:
    """With ``#!/usr/bin/env python3\r``, env looks for ``python3\r``: the last word of a
    #! line that ends in CR and has arguments, CR kept; "" otherwise."""
    line = data[2:256].split(b"\n", 1)[0]
    words = line.replace(b"\t", b" ").split(b" ")
    words = [w for w in words if w]
    if len(words) < 2 or not line.endswith(b"\r") or words[-1] == b"\r":
        return ""
    return words[-1].decode("utf-8", "replace")


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
    (b"\x7fELF", sniff_elf),
    (b"MZ", _sniff_pe),
    (b"\xfe\xed\xfa\xce", _sniff_macho), (b"\xfe\xed\xfa\xcf", _sniff_macho),
    (b"\xce\xfa\xed\xfe", _sniff_macho), (b"\xcf\xfa\xed\xfe", _sniff_macho),
    (b"\xca\xfe\xba\xbe", _sniff_fat), (b"\xca\xfe\xba\xbf", _sniff_fat),
)
