"""Name the cause of an exec format error from the evidence. Pure.

The causes and their evidence are the table in README.md, "Causes". The
entry point is :func:`classify`; it never looks anything up, so every branch is
tested with literal facts.
"""

from __future__ import annotations

from enoexec import platforms
from enoexec.causes import (
    ARCH_MISMATCH,
    BOM_BEFORE_SHEBANG,
    CORRUPT_FILE,
    EMPTY_FILE,
    FOREIGN_OS_BINARY,
    MISLABELED_IMAGE,
    MISSING_SHEBANG,
    NO_32BIT_SUPPORT,
    NOT_A_BINARY,
    UNKNOWN,
)
from enoexec.facts import BinaryFacts, Diagnosis, HostFacts, ImageFacts

# A binary of a runnable platform that still failed: not an exec format error
# we can explain, and most likely not one at all (see ``is_runnable``).
RUNNABLE = "runnable"


def is_runnable(binary: BinaryFacts, host: HostFacts) -> bool:
    """True if the kernel would execute this ELF on this host.

    The kernel does not look at a 32-bit ARM ELF's architecture version: an armv7
    binary on an ARMv6 board is executed, and dies of SIGILL later (a CPU-level
    problem, :mod:`enoexec.judge.lookalike`), never of exec format error."""
    if binary.kind != "elf" or not binary.platform:
        return False
    runnable = _runnable(host)
    if binary.platform.startswith(_ARM32) and any(p.startswith(_ARM32) for p in runnable):
        return True
    return binary.platform in runnable


_ARM32 = "linux/arm/"


def _runnable(host: HostFacts) -> tuple[str, ...]:
    if host.runnable_platforms:
        return host.runnable_platforms
    return platforms.native_platforms(host.platform, host.can_run_32bit)


def _mislabeled(image: ImageFacts, binary: BinaryFacts) -> bool:
    declared = image.declared_platform
    if not declared or not binary.platform:
        return False
    if binary.variant_guessed:
        return platforms.arch_of(binary.platform) != platforms.arch_of(declared)
    # An arm/v7 image may carry an arm/v6 binary: v7 cores run it. That is fine.
    return binary.platform not in platforms.native_platforms(declared, can_run_32bit=False)


def classify(binary: BinaryFacts, host: HostFacts, image: ImageFacts) -> Diagnosis:
    """The cause of an exec format error, with a one-sentence explanation."""
    kind = binary.kind
    where = binary.path or binary.requested_path or "the entrypoint"
    if kind == "unreadable":
        why = f": {binary.error}" if binary.error else ""
        return Diagnosis(UNKNOWN, f"the runtime reported exec format error but {where} could not be read{why}")
    if kind == "empty" or binary.truncated:
        return Diagnosis(EMPTY_FILE, f"{where} is empty or its header is truncated")
    if kind in ("pe", "macho"):
        os_name = "Windows PE" if kind == "pe" else "macOS Mach-O"
        return Diagnosis(FOREIGN_OS_BINARY, f"{where} is a {os_name} executable, which Linux cannot run")
    if kind == "bom_script":
        return Diagnosis(BOM_BEFORE_SHEBANG, f"{where} has bytes (a byte-order mark?) before its #! line")
    if kind == "text":
        return Diagnosis(MISSING_SHEBANG, f"{where} is a text script without a #! line")
    if kind == "zeros":
        return Diagnosis(CORRUPT_FILE, f"{where} holds nothing but zero bytes: the file was lost on this host "
                                       f"(a crash or a full disk while it was written)")
    if kind in ("lfs_pointer", "html", "data"):
        what = {"lfs_pointer": "a Git LFS pointer", "html": "an HTML/XML page"}.get(kind, "data")
        return Diagnosis(NOT_A_BINARY, f"{where} is {what}, not an executable")
    if kind != "elf":
        return Diagnosis(UNKNOWN, f"{where} is of kind {kind!r}, which should have executed")

    bin_platform = binary.platform or "an unknown platform"
    if _mislabeled(image, binary):
        return Diagnosis(
            MISLABELED_IMAGE,
            f"the image declares {image.declared_platform} but {where} is built for {bin_platform}",
        )
    if is_runnable(binary, host) and binary.damage:
        return Diagnosis(CORRUPT_FILE, f"{where} is damaged: {binary.damage}")
    if is_runnable(binary, host):
        return Diagnosis(
            RUNNABLE, f"{where} is built for {bin_platform}, which {host.platform} runs"
        )
    if binary.platform and platforms.is_32bit_companion(host.platform, binary.platform) and not host.can_run_32bit:
        return Diagnosis(
            NO_32BIT_SUPPORT,
            f"{where} is a 32-bit {bin_platform} binary and this {host.platform} host cannot run 32-bit code",
        )
    emulated = " and binfmt_misc emulates no such platform for containers" if host.platform else ""
    return Diagnosis(
        ARCH_MISMATCH,
        f"{where} is built for {bin_platform}; this host is {host.platform or 'of an unknown platform'}{emulated}",
    )
