"""sniff(): literal headers for every kind, and fuzzing that it never raises."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enoexec.judge.sniff import Kind, Sniff, sniff

# --- builders --------------------------------------------------------------


def arm_attributes(cpu_arch: int, extra: bytes = b"") -> bytes:
    """An ``.ARM.attributes`` section: a skipped "gnu" subsection, then "aeabi" Tag_File."""
    attrs = extra + b"\x05" + b"7-A\0" + b"\x06" + bytes([cpu_arch]) + b"\x07\x41" + b"\x08\x01"
    file_sub = b"\x01" + struct.pack("<I", 5 + len(attrs)) + attrs
    aeabi = b"aeabi\0" + file_sub
    gnu = b"gnu\0" + b"\x01\x09\x00\x00\x00\x06\x02\x00\x00"
    return (b"A" + struct.pack("<I", 4 + len(gnu)) + gnu
            + struct.pack("<I", 4 + len(aeabi)) + aeabi)


def build_elf(
    machine: int,
    elf_class: int = 64,
    little: bool = True,
    *,
    e_type: int = 2,
    flags: int = 0,
    interp: str = "",
    static: bool = False,
    sections: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """An ELF file: header, program headers (PT_INTERP or a lone PT_LOAD), blobs, section headers."""
    o = "<" if little else ">"
    is64 = elf_class == 64
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    phdrs = []  # (p_type, blob)
    if interp:
        phdrs.append((3, interp.encode() + b"\0"))
    if static:
        phdrs.append((1, b""))
    offset = ehsize + len(phdrs) * phentsize
    blobs, ph_table = b"", b""
    for p_type, blob in phdrs:
        at = offset + len(blobs)
        if is64:
            ph_table += struct.pack(o + "IIQQQQQQ", p_type, 4, at, at, at, len(blob), len(blob), 1)
        else:
            ph_table += struct.pack(o + "IIIIIIII", p_type, at, at, at, len(blob), len(blob), 4, 1)
        blobs += blob
    sh_table = b"\0" * shentsize if sections else b""  # index 0 is the null section
    for sh_type, blob in sections:
        at = offset + len(blobs)
        if is64:
            sh_table += struct.pack(o + "IIQQQQIIQQ", 1, sh_type, 0, 0, at, len(blob), 0, 0, 1, 0)
        else:
            sh_table += struct.pack(o + "IIIIIIIIII", 1, sh_type, 0, 0, at, len(blob), 0, 0, 1, 0)
        blobs += blob
    shoff = offset + len(blobs) if sections else 0
    shnum = len(sections) + 1 if sections else 0
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1, 0]) + b"\0" * 8
    fields = (e_type, machine, 1, 0x400000, ehsize if phdrs else 0, shoff, flags,
              ehsize, phentsize, len(phdrs), shentsize, shnum, 0)
    header = ident + struct.pack(o + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH"), *fields)
    assert len(header) == ehsize
    return header + ph_table + blobs + sh_table


def build_pe(machine: int = 0x8664, magic: int = 0x20B) -> bytes:
    dos = b"MZ" + b"\x90\x00" + b"\0" * (0x3C - 4) + struct.pack("<I", 0x80)
    dos += b"\0" * (0x80 - len(dos))
    coff = struct.pack("<HHIIIHH", machine, 6, 0, 0, 0, 0xF0, 0x22)
    return dos + b"PE\0\0" + coff + struct.pack("<H", magic) + b"\0" * 64


SHT_ARM_ATTRIBUTES = 0x70000003
ARM_INTERP = "/lib/ld-linux-armhf.so.3"

# --- empty, ELF ------------------------------------------------------------


def test_zero_bytes_are_empty() -> None:
    assert sniff(b"") == Sniff(Kind.EMPTY, description="empty file (0 bytes)")


def test_aarch64_executable_with_interpreter() -> None:
    got = sniff(build_elf(183, 64, interp="/lib/ld-linux-aarch64.so.1"))
    assert got == Sniff(
        Kind.ELF, platform="linux/arm64", elf_class=64, endianness="little", machine=183,
        interpreter="/lib/ld-linux-aarch64.so.1",
        description="ELF 64-bit LSB executable, ARM aarch64 (linux/arm64), "
        "interpreter /lib/ld-linux-aarch64.so.1",
        phdr_end=64 + 56,
    )


@pytest.mark.parametrize(
    ("machine", "elf_class", "little", "interp", "platform"),
    [
        (62, 64, True, "/lib64/ld-linux-x86-64.so.2", "linux/amd64"),
        (3, 32, True, "/lib/ld-linux.so.2", "linux/386"),
        (22, 64, False, "/lib/ld64.so.1", "linux/s390x"),
        (21, 64, True, "/lib64/ld64.so.2", "linux/ppc64le"),
        (21, 64, False, "/lib64/ld64.so.1", "linux/ppc64"),
        (243, 64, True, "/lib/ld-linux-riscv64-lp64d.so.1", "linux/riscv64"),
        (8, 32, False, "/lib/ld.so.1", "linux/mips"),
        (8, 32, True, "/lib/ld.so.1", "linux/mipsle"),
        (8, 64, True, "/lib64/ld.so.1", "linux/mips64le"),
        (8, 64, False, "/lib64/ld.so.1", "linux/mips64"),
    ],
)
def test_elf_platforms(machine: int, elf_class: int, little: bool, interp: str, platform: str) -> None:
    got = sniff(build_elf(machine, elf_class, little, interp=interp))
    assert (got.kind, got.platform, got.elf_class, got.machine) == (Kind.ELF, platform, elf_class, machine)
    assert got.endianness == ("little" if little else "big")
    assert got.interpreter == interp
    assert not got.truncated and not got.variant_guessed
    assert f"({platform})" in got.description


def test_s390x_description_says_msb() -> None:
    got = sniff(build_elf(22, 64, little=False, interp="/lib/ld64.so.1"))
    assert got.description == (
        "ELF 64-bit MSB executable, IBM S/390 (linux/s390x), interpreter /lib/ld64.so.1"
    )


def test_arm_without_attributes_guesses_v7() -> None:
    got = sniff(build_elf(40, 32, flags=0x05000400, interp=ARM_INTERP))
    assert (got.platform, got.elf_class, got.interpreter) == ("linux/arm/v7", 32, ARM_INTERP)
    assert got.variant_guessed
    assert got.description == (
        "ELF 32-bit LSB executable, ARM (linux/arm/v7, variant guessed), interpreter " + ARM_INTERP
    )


@pytest.mark.parametrize(
    ("cpu_arch", "platform"),
    [(10, "linux/arm/v7"), (14, "linux/arm/v7"), (6, "linux/arm/v6"), (9, "linux/arm/v6"),
     (4, "linux/arm/v5"), (2, "linux/arm/v5")],
)
def test_arm_variant_from_attributes(cpu_arch: int, platform: str) -> None:
    elf = build_elf(40, 32, flags=0x05000400, interp=ARM_INTERP,
                    sections=((1, b"\0" * 16), (SHT_ARM_ATTRIBUTES, arm_attributes(cpu_arch))))
    got = sniff(elf)
    assert (got.platform, got.variant_guessed) == (platform, False)
    assert "variant guessed" not in got.description


def test_arm_attributes_parser_skips_string_and_compat_tags() -> None:
    # Tag_CPU_raw_name (4, NTBS), Tag_compatibility (32, ULEB + NTBS), Tag_conformance (67, NTBS).
    extra = b"\x04cortex-a7\0" + b"\x20\x01gnu\0" + b"\x43" + b"2.09\0"
    elf = build_elf(40, 32, sections=((SHT_ARM_ATTRIBUTES, arm_attributes(6, extra)),))
    assert sniff(elf).platform == "linux/arm/v6"


def test_arm_attributes_beyond_bytes_read_fall_back_to_v7() -> None:
    elf = build_elf(40, 32, interp=ARM_INTERP, sections=((SHT_ARM_ATTRIBUTES, arm_attributes(6)),))
    got = sniff(elf[:200])
    assert (got.platform, got.variant_guessed, got.interpreter) == ("linux/arm/v7", True, ARM_INTERP)


def test_big_endian_arm_attributes_are_read_in_big_endian() -> None:
    body = b"\x05" + b"6\0" + b"\x06\x06"
    file_sub = b"\x01" + struct.pack(">I", 5 + len(body)) + body
    aeabi = b"aeabi\0" + file_sub
    section = b"A" + struct.pack(">I", 4 + len(aeabi)) + aeabi
    got = sniff(build_elf(40, 32, little=False, sections=((SHT_ARM_ATTRIBUTES, section),)))
    assert (got.platform, got.endianness, got.variant_guessed) == ("linux/armbe", "big", False)


def test_pie_static_and_shared_object_descriptions() -> None:
    pie = sniff(build_elf(62, e_type=3, interp="/lib/ld-musl-x86_64.so.1"))
    assert pie.description.startswith("ELF 64-bit LSB pie executable, x86-64 (linux/amd64)")
    static = sniff(build_elf(183, static=True))
    assert static.description == "ELF 64-bit LSB executable, ARM aarch64 (linux/arm64), statically linked"
    assert static.interpreter == ""
    lib = sniff(build_elf(62, e_type=3))
    assert lib.description == "ELF 64-bit LSB shared object, x86-64 (linux/amd64)"


def test_unknown_machine_has_no_platform() -> None:
    got = sniff(build_elf(0x1234, 64))
    assert (got.kind, got.platform, got.machine) == (Kind.ELF, "", 0x1234)
    assert "machine 4660 (unknown platform)" in got.description


def test_interpreter_outside_bytes_read_is_left_empty() -> None:
    elf = build_elf(183, interp="/lib/ld-linux-aarch64.so.1")
    got = sniff(elf[: 64 + 56 + 5])
    assert (got.kind, got.platform, got.interpreter, got.truncated) == (Kind.ELF, "linux/arm64", "", False)


def test_truncated_elf_header_keeps_what_it_can() -> None:
    elf = build_elf(183, interp="/lib/ld-linux-aarch64.so.1")
    got = sniff(elf[:40])
    assert (got.kind, got.truncated, got.elf_class, got.endianness, got.machine) == (
        Kind.ELF, True, 64, "little", 183)
    assert got.description == "truncated ELF header (40 of 64 bytes)"
    assert sniff(b"\x7fEL") == Sniff(Kind.ELF, truncated=True,
                                     description="truncated ELF header (3 of 52 bytes)")


def test_every_truncation_of_an_elf_is_elf_and_truncated_below_the_header() -> None:
    elf = build_elf(40, 32, interp=ARM_INTERP, sections=((SHT_ARM_ATTRIBUTES, arm_attributes(10)),))
    interp_end = 52 + 32 + len(ARM_INTERP) + 1
    for n in range(2, len(elf) + 1):
        got = sniff(elf[:n])
        assert got.kind is Kind.ELF, n
        assert got.truncated == (n < 52), n
        assert got.interpreter == (ARM_INTERP if n >= interp_end else ""), n
        assert got.platform == ("" if n < 52 else "linux/arm/v7"), n
        assert got.variant_guessed == (52 <= n < len(elf)), n


@pytest.mark.parametrize("little", [True, False], ids=["lsb", "msb"])
def test_every_truncation_of_a_64bit_elf_is_truncated_below_its_64_byte_header(little: bool) -> None:
    # 52-63 bytes would be a whole 32-bit header but is not a 64-bit one: still "truncated ELF", not a sniffer error
    elf = build_elf(183 if little else 22, 64, little, interp="/lib/ld-linux-aarch64.so.1")
    machine = 183 if little else 22
    for n in range(5, len(elf) + 1):
        got = sniff(elf[:n])
        assert (got.kind, got.elf_class, got.truncated) == (Kind.ELF, 64, n < 64), n
        if n < 64:
            assert got.description == f"truncated ELF header ({n} of 64 bytes)", n
            assert got.machine == (machine if n >= 20 else 0), n
        else:
            assert got.platform == ("linux/arm64" if little else "linux/s390x"), n


def test_elf_with_bad_class_byte() -> None:
    elf = bytearray(build_elf(62))
    elf[4] = 7
    got = sniff(bytes(elf))
    assert (got.kind, got.platform, got.truncated) == (Kind.ELF, "", False)
    assert got.description == "ELF with invalid class byte 7"


# --- PE and Mach-O ---------------------------------------------------------


def test_pe_executables() -> None:
    assert sniff(build_pe()) == Sniff(
        Kind.PE, machine=0x8664, description="PE32+ executable for MS Windows, x86-64")
    assert sniff(build_pe(0x14C, 0x10B)).description == "PE32 executable for MS Windows, Intel 80386"
    assert sniff(build_pe(0xAA64)).description == "PE32+ executable for MS Windows, ARM64"


def test_dos_header_without_pe_signature_and_truncated_mz() -> None:
    got = sniff(build_pe()[:0x80])
    assert (got.kind, got.truncated) == (Kind.PE, False)
    assert "PE header not in the bytes read" in got.description
    assert sniff(b"MZ\x90\x00").truncated


@pytest.mark.parametrize(
    ("header", "description"),
    [
        (b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x0100000C, 0, 2) + b"\0" * 16,
         "Mach-O 64-bit executable arm64 (macOS)"),
        (b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x01000007, 3, 6) + b"\0" * 16,
         "Mach-O 64-bit dynamically linked shared library x86_64 (macOS)"),
        (b"\xfe\xed\xfa\xcf" + struct.pack(">III", 0x01000012, 0, 2) + b"\0" * 16,
         "Mach-O 64-bit executable ppc64 (macOS)"),
        (b"\xce\xfa\xed\xfe" + struct.pack("<III", 7, 3, 2) + b"\0" * 12,
         "Mach-O 32-bit executable i386 (macOS)"),
        (b"\xfe\xed\xfa\xce" + struct.pack(">III", 18, 0, 2) + b"\0" * 12,
         "Mach-O 32-bit executable ppc (macOS)"),
        (b"\xca\xfe\xba\xbe" + struct.pack(">I", 2)
         + struct.pack(">IIIII", 0x01000007, 3, 0x4000, 100, 14)
         + struct.pack(">IIIII", 0x0100000C, 0, 0x8000, 100, 14),
         "Mach-O universal binary with 2 architectures: [x86_64 arm64]"),
        (b"\xca\xfe\xba\xbf" + struct.pack(">I", 1) + struct.pack(">IIQQII", 0x0100000C, 0, 0x4000, 9, 14, 0),
         "Mach-O universal binary with 1 architectures: [arm64]"),
    ],
)
def test_macho_magics(header: bytes, description: str) -> None:
    assert sniff(header) == Sniff(Kind.MACHO, description=description)


def test_truncated_macho() -> None:
    got = sniff(b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01")
    assert (got.kind, got.truncated) == (Kind.MACHO, True)
    assert sniff(b"\xca\xfe\xba\xbe\x00").truncated


def test_java_class_is_data_not_fat_macho() -> None:
    java = b"\xca\xfe\xba\xbe\x00\x00\x00\x41" + b"\x00\x1d\x0a\x00\x02"
    assert sniff(java) == Sniff(Kind.DATA, description="compiled Java class data, version 65")


# --- scripts and text ------------------------------------------------------


def test_script_with_shebang() -> None:
    assert sniff(b"#!/bin/sh -e\nexec app\n") == Sniff(
        Kind.SCRIPT, shebang="/bin/sh -e", shebang_path="/bin/sh", description="script, interpreter /bin/sh -e")


def test_the_kernel_keeps_a_carriage_return_in_the_interpreter_path() -> None:
    assert sniff(b"#!/bin/sh\r\necho\r\n").shebang_path == "/bin/sh\r"
    assert sniff(b"#! \t/usr/bin/env python3\n").shebang_path == "/usr/bin/env"


@pytest.mark.parametrize(("data", "arg"), [
    (b"#!/usr/bin/env python3\r\nprint(1)\r\n", "python3\r"),  # env looks for "python3\r"
    (b"#!/bin/sh -e\r\n", "-e\r"),
    (b"#!/bin/sh\r\n", ""),  # no argument: the interpreter path itself carries the CR
    (b"#!/usr/bin/env python3\n", ""),
])
def test_the_argument_a_cr_lands_in(data: bytes, arg: str) -> None:
    assert sniff(data).shebang_cr_arg == arg


def test_script_with_crlf_says_so() -> None:
    got = sniff(b"#!/usr/bin/env python3\r\nprint(1)\r\n")
    assert got.shebang == "/usr/bin/env python3"
    assert got.description == "script, interpreter /usr/bin/env python3, with CRLF line terminator"


@pytest.mark.parametrize(
    ("data", "prefix", "shebang"),
    [
        (b"\xef\xbb\xbf#!/bin/bash\nset -e\n", b"\xef\xbb\xbf", "/bin/bash"),
        (b"\xff\xfe" + "#!/bin/sh\necho\n".encode("utf-16-le"), b"\xff\xfe", "/bin/sh"),
        (b"\xfe\xff" + "#!/bin/sh\necho\n".encode("utf-16-be"), b"\xfe\xff", "/bin/sh"),
        (b"  #! /usr/bin/env node\n", b"  ", "/usr/bin/env node"),
        (b"\n#!/bin/sh\n", b"\n", "/bin/sh"),
        (b"\0\0#!/bin/sh\n", b"\0\0", "/bin/sh"),
        (b"\xef\xbb\xbf\xef\xbb\xbf#!/bin/sh\n", b"\xef\xbb\xbf\xef\xbb\xbf", "/bin/sh"),
    ],
)
def test_bytes_before_shebang(data: bytes, prefix: bytes, shebang: str) -> None:
    got = sniff(data)
    assert (got.kind, got.prefix, got.shebang) == (Kind.BOM_SCRIPT, prefix, shebang)
    assert got.description.startswith(f"script, interpreter {shebang}, preceded by ")
    assert "b'" not in got.description  # said readably, not as a Python bytes literal


def test_bom_is_named() -> None:
    got = sniff(b"\xef\xbb\xbf#!/bin/bash\n")
    assert got.description == "script, interpreter /bin/bash, preceded by a UTF-8 byte-order mark (EF BB BF)"


@pytest.mark.parametrize(
    "data",
    [b"set -e\nexec /app\n", b"echo '#!/bin/sh'\n", b"\xef\xbb\xbfecho hi\n", "h\u00e9llo w\u00f6rld\n".encode(),
     b"python3 app.py\n" + "\u00e9".encode()[:1]],
)
def test_plain_text(data: bytes) -> None:
    assert sniff(data).kind is Kind.TEXT


def test_text_description_quotes_first_line() -> None:
    assert sniff(b"set -e\nexec /app\n").description == 'utf-8 text, first line "set -e"'


def test_lfs_pointer() -> None:
    data = (b"version https://git-lfs.github.com/spec/v1\n"
            b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
            b"size 12345\n")
    assert sniff(data) == Sniff(Kind.LFS_POINTER, description=(
        "Git LFS pointer to sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393 "
        "(12345 bytes)"))


@pytest.mark.parametrize(
    ("data", "description"),
    [
        (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title>", 'HTML document: "404 Not Found"'),
        (b"\xef\xbb\xbf\r\n  <!doctype HTML><body>gone</body>", "HTML document"),
        (b"<HTML><HEAD><TITLE>Access Denied</TITLE>", 'HTML document: "Access Denied"'),
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code></Error>', "XML document"),
        (b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'>", "HTML document"),
    ],
)
def test_html_and_xml(data: bytes, description: str) -> None:
    assert sniff(data) == Sniff(Kind.HTML, description=description)


@pytest.mark.parametrize(
    ("data", "description"),
    [
        (b"\x00\x01\x02\x03\xff\xfe\x80\x81", "data"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip compressed data"),
        (b"\0asm\x01\0\0\0", "WebAssembly (wasm) binary module"),
        (b"\x7f", "data"),
    ],
)
def test_binary_data(data: bytes, description: str) -> None:
    assert sniff(data) == Sniff(Kind.DATA, description=description)


def test_accepts_bytearray_and_memoryview_and_survives_wrong_types() -> None:
    elf = build_elf(183)
    assert sniff(bytearray(elf)).platform == "linux/arm64"
    assert sniff(memoryview(elf)).platform == "linux/arm64"
    assert sniff(None).kind is Kind.DATA  # type: ignore[arg-type]
    assert sniff("#!/bin/sh").kind is Kind.DATA  # type: ignore[arg-type]


# --- fuzzing ---------------------------------------------------------------

VALID = [
    build_elf(183, interp="/lib/ld-linux-aarch64.so.1"),
    build_elf(40, 32, interp=ARM_INTERP, sections=((SHT_ARM_ATTRIBUTES, arm_attributes(10)),)),
    build_elf(22, 64, little=False, interp="/lib/ld64.so.1", static=True),
    build_pe(),
    b"\xca\xfe\xba\xbe" + struct.pack(">I", 2) + b"\0" * 40,
    b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x0100000C, 0, 2) + b"\0" * 16,
    b"\xef\xbb\xbf#!/bin/sh\n",
    b"\xff\xfe" + "#!/bin/sh\n".encode("utf-16-le"),
    b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n",
    b"<!DOCTYPE html><title>x</title>",
]


def check(got: Sniff) -> None:
    assert isinstance(got, Sniff)
    assert isinstance(got.kind, Kind)
    assert not got.description.startswith("sniffer error"), got.description
    if got.kind is not Kind.ELF:
        assert (got.platform, got.interpreter) == ("", "")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    check(sniff(data))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
       st.integers(0, 10_000))
def test_mutated_headers_never_raise(valid: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(valid)
    for index, value in flips:
        data[index % len(data)] = value
    check(sniff(bytes(data[: max(cut, len(data) // 2)])))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"\x7fELF\x01\x01", b"\x7fELF\x02\x02", b"\x7fELF\x01\x02", b"MZ", b"\xca\xfe\xba\xbe",
                        b"\xfe\xed\xfa\xcf", b"\xef\xbb\xbf", b"\xff\xfe", b"#!"]),
       st.binary(max_size=400))
def test_magic_followed_by_junk_never_raises(magic: bytes, tail: bytes) -> None:
    check(sniff(magic + tail))


# --- every header's length edge, both sides (the sniffer's limits, as mutation testing found them untested) ---

FAT = (b"\xca\xfe\xba\xbe" + struct.pack(">I", 2) + struct.pack(">IIIII", 0x01000007, 3, 0x4000, 100, 14)
       + struct.pack(">IIIII", 0x0100000C, 0, 0x8000, 100, 14))
MACHO64 = b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x0100000C, 0, 2) + b"\0" * 16
MACHO32 = b"\xce\xfa\xed\xfe" + struct.pack("<III", 7, 3, 2) + b"\0" * 12


@pytest.mark.parametrize(("data", "truncated", "description"), [
    (build_pe()[:63], True, "truncated MS-DOS/PE header (63 of 64 bytes)"),
    (build_pe()[:64], False, "MS-DOS executable (MZ), Windows PE header not in the bytes read"),
    (build_pe()[:0x80 + 5], False, "MS-DOS executable (MZ), Windows PE header not in the bytes read"),
    (build_pe()[:0x80 + 6], False, "PE executable for MS Windows, x86-64"),
    (MACHO64[:31], True, "truncated Mach-O header (31 of 32 bytes)"),
    (MACHO64[:32], False, "Mach-O 64-bit executable arm64 (macOS)"),
    (MACHO32[:27], True, "truncated Mach-O header (27 of 28 bytes)"),
    (MACHO32[:28], False, "Mach-O 32-bit executable i386 (macOS)"),
    (FAT[:7], True, "truncated Mach-O universal header (7 of 8 bytes)"),
    (FAT[:11], False, "Mach-O universal binary with 2 architectures: [architectures not read]"),
    (FAT[:12], False, "Mach-O universal binary with 2 architectures: [x86_64]"),
    (FAT[:31], False, "Mach-O universal binary with 2 architectures: [x86_64]"),
    (FAT[:32], False, "Mach-O universal binary with 2 architectures: [x86_64 arm64]"),
])
def test_header_length_edges(data: bytes, truncated: bool, description: str) -> None:
    got = sniff(data)
    assert (got.truncated, got.description) == (truncated, description)


def test_a_fat_header_claims_at_most_20_architectures_more_is_a_java_class() -> None:
    assert sniff(b"\xca\xfe\xba\xbe" + struct.pack(">I", 20) + b"\0" * 16).kind is Kind.MACHO
    assert sniff(b"\xca\xfe\xba\xbe" + struct.pack(">I", 21) + b"\0" * 16).kind is Kind.DATA
    assert sniff(b"\xca\xfe\xba\xbe" + struct.pack(">I", 0) + b"\0" * 16).kind is Kind.DATA


def test_an_elf_prefix_says_what_it_can_from_its_fifth_byte_on() -> None:
    elf = build_elf(183)
    facts = [(sniff(elf[:n]).elf_class, sniff(elf[:n]).endianness, sniff(elf[:n]).machine) for n in (4, 5, 6, 19, 20)]
    assert facts == [(0, "", 0), (64, "", 0), (64, "little", 0), (64, "little", 0), (64, "little", 183)]
    assert sniff(elf[:4]).description == "truncated ELF header (4 of 52 bytes)"


def test_uleb128_of_several_bytes() -> None:
    from enoexec.judge.elf_facts import _uleb

    assert _uleb(b"\xe5\x8e\x26", 0) == (624_485, 3)  # the DWARF specification's example
    assert _uleb(b"\x00\x7f", 1) == (127, 2)
    assert _uleb(b"\x80\x01", 0) == (128, 2)


def test_an_elf_machine_is_unsigned_and_a_bad_class_names_none() -> None:
    elf = bytearray(build_elf(62))
    elf[18:20] = (0x9026).to_bytes(2, "little")  # EM_ALPHA: above 32767
    assert sniff(bytes(elf[:40])).machine == 0x9026
    elf[4] = 7
    got = sniff(bytes(elf))
    assert (got.machine, got.elf_class, got.platform) == (0, 0, "")


def test_the_interpreter_ends_at_its_first_nul() -> None:
    elf = bytearray(build_elf(183, interp="/lib/ld-linux-aarch64.so.1"))
    at = elf.index(b"/lib/ld-linux-aarch64.so.1\0")
    elf[at + 4] = 0  # "/lib\0ld-linux...\0": the kernel reads up to the first NUL
    assert sniff(bytes(elf)).interpreter == "/lib"
