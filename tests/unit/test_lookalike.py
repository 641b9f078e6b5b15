"""The look-alike judge (enoexec.judge.lookalike) and what it reads (elf_facts,
runtime lines with other errnos, host CPU level), with literal bytes and the
fixture host trees."""

from __future__ import annotations

import struct

import pytest

from agent.diagnosis import runtime_message
from agent.engine.binaries import damage
from agent.host import cpulevel, hostfacts
from agent.host.cpuinfo import parse_cpuinfo
from agent.model import BinaryFacts, ImageFacts
from enoexec import causes
from enoexec.judge import classify, elf_facts, lookalike
from enoexec.judge.lookalike import Trigger
from enoexec.judge.sniff import sniff
from tests import elfs
from tests.unit.test_hostfacts import fixture
from tests.unit.test_sniff import SHT_ARM_ATTRIBUTES, arm_attributes, build_elf

PI_ZERO = hostfacts.gather(**fixture("pi-zero-armv6"))
PI4 = hostfacts.gather(**fixture("pi-armv7l"))
PI5 = hostfacts.gather(**fixture("pi5-16k"))
OLD_X86 = hostfacts.gather(**fixture("x86-no-avx2"))
NEW_X86 = hostfacts.gather(**fixture("x86-qemu-aarch64"))


def facts_of(data: bytes, size: int | None = None, **kw) -> BinaryFacts:
    s = sniff(data)
    size = len(data) if size is None else size
    return BinaryFacts(path="/app", kind=s.kind.value, platform=s.platform, interpreter=s.interpreter,
                       variant_guessed=s.variant_guessed, size=size, damage=damage(s, size),
                       isa_level=s.isa_level, load_align=s.load_align, **kw)


def arm64_program(align: int) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    return hdr + struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 128, 128, align) + b"\0" * 8


# --- runtime lines with another errno ---------------------------------------------


@pytest.mark.parametrize(("line", "runtime", "path", "error"), [
    ("exec /app: no such file or directory", "runc", "/app", "no such file or directory"),
    ("exec /usr/local/sbin/app: permission denied", "runc", "/usr/local/sbin/app", "permission denied"),
    ("standard_init_linux.go:228: exec user process caused: no such file or directory", "runc-1.0", "",
     "no such file or directory"),
    ("exec container process (missing dynamic library?) `/app`: No such file or directory", "crun", "/app",
     "no such file or directory"),
])
def test_other_errnos_are_runtime_lines_but_not_enoexec(line, runtime, path, error) -> None:
    assert runtime_message.parse(line) is None  # still not an exec format error
    failure = runtime_message.parse_other(line)
    assert failure is not None and not failure.enoexec
    assert (failure.runtime, failure.path, failure.error) == (runtime, path, error)


@pytest.mark.parametrize("line", ["exec /app: something else", "my exec /app: permission denied", "exec /app: exec format error"])
def test_parse_other_needs_a_known_errno_and_the_whole_line(line) -> None:
    assert runtime_message.parse_other(line) is None


# --- ELF facts -----------------------------------------------------------------------


def test_isa_note_and_load_layout() -> None:
    data = elfs.program(0, b"hi\n", isa_level=3, align=0x1000)
    assert elf_facts.x86_isa_needed(data) == 3
    layout = elf_facts.load_layout(data)
    assert (layout.phdr_end, layout.load_end, layout.load_align) == (64 + 2 * 56, len(data), 0x1000)
    assert elf_facts.x86_isa_needed(elfs.program(0)) == 0
    assert "needs x86-64-v4" in sniff(elfs.program(0, isa_level=4)).description


def test_cut_short_elf_says_where() -> None:
    data = elfs.program(0, b"message")
    assert damage(sniff(data[:64]), 64).startswith("its program headers end at byte 120")
    assert damage(sniff(data[:125]), 125).startswith("its loadable segments end at byte")
    assert damage(sniff(data), len(data)) == ""
    assert damage(sniff(data), -1) == ""  # size unknown: no claim


def test_arm_attributes_from_the_tail_of_a_long_file() -> None:
    data = build_elf(40, 32, sections=((1, b"\x01" * 20000), (SHT_ARM_ATTRIBUTES, arm_attributes(10))))
    head, tail = data[:4096], data[-8192:]
    assert sniff(head).variant_guessed  # not in the head
    assert elf_facts.arm_cpu_arch(head, tail, len(data)) == 10
    assert elf_facts.arm_cpu_arch(head, tail[-100:], len(data)) is None  # section headers not in the tail
    v6 = build_elf(40, 32, sections=((1, b"\x01" * 20000), (SHT_ARM_ATTRIBUTES, arm_attributes(6))))
    assert elf_facts.arm_cpu_arch(v6[:4096], v6[-8192:], len(v6)) == 6


# --- host CPU level -------------------------------------------------------------------


def test_x86_levels_from_flags() -> None:
    v2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
    v3 = v2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
    assert cpulevel.x86_level(frozenset()) == 1
    assert cpulevel.x86_level(frozenset(v2)) == 2
    assert cpulevel.x86_level(frozenset(v3)) == 3
    assert cpulevel.x86_level(frozenset(v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})) == 4
    assert cpulevel.missing_x86_flags(frozenset(v2 | {"avx"}), 3) == ("abm", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave")


def test_arm1176_says_architecture_7_but_is_armv6() -> None:
    cpu = parse_cpuinfo("model name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n")
    assert cpulevel.cpu_level("armv6l", cpu) == "armv6"
    assert cpulevel.cpu_level("armv7l", cpu) == "armv6"  # the model name wins over the number
    assert cpulevel.cpu_level("armv7l", parse_cpuinfo("CPU architecture: 7\n")) == "armv7"
    assert cpulevel.cpu_level("riscv64", parse_cpuinfo("")) == ""


# --- the judge ---------------------------------------------------------------------------


def test_v3_binary_crashing_on_a_v2_host_is_cpu_level_not_on_a_v3_host() -> None:
    b = facts_of(elfs.program(sigill=True, isa_level=3))
    got = lookalike.judge(b, OLD_X86, Trigger.CRASH)
    assert got is not None and got.cause == causes.CPU_LEVEL and "x86-64-v3" in got.explanation
    assert lookalike.judge(b, NEW_X86, Trigger.CRASH) is None
    assert lookalike.judge(facts_of(elfs.program(sigill=True)), OLD_X86, Trigger.CRASH) is None  # unmarked


def test_arm_v7_on_a_pi_zero_is_cpu_level_v6_is_not() -> None:
    v7 = BinaryFacts("/app", "elf", platform="linux/arm/v7", size=100)
    got = lookalike.judge(v7, PI_ZERO, Trigger.CRASH)
    assert got is not None and got.cause == causes.CPU_LEVEL
    assert lookalike.judge(v7, PI4, Trigger.CRASH) is None
    assert lookalike.judge(BinaryFacts("/app", "elf", platform="linux/arm/v6", size=100), PI_ZERO, Trigger.CRASH) is None
    # A guessed variant is no evidence.
    assert lookalike.judge(BinaryFacts("/app", "elf", platform="linux/arm/v7", variant_guessed=True), PI_ZERO,
                           Trigger.CRASH) is None


def test_4k_aligned_segments_on_a_16k_kernel_are_page_size() -> None:
    assert PI5.page_size == 16384
    b = facts_of(arm64_program(0x1000))
    got = lookalike.judge(b, PI5, Trigger.CRASH)
    assert got is not None and got.cause == causes.PAGE_SIZE and "16384" in got.explanation
    assert lookalike.judge(facts_of(arm64_program(0x10000)), PI5, Trigger.CRASH) is None  # 64K-aligned: fine
    assert lookalike.judge(b, hostfacts.gather(**fixture("graviton2")), Trigger.CRASH) is None  # 4K pages
    assert lookalike.judge(facts_of(elfs.program(sigill=True)), PI5, Trigger.CRASH) is None  # not its platform


def test_jemalloc_words_need_a_large_page_kernel() -> None:
    log = "starting\n<jemalloc>: Unsupported system page size\n"
    assert lookalike.loader_words(log) == "page"
    b = facts_of(arm64_program(0x10000))
    got = lookalike.judge(b, PI5, Trigger.LOADER, "page")
    assert got is not None and got.cause == causes.PAGE_SIZE
    assert lookalike.judge(b, hostfacts.gather(**fixture("graviton2")), Trigger.LOADER, "page") is None


def test_missing_paths_name_the_cause() -> None:
    loader = BinaryFacts("/app", "elf", platform="linux/amd64", interpreter="/lib/ld-musl-x86_64.so.1",
                         missing="/lib/ld-musl-x86_64.so.1", libc="musl", image_libc="glibc")
    got = lookalike.judge(loader, NEW_X86, Trigger.ENOENT)
    assert got is not None and got.cause == causes.MISSING_LOADER and "glibc" in got.explanation
    crlf = BinaryFacts("/bin/sh\r", "unreadable", shebang="/bin/sh", missing="/bin/sh\r", requested_path="/e.sh")
    assert lookalike.judge(crlf, NEW_X86, Trigger.ENOENT).cause == causes.CRLF_SHEBANG  # type: ignore[union-attr]
    interp = BinaryFacts("/usr/bin/python3", "unreadable", shebang="/usr/bin/python3", missing="/usr/bin/python3")
    assert lookalike.judge(interp, NEW_X86, Trigger.FILE).cause == causes.MISSING_INTERPRETER  # type: ignore[union-attr]
    # A crash is never blamed on a missing file (the exec would have failed first).
    assert lookalike.judge(interp, NEW_X86, Trigger.CRASH) is None


def test_emulated_needs_an_enabled_fix_binary_emulator_for_that_arch() -> None:
    arm64 = BinaryFacts("/app", "elf", platform="linux/arm64")
    got = lookalike.emulated(arm64, NEW_X86)  # qemu-aarch64, flags F, enabled
    assert got is not None and got.cause == causes.EMULATED
    armv7 = BinaryFacts("/app", "elf", platform="linux/arm/v7")
    assert lookalike.emulated(armv7, NEW_X86) is None  # qemu-arm lacks F: it cannot even start in a container
    assert lookalike.emulated(BinaryFacts("/app", "elf", platform="linux/amd64"), NEW_X86) is None
    assert lookalike.emulated(arm64, OLD_X86) is None  # no emulators
    assert lookalike.emulated(BinaryFacts("/app", "elf", platform="linux/arm/v7"),
                              hostfacts.gather(**fixture("graviton2"))) is None  # AArch32 is native there


def test_the_kernel_runs_any_arm32_variant_on_an_armv6_board() -> None:
    """Not an exec format error on a Pi Zero: a Raspbian (v6) binary whose variant could
    only be guessed (v7), and a real armv7 one (which dies of SIGILL: cpu_level)."""
    image = ImageFacts("raspbian/app:1", "sha256:1", declared_platform="linux/arm/v6")
    guessed = BinaryFacts("/app", "elf", platform="linux/arm/v7", variant_guessed=True)
    v7 = BinaryFacts("/app", "elf", platform="linux/arm/v7")
    assert classify.classify(guessed, PI_ZERO, image).cause == classify.RUNNABLE
    assert classify.classify(v7, PI_ZERO, ImageFacts("x:1", "sha256:2", "linux/arm/v7")).cause == classify.RUNNABLE
    # An arm64 binary still is one on a 32-bit board.
    arm64 = BinaryFacts("/app", "elf", platform="linux/arm64")
    assert classify.classify(arm64, PI_ZERO, ImageFacts("x:1", "sha256:3", "linux/arm64")).cause == classify.ARCH_MISMATCH


def test_glibcs_own_words_need_a_glibc_dynamic_binary_and_a_lower_host() -> None:
    words = lookalike.loader_words("Fatal glibc error: CPU does not support x86-64-v3\n")
    assert words == "isa:3"
    assert lookalike.loader_words("./app: CPU ISA level is lower than required\n") == "isa"
    dynamic = BinaryFacts("/app", "elf", platform="linux/amd64", interpreter="/lib64/ld-linux-x86-64.so.2", libc="glibc")
    got = lookalike.judge(dynamic, OLD_X86, Trigger.LOADER, words)
    assert got is not None and got.cause == causes.CPU_LEVEL and "x86-64-v3" in got.explanation
    assert lookalike.judge(dynamic, NEW_X86, Trigger.LOADER, words) is None  # this host has v3
    assert lookalike.judge(dynamic, OLD_X86, Trigger.LOADER, "isa:2") is None  # and v2
    assert lookalike.judge(dynamic, OLD_X86, Trigger.LOADER, "isa").cause == causes.CPU_LEVEL  # type: ignore[union-attr]
    static = BinaryFacts("/app", "elf", platform="linux/amd64")  # printed by the program itself
    assert lookalike.judge(static, OLD_X86, Trigger.LOADER, words) is None
    musl = BinaryFacts("/app", "elf", platform="linux/amd64", interpreter="/lib/ld-musl-x86_64.so.1", libc="musl")
    assert lookalike.judge(musl, OLD_X86, Trigger.LOADER, words) is None
