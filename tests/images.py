"""Test images from scratch; the builder lives in ``agent.engine.scratch_image`` (also used by ``enoexec-agent demo``)."""

from agent.engine.scratch_image import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
    File,
    archive,
    elf,
    pe,
)

__all__ = ["EM_386", "EM_AARCH64", "EM_ARM", "EM_PPC64", "EM_RISCV", "EM_S390", "EM_X86_64", "File", "archive", "elf", "pe"]
