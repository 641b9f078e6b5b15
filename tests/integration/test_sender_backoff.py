"""The agent's sender against real gRPC servers on port 0, in this process: it backs
off while the collector takes nothing, and says each failure once.

The servers here are small servicers of the real enoexec.v1 service (an older
collector that welcomes every stream and then fails its batches, as one did while
its store was down); the sender, its spool and its backoff are the real ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agent.delivery.backoff import Backoff
from agent.delivery.sender import Sender
from agent.delivery.spool import Spool
from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc
from tests import fleet, procs

FACTS = fleet.host("backoff-1", "linux/amd64", machine="x86_64", can_run_32bit=True)


class CountingBackoff(Backoff):
    """The real backoff, counting its calls; tiny delays keep the test short."""

    def __init__(self) -> None:
        super().__init__(base=0.005, cap=0.04)
        self.waits = 0
        self.resets = 0

    def next(self) -> float:
        self.waits += 1
        return super().next()

    def reset(self) -> None:
        self.resets += 1
        super().reset()


class WelcomingCollector(pb_grpc.CollectorServicer):
    """Welcomes every stream; fails batches with UNAVAILABLE until ``healthy``."""

    def __init__(self) -> None:
        self.healthy = False
        self.streams = 0

    async def Stream(self, request_iterator: AsyncIterator[pb.AgentMessage],  # noqa: N802 - gRPC method name
                     context: grpc.aio.ServicerContext) -> AsyncIterator[pb.CollectorMessage]:
        self.streams += 1
        await anext(request_iterator)
        yield pb.CollectorMessage(welcome=pb.Welcome(collector_version="old", max_batch_events=100))
        async for msg in request_iterator:
            if msg.HasField("batch"):
                if not self.healthy:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector's store is unavailable; retry later")
                yield pb.CollectorMessage(ack=pb.Ack(batch_id=msg.batch.batch_id,
                                                     stored_event_ids=[e.event_id for e in msg.batch.events]))


def spooled(tmp_path: Path, n: int = 1) -> Spool:
    spool = Spool(tmp_path / "spool.db")
    for i in range(n):
        ev = fleet.event(FACTS, f"b-{i}", cause="arch_mismatch", image="app:1", image_platform="linux/arm64")
        spool.put(ev.event_id, ev.SerializeToString())
    return spool


async def wait_until(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_welcome_without_an_acknowledged_batch_does_not_reset_the_backoff(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The Welcome came before the store was touched and reset the backoff: 20 agents
    reconnected every 0.25-0.5 s for the whole outage."""
    servicer = WelcomingCollector()
    spool = spooled(tmp_path)
    backoff = CountingBackoff()

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_CollectorServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        sender = Sender(f"127.0.0.1:{port}", spool, lambda: FACTS, backoff=backoff)
        running = asyncio.create_task(sender.run())
        try:
            await wait_until(lambda: servicer.streams >= 8, "8 streams")
            assert backoff.resets == 0 and backoff.waits >= 7  # it went on backing off
            servicer.healthy = True
            await wait_until(lambda: spool.stats().events == 0 and backoff.resets > 0, "the batch acknowledged")
            assert backoff.resets == 1  # the ack, not the Welcome, starts it over
        finally:
            sender.stop()
            await running
            await server.stop(0)

    with caplog.at_level(logging.INFO, logger="agent.delivery.sender"):
        asyncio.run(main())
    spool.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("agent.")]
    assert warnings == [f"collector unreachable: the collector at 127.0.0.1:{servicer_port(caplog)} cannot store "
                        "events now (its database is unavailable); it is retried with backoff"], warnings
    assert [r.getMessage() for r in caplog.records if "again" in r.getMessage()] == ["collector unreachable: connected again"]


def servicer_port(caplog: pytest.LogCaptureFixture) -> str:
    target = next(r.target for r in caplog.records if hasattr(r, "target"))
    return str(target).rsplit(":", 1)[1]


def test_a_collector_that_is_down_is_said_once_not_as_rpc_already_finished(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Collector down: warnings alternated between "stream ... ended: RPC already
    finished" (nothing was listening) and "nothing answers at ..."."""
    port = procs.free_port()  # nothing listens there
    spool = spooled(tmp_path)
    backoff = CountingBackoff()

    async def main() -> None:
        sender = Sender(f"127.0.0.1:{port}", spool, lambda: FACTS, backoff=backoff, heartbeat_interval=0.01)
        running = asyncio.create_task(sender.run())
        try:
            await wait_until(lambda: backoff.waits >= 40, "40 attempts")
        finally:
            sender.stop()
            await running

    with caplog.at_level(logging.INFO, logger="agent.delivery.sender"):
        asyncio.run(main())
    spool.close()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("agent.")]
    assert said == [f"collector unreachable: nothing answers at 127.0.0.1:{port} (collector down or restarting?)"], said
