"""The facts judging needs, as frozen dataclasses: the host, the image, the file, the verdict.

Pure data shared by the agent (which establishes them) and the collector (whose
``check`` judges an image read from a registry with the same classifier).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Emulator:
    """One binfmt_misc registration."""

    name: str
    platform: str  # OCI platform it runs, "" when its magic is not recognised
    interpreter: str
    flags: str
    enabled: bool


@dataclass(frozen=True)
class HostFacts:
    host_id: str
    platform: str
    kernel_machine: str = ""
    kernel_release: str = ""
    docker_version: str = ""
    docker_platform: str = ""
    default_runtime: str = ""
    runtime_version: str = ""
    cpu_model: str = ""
    page_size: int = 0
    memory_bytes: int = 0
    can_run_32bit: bool = False
    emulators: tuple[Emulator, ...] = ()
    hostname: str = ""
    runnable_platforms: tuple[str, ...] = ()
    # What the CPU runs: "x86-64-v3" (from /proc/cpuinfo flags), "armv6", "armv7", "armv8"; "" unknown.
    cpu_level: str = ""
    engine: str = ""  # the container engine the agent watches: "docker", "containerd"
    engine_version: str = ""

    @property
    def emulated_platforms(self) -> tuple[str, ...]:
        """Platforms binfmt_misc emulates *inside containers*: enabled entries with
        the F flag (without it the interpreter must exist in the container)."""
        return tuple(sorted({e.platform for e in self.emulators if e.enabled and e.platform and "F" in e.flags}))


@dataclass(frozen=True)
class ImageFacts:
    ref: str
    id: str
    declared_platform: str = ""
    repo_digests: tuple[str, ...] = ()
    # None: unknown (registry not reachable or not asked).
    available_platforms: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BinaryFacts:
    """What the entrypoint file turned out to be."""

    path: str
    kind: str  # a sniff.Kind value, or "unreadable"
    platform: str = ""
    shebang: str = ""
    interpreter: str = ""
    description: str = ""
    source: str = ""  # "container" or "image"
    requested_path: str = ""
    error: str = ""
    truncated: bool = False
    # The arm variant is a default, not read from the file.
    variant_guessed: bool = False
    size: int = -1  # bytes, from the image's tar header; -1 unknown
    # The program loader (PT_INTERP) or script interpreter the file names and the image lacks.
    missing: str = ""
    libc: str = ""  # "musl" or "glibc": the libc family its loader path belongs to
    image_libc: str = ""  # the family whose loader the image has for that platform ("" none found)
    isa_level: int = 0  # x86-64 level it (or its loader) is marked as needing; 0 unmarked
    load_align: int = 0  # smallest PT_LOAD alignment
    damage: str = ""  # why the file is damaged (cut short), "" when it is not known to be


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    explanation: str
