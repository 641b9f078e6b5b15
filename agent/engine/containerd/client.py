"""containerd's gRPC API, as the agent uses it: read-only calls and the event stream.

Every call names its namespace in the ``containerd-namespace`` metadata, as
containerd's own clients do. ``NOT_FOUND`` is an answer (``None``); any other
failure raises ``ContainerdUnavailable`` with a one-line reason, so the caller
can leave the exit for reconciliation exactly as with an unreachable Docker.
The agent never creates, starts or deletes anything through this client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import empty_pb2

from agent.errors import ContainerdUnavailable
from enoexec.third_party.containerd.api.events import container_pb2 as container_events
from enoexec.third_party.containerd.api.events import task_pb2 as task_events
from enoexec.third_party.containerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from enoexec.third_party.containerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from enoexec.third_party.containerd.api.services.events.v1 import events_pb2, events_pb2_grpc
from enoexec.third_party.containerd.api.services.images.v1 import images_pb2, images_pb2_grpc
from enoexec.third_party.containerd.api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from enoexec.third_party.containerd.api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from enoexec.third_party.containerd.api.services.version.v1 import version_pb2_grpc

logger = logging.getLogger(__name__)

NAMESPACE_HEADER = "containerd-namespace"
CALL_TIMEOUT = 10.0
# Blobs the agent reads (an image index, manifest or config) are small; anything
# bigger is not one of them.
MAX_BLOB = 4 * 1024 * 1024
# The events the agent decodes, by the type URL containerd packs them with.
EVENT_TYPES: dict[str, Any] = {
    "containerd.events.TaskExit": task_events.TaskExit,
    "containerd.events.TaskCreate": task_events.TaskCreate,
    "containerd.events.TaskDelete": task_events.TaskDelete,
    "containerd.events.TaskStart": task_events.TaskStart,
    "containerd.events.ContainerCreate": container_events.ContainerCreate,
}


@dataclass(frozen=True)
class Envelope:
    """One event off the stream: where and when, and the decoded message (``None`` if not ours)."""

    namespace: str
    topic: str
    timestamp: Any
    event: Any


def decode(envelope: events_pb2.Envelope) -> Envelope:
    type_url = envelope.event.type_url
    cls = EVENT_TYPES.get(type_url.rsplit("/", 1)[-1])
    message = None
    if cls is not None:
        message = cls()
        message.ParseFromString(envelope.event.value)
    return Envelope(envelope.namespace, envelope.topic, envelope.timestamp, message)


def address_target(address: str) -> str:
    """A gRPC target for a socket path (``/run/containerd/containerd.sock``) or ``unix://`` URL."""
    if address.startswith("unix:"):
        return address
    return "unix:" + address


class ContainerdClient:
    """Read-only access to one containerd; ``close`` releases its channel."""

    def __init__(self, address: str, *, timeout: float = CALL_TIMEOUT) -> None:
        self.address = address
        self._timeout = timeout
        self._channel = grpc.insecure_channel(
            address_target(address), options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        )
        self._events = events_pb2_grpc.EventsStub(self._channel)
        self._containers = containers_pb2_grpc.ContainersStub(self._channel)
        self._tasks = tasks_pb2_grpc.TasksStub(self._channel)
        self._images = images_pb2_grpc.ImagesStub(self._channel)
        self._content = content_pb2_grpc.ContentStub(self._channel)
        self._snapshots = snapshots_pb2_grpc.SnapshotsStub(self._channel)
        self._version = version_pb2_grpc.VersionStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _call(self, what: str, method: Any, request: Any, namespace: str) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=((NAMESPACE_HEADER, namespace),))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise ContainerdUnavailable(f"containerd at {self.address}: {what}: {e.code().name}: {e.details()}") from None

    # -- the stream ---------------------------------------------------------------
    def subscribe(self, filters: Sequence[str]) -> Any:
        """The event stream (iterate it; ``cancel()`` ends it). Errors surface while iterating."""
        return self._events.Subscribe(events_pb2.SubscribeRequest(filters=list(filters)))

    # -- reads ---------------------------------------------------------------------
    def container(self, namespace: str, container_id: str) -> containers_pb2.Container | None:
        res = self._call(f"get container {container_id}", self._containers.Get,
                         containers_pb2.GetContainerRequest(id=container_id), namespace)
        return res.container if res is not None else None

    def containers(self, namespace: str) -> list[containers_pb2.Container]:
        res = self._call("list containers", self._containers.List, containers_pb2.ListContainersRequest(), namespace)
        return list(res.containers) if res is not None else []

    def task(self, namespace: str, container_id: str) -> Any | None:
        res = self._call(f"get task {container_id}", self._tasks.Get, tasks_pb2.GetRequest(container_id=container_id),
                         namespace)
        return res.process if res is not None else None

    def tasks(self, namespace: str) -> list[Any]:
        res = self._call("list tasks", self._tasks.List, tasks_pb2.ListTasksRequest(), namespace)
        return list(res.tasks) if res is not None else []

    def image(self, namespace: str, name: str) -> images_pb2.Image | None:
        res = self._call(f"get image {name}", self._images.Get, images_pb2.GetImageRequest(name=name), namespace)
        return res.image if res is not None else None

    def blob(self, namespace: str, digest: str, size: int = 0) -> bytes | None:
        """A blob of the content store (index, manifest, config), at most MAX_BLOB bytes."""
        if size > MAX_BLOB:
            return None
        request = content_pb2.ReadContentRequest(digest=digest, size=size)
        chunks: list[bytes] = []
        total = 0
        try:
            for part in self._content.Read(request, timeout=self._timeout, metadata=((NAMESPACE_HEADER, namespace),)):
                chunks.append(part.data)
                total += len(part.data)
                if total > MAX_BLOB:
                    return None
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise ContainerdUnavailable(f"containerd at {self.address}: read {digest[:19]}: {e.code().name}") from None
        return b"".join(chunks)

    def blob_json(self, namespace: str, digest: str, size: int = 0) -> dict[str, Any] | None:
        data = self.blob(namespace, digest, size)
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def mounts(self, namespace: str, snapshotter: str, key: str) -> list[tuple[str, str, tuple[str, ...]]] | None:
        """The mounts of an active snapshot: (type, source, options); ``None`` if it is gone."""
        res = self._call(f"mounts of snapshot {key}", self._snapshots.Mounts,
                         snapshots_pb2.MountsRequest(snapshotter=snapshotter, key=key), namespace)
        if res is None:
            return None
        return [(m.type, m.source, tuple(m.options)) for m in res.mounts]

    def ping(self) -> None:
        """Raises ContainerdUnavailable unless containerd answers."""
        self._call("list namespaces' tasks", self._tasks.List, tasks_pb2.ListTasksRequest(filter="id==enoexec-ping"),
                   "default")

    def version(self) -> str:
        """containerd's version, "" when it does not say."""
        try:
            return str(self._version.Version(empty_pb2.Empty(), timeout=self._timeout).version)
        except grpc.RpcError:
            return ""
