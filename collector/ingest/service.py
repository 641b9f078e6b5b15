"""The gRPC servicer: a thin adapter between agents' streams and the store."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import grpc

from collector import auth
from collector.errors import StoreError
from collector.ingest import ingest, reported
from collector.ingest.agent_resources import ResourceBoard
from collector.ingest.host_cap import HostCap
from collector.ingest.inventory import InventoryBoard
from collector.ingest.presence import Presence
from collector.ingest.ratelimit import TokenBucket
from collector.ingest.stats import Stats
from collector.ingest.writer import GroupWriter
from enoexec import __version__, limits
from enoexec.eventjson import to_json
from enoexec.logsetup import Repeats
from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
MAX_THROTTLE = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class CollectorService(pb_grpc.CollectorServicer):
    """Checks what agents send, hands events to the group writer, keeps hosts'
    liveness in :class:`~collector.ingest.presence.Presence`; acks only after commit.

    Every message costs the agent tokens from its bucket (a batch its events, at
    least one; a heartbeat one), so floods of empty batches or heartbeats are
    slowed like floods of events. At most ``max_streams`` streams are open at once,
    counting those still waiting for their Hello (which must come within
    ``hello_timeout`` seconds); more are refused with RESOURCE_EXHAUSTED and the
    agent retries with backoff.
    """

    def __init__(
        self,
        stats: Stats,
        presence: Presence,
        writer: GroupWriter,
        *,
        max_batch_events: int = 500,
        tokens: auth.Tokens | None = None,
        agent_rate: float = 50.0,
        agent_burst: int = 2000,
        max_streams: int = 20_000,
        hello_timeout: float = HELLO_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
        resources: ResourceBoard | None = None,
        inventory: InventoryBoard | None = None,
        host_cap: HostCap | None = None,
    ) -> None:
        self._resources = resources or ResourceBoard()
        self._inventory = inventory or InventoryBoard()
        self._host_cap = host_cap if host_cap is not None else HostCap(10_000)
        self._new_hosts_refused = Repeats(logger, "new hosts refused", every=300.0)
        self._stats = stats
        self._presence = presence
        self._writer = writer
        self._max_batch = max_batch_events
        self._clock = clock
        self._tokens = tokens
        self._rate = agent_rate
        self._burst = agent_burst
        self._max_streams = max_streams
        self._hello_timeout = hello_timeout
        self._buckets: dict[str, TokenBucket] = {}

    async def Stream(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CollectorMessage]:
        if self._stats.streams >= self._max_streams:
            self._stats.reject("too_many_streams")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the collector holds {self._max_streams} streams, its limit; retry later")
        self._stats.stream(+1)
        try:
            async for reply in self._serve(request_iterator, context):
                yield reply
        except StoreError:  # the one place a stream meets the store's failure (the writer says it)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector's store is unavailable; retry later")
        except (grpc.RpcError, grpc.aio.BaseError):
            raise  # an abort on purpose (AbortError), or the agent went away
        except Exception as e:  # a bug: a status and one line, never a traceback in the agent's face
            logger.error("stream failed peer=%s error=%s: %s", context.peer(), type(e).__name__, str(e)[:200])
            logger.debug("stream failed", exc_info=True)
            await context.abort(grpc.StatusCode.INTERNAL, "the collector failed on this stream; see its log")
        finally:
            self._stats.stream(-1)

    async def _serve(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CollectorMessage]:
        try:
            first = await asyncio.wait_for(anext(request_iterator), self._hello_timeout)
        except (TimeoutError, StopAsyncIteration):
            self._stats.reject("no_hello")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello")
        if not first.HasField("hello"):
            self._stats.reject("no_hello")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello")
        hello = first.hello
        host_id = hello.host.host_id
        if not limits.valid_host_id(host_id):
            self._stats.reject("bad_host_id")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hello.host.host_id is empty or has characters outside [A-Za-z0-9._:@-]")
        denial = self.identity_problem(host_id, context)
        if denial is not None:
            code, reason, message = denial
            self._stats.reject(reason)
            logger.warning("agent refused host_id=%s reason=%s peer=%s", host_id, reason, context.peer())
            await context.abort(code, message)
        if not self._host_cap.admit(host_id):
            self._stats.reject("too_many_hosts")
            self._new_hosts_refused.failed(f"the collector knows {self._host_cap.max_hosts} hosts, its --max-hosts",
                                           host_id=host_id, peer=context.peer())
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the collector knows {self._host_cap.max_hosts} hosts, its --max-hosts; "
                                "retire hosts (enoexec-collector forget) or raise --max-hosts")
        if self._writer.failure:
            # Nothing it sends could be stored: its agent backs off instead of reconnecting
            # in a loop. The writer says the outage once; each refusal is only counted.
            self._stats.reject("store_unavailable")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector's store is unavailable; retry later")

        self._stats.clamp(reported.clamp(hello))
        self._presence.hello(host_id, ingest.label(hello.host.platform), to_json(hello.host),
                             spool_events=hello.spool.events, dropped_total=hello.spool.dropped_total)
        self._resources.report(host_id, context, hello)
        self._inventory.report(host_id, hello.host.platform, context, hello)
        logger.info("agent connected host_id=%s platform=%s agent_version=%s peer=%s",
                    host_id, hello.host.platform, hello.agent_version, context.peer())
        bucket = self._buckets.setdefault(host_id, TokenBucket(self._rate, self._burst))
        try:
            yield pb.CollectorMessage(welcome=pb.Welcome(collector_version=__version__, max_batch_events=self._max_batch))
            async for msg in request_iterator:
                if msg.HasField("batch"):
                    await self._throttle(bucket, len(msg.batch.events))
                    yield pb.CollectorMessage(ack=await self._batch(msg.batch, host_id, context))
                elif msg.HasField("heartbeat"):
                    await self._throttle(bucket, 1)
                    self._stats.clamp(reported.clamp(msg.heartbeat))
                    spool = msg.heartbeat.spool
                    self._presence.heartbeat(host_id, msg.heartbeat, spool_events=spool.events,
                                             dropped_total=spool.dropped_total)
                    self._resources.report(host_id, context, msg.heartbeat)
                    self._inventory.report(host_id, hello.host.platform, context, msg.heartbeat)
        finally:
            self._resources.forget(host_id, context)
            self._inventory.forget(host_id, context)
            self._presence.bye(host_id)
            logger.info("agent disconnected host_id=%s", host_id)

    async def _throttle(self, bucket: TokenBucket, cost: int) -> None:
        """Backpressure: this agent's next reply comes later; other agents are not slowed."""
        wait = bucket.delay(max(1, cost))
        if wait > 0:
            self._stats.throttle(wait)
            await asyncio.sleep(min(wait, MAX_THROTTLE))

    async def _batch(self, batch: pb.EventBatch, host_id: str, context: grpc.aio.ServicerContext) -> pb.Ack:
        if len(batch.events) > self._max_batch:
            self._stats.reject("batch_too_large", len(batch.events))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"batch of {len(batch.events)} events; at most {self._max_batch}")
        good, bad = ingest.split(batch, host_id, self._clock())
        new = await self._writer.write(good) if good else set()  # StoreError: see Stream
        self._presence.seen(host_id)
        backfilled = sum(1 for r in good if r.backfilled and r.event_id in new)
        if backfilled:
            self._stats.backfill(host_id, backfilled)
        for rec in good:
            if rec.kube_namespace and rec.event_id in new and not rec.backfilled:
                self._stats.pod_exit(rec.kube_namespace, rec.cause)
        self._stats.add(received=len(new), duplicate=len(good) - len(new), rejected=Counter(r.reason for r in bad))
        for r in bad:
            logger.warning("event rejected host_id=%s event_id=%s reason=%s", host_id, r.event_id, r.reason)
        if new:
            logger.info("events stored host_id=%s new=%d duplicate=%d", host_id, len(new), len(good) - len(new))
        return pb.Ack(
            batch_id=batch.batch_id,
            stored_event_ids=[r.event_id for r in good],
            rejected=[pb.Rejection(event_id=r.event_id, reason=r.reason) for r in bad],
        )

    def identity_problem(self, host_id: str, context: grpc.aio.ServicerContext) -> tuple[grpc.StatusCode, str, str] | None:
        """Why this peer may not report as ``host_id`` (status, reason, message), or None."""
        names = auth.certificate_hosts(context.auth_context())
        if names is not None and names and host_id not in names:
            return grpc.StatusCode.PERMISSION_DENIED, "identity_mismatch", f"this certificate may only report as {names[0]!r}"
        if self._tokens is not None and not names:
            token = auth.bearer(context.invocation_metadata() or ())
            if token is None:
                return grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "send 'authorization: Bearer <token>' (agent --token-file)"
            bound = self._tokens.host_for(token)
            if bound is None:
                return grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "unknown token"
            if bound != host_id:
                return grpc.StatusCode.PERMISSION_DENIED, "identity_mismatch", f"this token may only report as {bound!r}"
        return None
