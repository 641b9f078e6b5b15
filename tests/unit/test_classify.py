"""The cause table of README.md ("Causes"), decided from literal facts."""

import pytest

from agent.model import BinaryFacts, Emulator, HostFacts, ImageFacts
from enoexec import causes
from enoexec.judge import classify

X86 = HostFacts("x86", "linux/amd64", can_run_32bit=True, runnable_platforms=("linux/amd64", "linux/386"))
GRAVITON4 = HostFacts("gv4", "linux/arm64", can_run_32bit=False, runnable_platforms=("linux/arm64",))
GRAVITON2 = HostFacts("gv2", "linux/arm64", can_run_32bit=True)
X86_QEMU = HostFacts(
    "x86q", "linux/amd64", can_run_32bit=True,
    emulators=(Emulator("qemu-aarch64", "linux/arm64", "/usr/bin/qemu-aarch64", "F", True),),
    runnable_platforms=("linux/amd64", "linux/386", "linux/arm64"),
)


def elf(platform: str, **kw: object) -> BinaryFacts:
    return BinaryFacts("/app", "elf", platform=platform, **kw)  # type: ignore[arg-type]


def image(platform: str = "") -> ImageFacts:
    return ImageFacts("app:1", "sha256:1", declared_platform=platform)


@pytest.mark.parametrize(
    ("binary", "host", "img", "cause"),
    [
        (elf("linux/arm64"), X86, image("linux/arm64"), classify.ARCH_MISMATCH),
        (elf("linux/s390x"), X86, image("linux/s390x"), classify.ARCH_MISMATCH),
        (elf("linux/arm/v7"), GRAVITON4, image("linux/arm/v7"), classify.NO_32BIT_SUPPORT),
        (elf("linux/386"), HostFacts("x", "linux/amd64", can_run_32bit=False), image("linux/386"), classify.NO_32BIT_SUPPORT),
        (elf("linux/arm64"), X86, image("linux/amd64"), classify.MISLABELED_IMAGE),
        (elf("linux/arm64"), X86, image(""), classify.ARCH_MISMATCH),
        (BinaryFacts("/app", "text"), X86, image("linux/amd64"), classify.MISSING_SHEBANG),
        (BinaryFacts("/app", "bom_script", shebang="/bin/sh"), X86, image(), classify.BOM_BEFORE_SHEBANG),
        (BinaryFacts("/app", "pe"), X86, image(), classify.FOREIGN_OS_BINARY),
        (BinaryFacts("/app", "macho"), X86, image(), classify.FOREIGN_OS_BINARY),
        (BinaryFacts("/app", "empty"), X86, image(), classify.EMPTY_FILE),
        (BinaryFacts("/app", "elf", platform="linux/arm64", truncated=True), X86, image(), classify.EMPTY_FILE),
        (BinaryFacts("/app", "lfs_pointer"), X86, image(), classify.NOT_A_BINARY),
        (BinaryFacts("/app", "html"), X86, image(), classify.NOT_A_BINARY),
        (BinaryFacts("/app", "data"), X86, image(), classify.NOT_A_BINARY),
        (BinaryFacts("/app", "unreadable", error="gone"), X86, image(), classify.UNKNOWN),
    ],
)
def test_cause_table(binary: BinaryFacts, host: HostFacts, img: ImageFacts, cause: str) -> None:
    assert classify.classify(binary, host, img).cause == cause


def test_a_binary_the_host_runs_is_not_an_exec_format_error() -> None:
    assert classify.classify(elf("linux/amd64"), X86, image("linux/amd64")).cause == classify.RUNNABLE
    assert classify.classify(elf("linux/arm/v7"), GRAVITON2, image("linux/arm/v7")).cause == classify.RUNNABLE
    # Emulation registered with the F flag runs foreign binaries inside containers.
    assert classify.classify(elf("linux/arm64"), X86_QEMU, image("linux/arm64")).cause == classify.RUNNABLE


def test_arm_variants_a_v7_image_may_carry_are_not_mislabeled() -> None:
    v6 = elf("linux/arm/v6")
    assert classify.classify(v6, X86, image("linux/arm/v7")).cause == classify.ARCH_MISMATCH
    # A guessed variant is compared by architecture only.
    guessed = elf("linux/arm/v7", variant_guessed=True)
    assert classify.classify(guessed, X86, image("linux/arm/v6")).cause == classify.ARCH_MISMATCH
    assert classify.classify(guessed, X86, image("linux/amd64")).cause == classify.MISLABELED_IMAGE


@pytest.mark.parametrize(
    ("binary", "declared", "host"),
    [
        ("linux/arm/v7", "linux/arm64", GRAVITON4),
        ("linux/arm/v7", "linux/arm64", GRAVITON2),
        ("linux/386", "linux/amd64", HostFacts("x", "linux/amd64", can_run_32bit=False)),
        ("linux/386", "linux/amd64", GRAVITON4),
    ],
)
def test_a_32bit_binary_in_an_image_declared_64bit_is_mislabeled(binary: str, declared: str, host: HostFacts) -> None:
    # The image's label is judged on its own, whatever this host can run: a 64-bit platform does not
    # promise 32-bit code (Graviton 4 has none), so the 32-bit companion is not the declared platform.
    d = classify.classify(elf(binary), host, image(declared))
    assert d.cause == classify.MISLABELED_IMAGE
    assert f"declares {declared}" in d.explanation and binary in d.explanation


def test_explanations_name_the_file_and_both_platforms() -> None:
    d = classify.classify(elf("linux/arm64"), X86, image("linux/arm64"))
    assert "/app" in d.explanation and "linux/arm64" in d.explanation and "linux/amd64" in d.explanation
    d = classify.classify(elf("linux/arm/v7"), GRAVITON4, image("linux/arm/v7"))
    assert "32-bit" in d.explanation


def test_every_contract_cause_is_known() -> None:
    contract = {"arch_mismatch", "no_32bit_support", "mislabeled_image", "missing_shebang", "bom_before_shebang",
                "foreign_os_binary", "empty_file", "not_a_binary", "unknown"}
    lookalikes = {"corrupt_file", "missing_loader", "crlf_shebang", "missing_interpreter", "cpu_level", "page_size", "emulated"}
    assert causes.CAUSES == contract | lookalikes


@pytest.mark.parametrize(
    ("binary", "host", "img", "cause", "says", "never"),
    [
        (elf("linux/amd64"), GRAVITON4, image("linux/amd64"), classify.ARCH_MISMATCH,
         "/app is built for linux/amd64; this host is linux/arm64 and binfmt_misc emulates no such platform", ""),
        (elf("linux/arm64"), HostFacts("x", "", can_run_32bit=True), image(""), classify.ARCH_MISMATCH,
         "this host is of an unknown platform", "binfmt_misc"),
        (BinaryFacts("", "elf", requested_path="/bin/app"), X86, image(), classify.ARCH_MISMATCH,
         "/bin/app is built for an unknown platform", ""),
        (BinaryFacts("", "elf"), X86, image(), classify.ARCH_MISMATCH, "the entrypoint is built for an unknown platform", ""),
        (BinaryFacts("/app", "pe"), X86, image(), classify.FOREIGN_OS_BINARY, "/app is a Windows PE executable", "Mach-O"),
        (BinaryFacts("/app", "macho"), X86, image(), classify.FOREIGN_OS_BINARY, "/app is a macOS Mach-O executable", "Windows"),
        (BinaryFacts("/app", "lfs_pointer"), X86, image(), classify.NOT_A_BINARY, "/app is a Git LFS pointer, not", ""),
        (BinaryFacts("/app", "html"), X86, image(), classify.NOT_A_BINARY, "/app is an HTML/XML page, not", ""),
        (BinaryFacts("/app", "data"), X86, image(), classify.NOT_A_BINARY, "/app is data, not", ""),
        (BinaryFacts("/app", "unreadable", error="gone"), X86, image(), classify.UNKNOWN, "/app could not be read: gone", ""),
        (BinaryFacts("/app", "unreadable"), X86, image(), classify.UNKNOWN, "/app could not be read", ":"),
        (BinaryFacts("/app", "weird"), X86, image(), classify.UNKNOWN, "/app is of kind 'weird'", ""),
        (BinaryFacts("/app", "empty"), X86, image(), classify.EMPTY_FILE, "/app is empty", ""),
        (BinaryFacts("/app", "text"), X86, image(), classify.MISSING_SHEBANG, "/app is a text script without a #! line", ""),
        (BinaryFacts("/app", "bom_script"), X86, image(), classify.BOM_BEFORE_SHEBANG, "/app has bytes", ""),
        (elf("linux/arm64"), X86, image("linux/amd64"), classify.MISLABELED_IMAGE,
         "the image declares linux/amd64 but /app is built for linux/arm64", ""),
        (elf("linux/amd64"), X86, image("linux/amd64"), classify.RUNNABLE, "/app is built for linux/amd64, which linux/amd64 runs", ""),
    ],
)
def test_each_explanation_names_what_decided(binary: BinaryFacts, host: HostFacts, img: ImageFacts, cause: str,
                                             says: str, never: str) -> None:
    # (the first case: a 64-bit foreign binary on a host without 32-bit support is an arch mismatch, not "no 32-bit support")
    d = classify.classify(binary, host, img)
    assert d.cause == cause
    assert says in d.explanation, d.explanation
    assert not never or never not in d.explanation, d.explanation


def test_explanations_end_where_the_evidence_ends() -> None:
    unread = classify.classify(BinaryFacts("/app", "unreadable"), X86, image())
    assert unread.explanation == "the runtime reported exec format error but /app could not be read"
    nowhere = classify.classify(elf("linux/arm64"), HostFacts("x", "", can_run_32bit=True), image(""))
    assert nowhere.explanation.endswith("this host is of an unknown platform")
