"""Stream spooled events to the collector over one long-lived gRPC stream.

At-least-once: an event leaves the spool only when the collector's Ack names
it. Reconnects with capped, jittered backoff; keepalive pings every 60 s keep
the stream alive through NAT devices that forget idle flows after 5 minutes.

The backoff starts over only once the collector has taken something (an
acknowledged batch left the spool) or a stream stayed up for ``STABLE_AFTER``
seconds: a collector that welcomes agents while its store fails is retried
less and less often, not every half second. A failure is said once, then
summarised (the same failure from another angle, such as a write on a call the
collector already ended, is reported as the call's own status).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from agent import selfstats
from agent.delivery.backoff import Backoff
from agent.delivery.spool import Spool
from agent.delivery.stream_errors import explain
from agent.errors import ConfigError, SpoolError
from enoexec import __version__
from enoexec.logsetup import Repeats
from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

# Per grpc's keepalive guide: ping below the typical 5-minute NAT idle timeout;
# the collector permits pings this often.
KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
ACK_TIMEOUT = 30.0
STABLE_AFTER = 60.0  # seconds a stream must live for the backoff to start over without an ack


class Sender:
    def __init__(
        self,
        target: str,
        spool: Spool,
        host_facts: Callable[[], pb.HostFacts],
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        batch_size: int = 100,
        heartbeat_interval: float = 15.0,
        backoff: Backoff | None = None,
        self_stats: Callable[[], selfstats.SelfStats] = selfstats.read,
        inventory: Callable[[], pb.ImageInventory | None] = lambda: None,
    ) -> None:
        self._inventory = inventory
        self._target = target
        self._spool = spool
        self._host_facts = host_facts
        self._credentials = credentials
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._batch_size = batch_size
        self._heartbeat = heartbeat_interval
        self._backoff = backoff or Backoff(base=0.5, cap=30.0)
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._batch_id = 0
        self._self_stats = self_stats
        self._failures = Repeats(logger, "collector unreachable", every=300.0)
        self._spool_failures = Repeats(logger, "spool cannot be written", every=300.0)
        self.fatal: ConfigError | None = None  # a refusal retrying cannot fix; run() returned
        self.failed = asyncio.Event()  # set with ``fatal``

    def notify(self) -> None:
        """New events are in the spool."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def _channel(self) -> grpc.aio.Channel:
        if self._credentials is not None:
            return grpc.aio.secure_channel(self._target, self._credentials, options=KEEPALIVE_OPTIONS)
        return grpc.aio.insecure_channel(self._target, options=KEEPALIVE_OPTIONS)

    def _spool_stats(self) -> pb.SpoolStats:
        s = self._spool.stats()
        return pb.SpoolStats(events=s.events, dropped_total=s.dropped_total, bytes=s.bytes)

    def _resources(self) -> pb.AgentResources:
        """What this agent costs its host, and whether its spool can still be written."""
        me = self._self_stats()
        return pb.AgentResources(
            resident_memory_bytes=me.resident_memory_bytes, cpu_seconds=me.cpu_seconds, open_fds=me.open_fds,
            spool_writable=not self._spool.write_failed and selfstats.writable(self._spool.path),
            uptime_seconds=me.uptime_seconds,
        )

    def _beat(self) -> pb.Heartbeat:
        beat = pb.Heartbeat(spool=self._spool_stats(), resources=self._resources())
        if (inventory := self._inventory()) is not None:
            beat.inventory.CopyFrom(inventory)
        beat.time.FromDatetime(datetime.now(UTC))
        return beat

    async def run(self) -> None:
        """Connect, stream, reconnect until ``stop``; returns once stopped."""
        while not self._stopping.is_set():
            try:
                await self._session()
            except _CallEnded as e:
                if self._failed_call(e.code, e.details):
                    return
            except grpc.aio.AioRpcError as e:
                if self._failed_call(e.code(), e.details() or ""):
                    return
            except (TimeoutError, ConnectionError) as e:
                self._failures.failed(f"stream to {self._target} ended: {e or type(e).__name__}", target=self._target)
            except SpoolError as e:  # a full or read-only --state-dir: acked events cannot leave it
                self._spool_failures.failed(str(e))
            except Exception:  # the sender must never die for good: events would pile up unsent
                logger.exception("collector stream failed", extra={"target": self._target})
            if self._stopping.is_set():
                break
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._backoff.next())
            except TimeoutError:
                pass

    def _failed_call(self, code: grpc.StatusCode, details: str) -> bool:
        """Say a failed call; True when retrying cannot help (``fatal`` is set)."""
        failure = explain(code.name, details, self._target, tls=self._credentials is not None)
        if failure.permanent:
            self.fatal = ConfigError(failure.message)
            self.failed.set()
            return True
        self._failures.failed(failure.message, target=self._target, code=code.name)
        return False

    async def _session(self) -> None:
        async with self._channel() as channel:
            call = pb_grpc.CollectorStub(channel).Stream(metadata=self._metadata)
            try:
                await self._converse(call)
            except asyncio.InvalidStateError:
                # grpc.aio refuses a write on a call that already ended (nothing listens,
                # or the collector ended it while this stream was idle): its status says why.
                raise _CallEnded(await call.code(), await call.details() or "") from None
            finally:
                call.cancel()

    async def _converse(self, call: grpc.aio.StreamStreamCall) -> None:
        hello = pb.Hello(
            agent_version=__version__, host=self._host_facts(),
            spool=await asyncio.to_thread(self._spool_stats), resources=await asyncio.to_thread(self._resources),
        )
        if (inventory := self._inventory()) is not None:
            hello.inventory.CopyFrom(inventory)
        await call.write(pb.AgentMessage(hello=hello))
        welcome = await asyncio.wait_for(call.read(), ACK_TIMEOUT)
        if welcome is grpc.aio.EOF or not welcome.HasField("welcome"):
            raise ConnectionError("collector closed the stream before its welcome")
        max_batch = welcome.welcome.max_batch_events or self._batch_size
        batch_size = max(1, min(self._batch_size, max_batch))
        # The failure, if any, is over only once the collector takes something (``_settled``).
        logger.info("collector connected", extra={"target": self._target, "collector_version": welcome.welcome.collector_version})
        await self._pump(call, batch_size)

    def _settled(self) -> None:
        """The collector works: it took a batch, or the stream lived ``STABLE_AFTER`` seconds."""
        self._backoff.reset()
        self._failures.recovered("connected again", target=self._target)

    async def _pump(self, call: grpc.aio.StreamStreamCall, batch_size: int) -> None:
        loop = asyncio.get_running_loop()
        last_beat = welcomed = loop.time()
        while True:
            if loop.time() - welcomed >= STABLE_AFTER:
                self._settled()
            pending = await asyncio.to_thread(self._spool.peek, batch_size)
            if pending:
                await self._send_batch(call, pending)
                continue
            if self._stopping.is_set():
                return
            timeout = max(0.0, self._heartbeat - (loop.time() - last_beat))
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
            except TimeoutError:
                beat = await asyncio.to_thread(self._beat)
                await call.write(pb.AgentMessage(heartbeat=beat))
                last_beat = loop.time()

    async def _send_batch(self, call: grpc.aio.StreamStreamCall, pending: list) -> None:
        self._batch_id += 1
        batch = pb.EventBatch(batch_id=self._batch_id)
        for item in pending:
            event = batch.events.add()
            event.ParseFromString(item.payload)
        await call.write(pb.AgentMessage(batch=batch))
        while True:
            reply = await asyncio.wait_for(call.read(), ACK_TIMEOUT)
            if reply is grpc.aio.EOF:
                raise ConnectionError("collector closed the stream before acknowledging")
            if reply.HasField("ack") and reply.ack.batch_id == self._batch_id:
                break
        done = list(reply.ack.stored_event_ids) + [r.event_id for r in reply.ack.rejected]
        for r in reply.ack.rejected:
            logger.warning("collector rejected event", extra={"event_id": r.event_id, "reason": r.reason})
        removed = await asyncio.to_thread(self._spool.ack, done)
        self._settled()
        self._spool_failures.recovered("acknowledged events removed again")
        logger.debug("batch acknowledged", extra={"batch_id": self._batch_id, "events": len(pending), "removed": removed})


class _CallEnded(Exception):
    """The call had already ended when the sender wrote to it; its status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name} {details}")
        self.code = code
        self.details = details
