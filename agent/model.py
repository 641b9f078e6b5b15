"""The facts the agent establishes, as frozen dataclasses.

Pure data: built by the I/O modules (``docker_io``, ``hostfacts``), judged by the
pure ones (``sniff``, ``classify``), and converted to protobuf only in ``wire``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
    engine: str = ""  # "docker", "containerd"
    engine_version: str = ""

    @property
    def emulated_platforms(self) -> tuple[str, ...]:
        """Platforms binfmt_misc emulates *inside containers*: enabled entries with
        the F flag (without it the interpreter must exist in the container)."""
        return tuple(sorted({e.platform for e in self.emulators if e.enabled and e.platform and "F" in e.flags}))


@dataclass(frozen=True)
class KubernetesPod:
    """The pod container an exit belongs to, from the labels containerd keeps."""

    pod: str
    namespace: str
    container: str
    pod_uid: str = ""
    restart_count: int | None = None


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    exit_code: int
    runtime_message: str
    finished_at: datetime
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    removed: bool = False
    kubernetes: KubernetesPod | None = None


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


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    explanation: str


@dataclass(frozen=True)
class Event:
    event_id: str
    time: datetime
    host: HostFacts
    container: ContainerFacts
    image: ImageFacts
    binary: BinaryFacts
    cause: str
    explanation: str = ""
    evidence: str = ""  # "runtime_message" or "file_only"
    backfilled: bool = False
