from pathlib import Path

import pytest

from agent.host import binfmt
from agent.host.binfmt import BinfmtEntry
from agent.model import Emulator

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"

QEMU_AARCH64 = """enabled
interpreter /usr/bin/qemu-aarch64-static
flags: F
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def entry(magic: str, mask: str = "", interpreter: str = "/usr/bin/x", offset: int = 0, name: str = "x") -> BinfmtEntry:
    return BinfmtEntry(name, True, interpreter, "F", offset, bytes.fromhex(magic), bytes.fromhex(mask), binfmt.MAGIC)


def test_parse_entry_reads_every_field():
    assert binfmt.parse_entry("qemu-aarch64", QEMU_AARCH64) == BinfmtEntry(
        name="qemu-aarch64",
        enabled=True,
        interpreter="/usr/bin/qemu-aarch64-static",
        flags="F",
        offset=0,
        magic=bytes.fromhex("7f454c460201010000000000000000000200b700"),
        mask=bytes.fromhex("ffffffffffffff00fffffffffffffffffeffffff"),
        kind="magic",
    )


def test_parse_entry_disabled_without_mask_and_empty_flags():
    e = binfmt.parse_entry("python3.10", "disabled\ninterpreter /usr/bin/python3.10\nflags: \noffset 0\nmagic 6f0d0d0a\n")
    assert e is not None
    assert (e.enabled, e.flags, e.magic, e.mask, e.kind) == (False, "", b"\x6f\x0d\x0d\x0a", b"", "magic")


def test_parse_entry_extension_kind():
    e = binfmt.parse_entry("jar", "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n")
    assert e is not None
    assert (e.kind, e.extension, e.magic, e.offset) == ("extension", "jar", b"", 0)


def test_parse_entry_keeps_unknown_flags():
    e = binfmt.parse_entry("q", QEMU_AARCH64.replace("flags: F", "flags: POCFZ"))
    assert e is not None and e.flags == "POCFZ"


@pytest.mark.parametrize(
    "text",
    ["", "enabled\n", "interpreter /usr/bin/qemu-arm\n", QEMU_AARCH64.replace("magic 7f45", "magic zz45")],
)
def test_parse_entry_rejects_non_entries(text):
    assert binfmt.parse_entry("x", text) is None


# magic/mask pairs as qemu's scripts/qemu-binfmt-conf.sh and Rosetta register them.
@pytest.mark.parametrize(
    ("magic", "mask", "platform"),
    [
        ("7f454c460201010000000000000000000200b700", "ffffffffffffff00fffffffffffffffffeffffff", "linux/arm64"),
        ("7f454c4601010100000000000000000002002800", "ffffffffffffff00fffffffffffffffffeffffff", "linux/arm/v7"),
        ("7f454c4601010100000000000000000002000300", "fffffffffffefe00fffffffffffffffffeffffff", "linux/386"),
        ("7f454c4602010100000000000000000002003e00", "fffffffffffefe00fffffffffffffffffeffffff", "linux/amd64"),
        ("7f454c4602010100000000000000000002001500", "ffffffffffffff00fffffffffffffffffeffff00", "linux/ppc64le"),
        ("7f454c4602020100000000000000000000020016", "ffffffffffffff00fffffffffffffffffffeffff", "linux/s390x"),
        ("7f454c460201010000000000000000000200f300", "ffffffffffffff00fffffffffffffffffeffffff", "linux/riscv64"),
        ("7f454c4602010100000000000000000002000800", "ffffffffffffff00fffffffffffffffffeffffff", "linux/mips64le"),
    ],
)
def test_platform_of_matches_elf_magic(magic, mask, platform):
    assert binfmt.platform_of(entry(magic, mask, interpreter="/opt/emu")) == platform


def test_platform_of_without_mask_compares_every_byte():
    assert binfmt.platform_of(entry("7f454c460201010000000000000000000200b700")) == "linux/arm64"
    assert binfmt.platform_of(entry("7f454c460201010000000000000000000300b700")) == "linux/arm64"  # ET_DYN
    assert binfmt.platform_of(entry("7f454c460201010000000000000000000200b800")) == ""  # no such e_machine


def test_platform_of_falls_back_to_interpreter_when_magic_is_ambiguous():
    any_elf = entry("7f454c46", "ffffffff", interpreter="/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    assert binfmt.platform_of(any_elf) == "linux/arm64"
    assert binfmt.platform_of(entry("7f454c46", interpreter="/usr/bin/qemu-arm-static")) == "linux/arm/v7"
    assert binfmt.platform_of(entry("7f454c46", interpreter="/opt/x", name="qemu-i386")) == "linux/386"


@pytest.mark.parametrize("interpreter", ["/usr/bin/python3.10", "/usr/bin/wine", "/usr/lib/jvm/jexec"])
def test_platform_of_unknown_is_empty(interpreter):
    assert binfmt.platform_of(entry("4d5a", interpreter=interpreter)) == ""


def test_usable_in_containers_needs_enabled_and_fix_binary():
    e = entry("7f454c46")
    assert binfmt.usable_in_containers(e)
    assert not binfmt.usable_in_containers(BinfmtEntry("q", True, "/q", "OC", 0, b"", b"", "magic"))
    assert not binfmt.usable_in_containers(BinfmtEntry("q", False, "/q", "POCF", 0, b"", b"", "magic"))
    assert binfmt.usable_in_containers(Emulator("q", "linux/arm64", "/q", "POCF", True))


def test_read_entries_from_fixture_skips_control_files():
    entries = binfmt.read_entries(HOSTS / "x86-qemu-aarch64" / "proc")
    assert [(e.name, e.enabled, e.flags) for e in entries] == [
        ("python3.10", True, ""),
        ("qemu-aarch64", True, "F"),
        ("qemu-arm", True, "OC"),
        ("qemu-s390x", False, "POCF"),
    ]
    assert binfmt.to_emulators(entries) == (
        Emulator("python3.10", "", "/usr/bin/python3.10", "", True),
        Emulator("qemu-aarch64", "linux/arm64", "/usr/bin/qemu-aarch64-static", "F", True),
        Emulator("qemu-arm", "linux/arm/v7", "/usr/bin/qemu-arm", "OC", True),
        Emulator("qemu-s390x", "linux/s390x", "/usr/libexec/qemu-binfmt/s390x-binfmt-P", "POCF", False),
    )


def test_read_entries_missing_dir_is_empty(tmp_path):
    assert binfmt.read_entries(tmp_path) == []


def _binfmt_dir(tmp_path: Path, status: str) -> Path:
    d = tmp_path / "sys/fs/binfmt_misc"
    d.mkdir(parents=True)
    (d / "status").write_text(status)
    (d / "register").write_text("")
    (d / "qemu-aarch64").write_text(QEMU_AARCH64)
    (d / "garbage").write_text("not an entry\n")
    return d


def test_read_entries_status_disabled_disables_all(tmp_path):
    _binfmt_dir(tmp_path, "disabled\n")
    [e] = binfmt.read_entries(tmp_path)
    assert (e.name, e.enabled, binfmt.usable_in_containers(e)) == ("qemu-aarch64", False, False)


def test_signature_changes_with_registrations(tmp_path):
    empty = binfmt.signature(tmp_path)
    d = _binfmt_dir(tmp_path, "enabled\n")
    first = binfmt.signature(tmp_path)
    assert first != empty and first == binfmt.signature(tmp_path)
    (d / "qemu-aarch64").write_text(QEMU_AARCH64.replace("enabled", "disabled"))
    assert binfmt.signature(tmp_path) != first
