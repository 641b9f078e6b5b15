"""The OCI platform vocabulary."""

from __future__ import annotations

import pytest

from enoexec import platforms


@pytest.mark.parametrize(
    ("machine", "platform"),
    [("x86_64", "linux/amd64"), ("aarch64", "linux/arm64"), ("armv7l", "linux/arm/v7"),
     ("armv6l", "linux/arm/v6"), ("i686", "linux/386"), (" S390X\n", "linux/s390x"), ("sparc", "")],
)
def test_from_uname(machine: str, platform: str) -> None:
    assert platforms.from_uname(machine) == platform


@pytest.mark.parametrize(
    ("parts", "platform"),
    [(("linux", "aarch64", "v8"), "linux/arm64"), (("linux", "arm", ""), "linux/arm/v7"),
     (("linux", "arm", "v6"), "linux/arm/v6"), (("", "x86_64", ""), "linux/amd64"), (("linux", "", ""), "")],
)
def test_normalize(parts: tuple[str, str, str], platform: str) -> None:
    assert platforms.normalize(*parts) == platform


def test_parse_and_is_valid() -> None:
    assert platforms.parse("arm64") == "linux/arm64"
    assert platforms.parse("linux/arm") == "linux/arm/v7"
    assert platforms.parse("a/b/c/d") == ""
    assert platforms.is_valid("linux/arm/v7")
    assert not platforms.is_valid("linux/aarch64")


def test_native_platforms_and_companions() -> None:
    assert platforms.native_platforms("linux/arm64", can_run_32bit=True) == (
        "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5")
    assert platforms.native_platforms("linux/arm64", can_run_32bit=False) == ("linux/arm64",)
    assert platforms.native_platforms("linux/arm/v7", can_run_32bit=False) == (
        "linux/arm/v7", "linux/arm/v6", "linux/arm/v5")
    assert platforms.is_32bit_companion("linux/amd64", "linux/386")
    assert not platforms.is_32bit_companion("linux/amd64", "linux/arm/v7")


@pytest.mark.parametrize(
    ("machine", "elf_class", "little", "variant", "platform"),
    [
        (62, 64, True, "", "linux/amd64"),
        (62, 32, True, "", "linux/amd64"),  # x32 ABI
        (3, 32, True, "", "linux/386"),
        (183, 64, True, "", "linux/arm64"),
        (183, 64, False, "", "linux/arm64be"),
        (40, 32, True, "", "linux/arm/v7"),
        (40, 32, True, "v6", "linux/arm/v6"),
        (40, 32, True, "v5", "linux/arm/v5"),
        (40, 32, False, "v7", "linux/armbe"),
        (22, 64, False, "", "linux/s390x"),
        (22, 32, False, "", "linux/s390"),
        (21, 64, True, "", "linux/ppc64le"),
        (21, 64, False, "", "linux/ppc64"),
        (243, 64, True, "", "linux/riscv64"),
        (8, 32, False, "", "linux/mips"),
        (8, 32, True, "", "linux/mipsle"),
        (10, 32, False, "", "linux/mipsle"),
        (8, 64, True, "", "linux/mips64le"),
        (8, 64, False, "", "linux/mips64"),
        (258, 64, True, "", "linux/loong64"),
        (0xBEEF, 64, True, "", ""),
    ],
)
def test_from_elf(machine: int, elf_class: int, little: bool, variant: str, platform: str) -> None:
    assert platforms.from_elf(machine, elf_class, little, variant) == platform


def test_from_elf_main_platforms_are_canonical() -> None:
    for args in [(62, 64, True), (3, 32, True), (183, 64, True), (40, 32, True), (22, 64, False),
                 (21, 64, True), (243, 64, True), (8, 64, True)]:
        assert platforms.is_valid(platforms.from_elf(*args)), args


@pytest.mark.parametrize(
    ("cpu_arch", "variant"),
    [(0, "v5"), (2, "v5"), (4, "v5"), (5, "v5"), (6, "v6"), (9, "v6"), (11, "v6"), (10, "v7"),
     (13, "v7"), (14, "v7"), (22, "v7"), (-1, "")],
)
def test_arm_variant_from_cpu_arch(cpu_arch: int, variant: str) -> None:
    assert platforms.arm_variant_from_cpu_arch(cpu_arch) == variant


@pytest.mark.parametrize("value", ["a\x00/b", "linux/\x1b[31m", "../..", "linux/" + "a" * 40, "Linux/amd64", "linux/amd64/", "/amd64", "linux/ärm"])
def test_hostile_strings_are_not_platforms(value: str) -> None:
    assert not platforms.is_valid(value)


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64", "linux/386",
                                      "linux/riscv64", "linux/s390x", "windows/amd64", "linux/mips64le"])
def test_is_known_accepts_real_platforms(platform: str) -> None:
    assert platforms.is_known(platform)


@pytest.mark.parametrize("platform", ["linux/banana", "banana/amd64", "linux/amd64/v3x", "linux/arm/v9", "", "linux"])
def test_is_known_refuses_made_up_ones(platform: str) -> None:
    assert not platforms.is_known(platform)
