"""Convert the agent's dataclasses to the ``enoexec.v1`` protobuf messages and JSON.

The JSON form (``enoexec-agent diagnose --json``) is the protobuf message's
canonical JSON with the proto field names, so it is exactly what the collector
receives.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from agent.model import (
    BinaryFacts,
    ContainerFacts,
    Emulator,
    Event,
    HostFacts,
    ImageFacts,
    KubernetesPod,
)
from enoexec.v1 import enoexec_pb2 as pb


def timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def host_pb(h: HostFacts) -> pb.HostFacts:
    return pb.HostFacts(
        host_id=h.host_id,
        platform=h.platform,
        kernel_machine=h.kernel_machine,
        kernel_release=h.kernel_release,
        docker_version=h.docker_version,
        docker_platform=h.docker_platform,
        default_runtime=h.default_runtime,
        runtime_version=h.runtime_version,
        cpu_model=h.cpu_model,
        page_size=h.page_size,
        memory_bytes=h.memory_bytes,
        can_run_32bit=h.can_run_32bit,
        emulators=[emulator_pb(e) for e in h.emulators],
        hostname=h.hostname,
        runnable_platforms=list(h.runnable_platforms),
        cpu_level=h.cpu_level,
        engine=h.engine,
        engine_version=h.engine_version,
    )


def emulator_pb(e: Emulator) -> pb.Emulator:
    return pb.Emulator(name=e.name, platform=e.platform, interpreter=e.interpreter, flags=e.flags, enabled=e.enabled)


def container_pb(c: ContainerFacts) -> pb.ContainerFacts:
    return pb.ContainerFacts(
        id=c.id,
        name=c.name,
        exit_code=c.exit_code,
        runtime_message=c.runtime_message,
        finished_at=timestamp(c.finished_at),
        entrypoint=list(c.entrypoint),
        cmd=list(c.cmd),
        removed=c.removed,
        kubernetes=kubernetes_pb(c.kubernetes) if c.kubernetes is not None else None,
    )


def kubernetes_pb(k: KubernetesPod) -> pb.KubernetesPod:
    return pb.KubernetesPod(
        pod=k.pod, namespace=k.namespace, container=k.container, pod_uid=k.pod_uid,
        restart_count=k.restart_count or 0, has_restart_count=k.restart_count is not None,
    )


def image_pb(i: ImageFacts) -> pb.ImageFacts:
    return pb.ImageFacts(
        ref=i.ref,
        id=i.id,
        declared_platform=i.declared_platform,
        repo_digests=list(i.repo_digests),
        available_platforms=list(i.available_platforms or ()),
        available_platforms_known=i.available_platforms is not None,
    )


def binary_pb(b: BinaryFacts) -> pb.BinaryFacts:
    return pb.BinaryFacts(
        path=b.path,
        kind=b.kind,
        platform=b.platform,
        shebang=b.shebang,
        interpreter=b.interpreter,
        description=b.description,
        source=b.source,
        requested_path=b.requested_path,
        error=b.error,
        truncated=b.truncated,
        size=b.size,
        missing=b.missing,
        libc=b.libc,
        image_libc=b.image_libc,
        isa_level=b.isa_level,
        load_align=b.load_align,
        damage=b.damage,
    )


def event_pb(e: Event) -> pb.Event:
    return pb.Event(
        event_id=e.event_id,
        time=timestamp(e.time),
        host=host_pb(e.host),
        container=container_pb(e.container),
        image=image_pb(e.image),
        binary=binary_pb(e.binary),
        cause=e.cause,
        explanation=e.explanation,
        evidence=e.evidence,
        backfilled=e.backfilled,
        failure=e.failure,
    )


# Fields that can grow without bound with what a user or an image chose, and may
# be cut to make an event fit: (message path, field). Ids, cause, time and the
# host's identity are never cut.
_CUTTABLE = (
    ("container", "cmd"), ("container", "entrypoint"), ("container", "runtime_message"), ("container", "name"),
    ("binary", "shebang"), ("binary", "description"), ("binary", "error"), ("binary", "path"),
    ("binary", "requested_path"), ("binary", "interpreter"), ("binary", "missing"), ("binary", "damage"), ("image", "ref"), ("image", "repo_digests"),
    ("", "explanation"),
)
MIN_KEPT = 32  # characters a cut string keeps at least


def truncated(text: str, keep: int) -> str:
    """``text`` cut to ``keep`` characters, with a marker saying how much is missing."""
    return f"{text[:keep]}…[+{len(text) - keep} chars]"


def fit(event: pb.Event, max_bytes: int) -> pb.Event:
    """A copy of ``event`` whose serialized size is at most ``max_bytes``.

    The longest user-controlled string is halved (with a marker) until the event
    fits; then list items are dropped from the end (with a marker item). An
    event that already fits is returned unchanged.
    """
    if event.ByteSize() <= max_bytes:
        return event
    out = pb.Event()
    out.CopyFrom(event)
    # (container message, field name, index in a repeated field or -1, original text)
    slots: list[tuple[object, str, int, str]] = []
    for part, name in _CUTTABLE:
        msg = getattr(out, part) if part else out
        value = getattr(msg, name)
        if isinstance(value, str):
            slots.append((msg, name, -1, value))
        else:
            slots.extend((msg, name, i, v) for i, v in enumerate(value))
    kept = [len(s[3]) for s in slots]
    while out.ByteSize() > max_bytes:
        longest = max(range(len(slots)), key=lambda i: kept[i], default=-1)
        if longest < 0 or kept[longest] <= MIN_KEPT:
            break
        msg, name, index, text = slots[longest]
        kept[longest] = max(MIN_KEPT, kept[longest] // 2)
        value = truncated(text, kept[longest])
        if index < 0:
            setattr(msg, name, value)
        else:
            getattr(msg, name)[index] = value
    for part, name in _CUTTABLE:  # still too big: many short items
        msg = getattr(out, part) if part else out
        items = getattr(msg, name)
        if isinstance(items, str):
            continue
        total = real = len(items)
        while out.ByteSize() > max_bytes and real > 0:
            del items[real - 1:]  # the last real item and the marker
            real -= 1
            items.append(f"…[+{total - real} more]")
    return out
