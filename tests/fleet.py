"""A scripted fleet: in-test gRPC agents that speak the real enoexec.v1 stream.

``ScriptedAgent(port, facts)`` opens ``Stream``, sends a Hello and reads the
Welcome; ``send(events)`` sends one EventBatch and returns its Ack;
``heartbeat()`` reports spool stats; ``close()`` ends the stream. Events are built
with :func:`event`, hosts with :func:`host`.
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc

_batch_ids = itertools.count(1)
_CLOSE = object()


def host(
    host_id: str,
    platform: str,
    *,
    machine: str,
    can_run_32bit: bool,
    emulators: Sequence[str] = (),
    kernel: str = "6.8.0-test",
    docker_version: str = "27.3.1",
) -> pb.HostFacts:
    """HostFacts; ``emulators`` are platforms with an enabled F-flag binfmt_misc entry."""
    return pb.HostFacts(
        host_id=host_id,
        platform=platform,
        kernel_machine=machine,
        kernel_release=kernel,
        docker_version=docker_version,
        docker_platform=platform,
        can_run_32bit=can_run_32bit,
        hostname=host_id,
        emulators=[
            pb.Emulator(name=f"qemu-{p.split('/')[1]}", platform=p, interpreter=f"/usr/bin/qemu-{p.split('/')[1]}", flags="F", enabled=True)
            for p in emulators
        ],
        runnable_platforms=[platform, *emulators],
    )


def event(
    facts: pb.HostFacts,
    event_id: str,
    *,
    cause: str,
    image: str,
    image_platform: str,
    binary_platform: str = "",
    kind: str = "elf",
    path: str = "/app",
    available: Sequence[str] | None = None,
    age: timedelta = timedelta(minutes=5),
    container: str = "",
) -> pb.Event:
    """One diagnosed exit on ``facts``' host, ``age`` ago."""
    when = datetime.now(UTC) - age
    ev = pb.Event(
        event_id=event_id,
        host=facts,
        container=pb.ContainerFacts(
            id=(container or event_id).ljust(12, "0"), name=container or f"c-{event_id}", exit_code=255,
            runtime_message=f"exec {path}: exec format error", entrypoint=[path],
        ),
        image=pb.ImageFacts(
            ref=image, id="sha256:" + "ab" * 32, declared_platform=image_platform,
            available_platforms=list(available or ()), available_platforms_known=available is not None,
        ),
        binary=pb.BinaryFacts(path=path, requested_path=path, kind=kind, platform=binary_platform, source="image"),
        cause=cause,
        explanation=f"test event {event_id}",
    )
    ev.time.FromDatetime(when)
    return ev


class ScriptedAgent:
    """One agent stream, driven step by step from a test."""

    def __init__(self, grpc_port: int, facts: pb.HostFacts, *, spool_events: int = 0, dropped_total: int = 0,
                 hello: pb.Hello | None = None) -> None:
        self.facts = facts
        self._channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self._outbox: queue.Queue[Any] = queue.Queue()
        stub = pb_grpc.CollectorStub(self._channel)
        self._replies = stub.Stream(iter(self._outbox.get, _CLOSE), timeout=60)
        self._outbox.put(pb.AgentMessage(hello=hello or pb.Hello(
            agent_version="test", host=facts, spool=pb.SpoolStats(events=spool_events, dropped_total=dropped_total),
        )))
        first = next(self._replies)
        assert first.HasField("welcome"), first
        self.welcome = first.welcome
        self.closed = False

    def send(self, events: Iterable[pb.Event]) -> pb.Ack:
        batch_id = next(_batch_ids)
        self._outbox.put(pb.AgentMessage(batch=pb.EventBatch(batch_id=batch_id, events=list(events))))
        reply = next(self._replies)
        assert reply.HasField("ack") and reply.ack.batch_id == batch_id, reply
        return reply.ack

    def heartbeat(self, spool_events: int, dropped_total: int, resources: pb.AgentResources | None = None) -> None:
        hb = pb.Heartbeat(spool=pb.SpoolStats(events=spool_events, dropped_total=dropped_total), resources=resources)
        hb.time.GetCurrentTime()
        self._outbox.put(pb.AgentMessage(heartbeat=hb))

    def close(self) -> None:
        """Half-close the stream and wait for the collector to end it."""
        if self.closed:
            return
        self.closed = True
        self._outbox.put(_CLOSE)
        for _ in self._replies:
            pass
        self._channel.close()

    def __enter__(self) -> ScriptedAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        except grpc.RpcError:
            self._channel.close()
