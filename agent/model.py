"""The facts the agent establishes, as frozen dataclasses.

Pure data: built by the I/O modules (``docker_io``, ``hostfacts``), judged by the
pure ones (``sniff``, ``classify``), and converted to protobuf only in ``wire``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from enoexec.facts import BinaryFacts, Diagnosis, Emulator, HostFacts, ImageFacts

__all__ = ["BinaryFacts", "ContainerFacts", "Diagnosis", "Emulator", "Event", "HostFacts", "ImageFacts",
           "KubernetesPod"]


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
class Event:
    event_id: str
    time: datetime
    host: HostFacts
    container: ContainerFacts
    image: ImageFacts
    binary: BinaryFacts
    cause: str
    explanation: str = ""
    evidence: str = ""  # "runtime_message", "file_only", "exit_signal" or "loader_message"
    backfilled: bool = False
    failure: str = "exec_format_error"  # or "start_failure" (enoexec.causes.FAILURES)
