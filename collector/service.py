"""The gRPC servicer: a thin adapter between agents' streams and the store."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone

import grpc

from collector import auth, ingest
from collector.errors import StoreError
from collector.ratelimit import TokenBucket
from collector.stats import Stats
from collector.store import Store
from enoexec import __version__, limits
from enoexec.eventjson import to_json
from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

HELLO_TIMEOUT = 30.0
MAX_THROTTLE = 30.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CollectorService(pb_grpc.CollectorServicer):
    def __init__(
        self,
        store: Store,
        stats: Stats,
        *,
        max_batch_events: int = 500,
        tokens: auth.Tokens | None = None,
        agent_rate: float = 50.0,
        agent_burst: int = 2000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._stats = stats
        self._max_batch = max_batch_events
        self._clock = clock
        self._tokens = tokens
        self._rate = agent_rate
        self._burst = agent_burst
        self._buckets: dict[str, TokenBucket] = {}

    async def Stream(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CollectorMessage]:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT)
        except (StopAsyncIteration, asyncio.TimeoutError):
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

        facts = to_json(hello.host)
        try:
            await asyncio.to_thread(
                self._store.upsert_host, host_id, ingest.label(hello.host.platform), facts,
                seen=self._clock(), connected=True,
                spool_events=hello.spool.events, dropped_total=hello.spool.dropped_total,
            )
        except StoreError as e:
            logger.error("store unavailable error=%s", e)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector's store is unavailable; retry later")
        self._stats.connect(+1)
        logger.info("agent connected host_id=%s platform=%s agent_version=%s peer=%s",
                    host_id, hello.host.platform, hello.agent_version, context.peer())
        try:
            yield pb.CollectorMessage(welcome=pb.Welcome(collector_version=__version__, max_batch_events=self._max_batch))
            async for msg in request_iterator:
                if msg.HasField("batch"):
                    yield pb.CollectorMessage(ack=await self._batch(msg.batch, host_id, context))
                elif msg.HasField("heartbeat"):
                    await asyncio.to_thread(
                        self._store.touch_host, host_id, seen=self._clock(),
                        spool_events=msg.heartbeat.spool.events, dropped_total=msg.heartbeat.spool.dropped_total,
                    )
        finally:
            self._stats.connect(-1)
            logger.info("agent disconnected host_id=%s", host_id)
            try:
                await asyncio.to_thread(self._store.upsert_host, host_id, ingest.label(hello.host.platform), facts,
                                        seen=self._clock(), connected=False)
            except StoreError as e:
                logger.warning("could not record disconnect host_id=%s error=%s", host_id, e)

    async def _batch(self, batch: pb.EventBatch, host_id: str, context: grpc.aio.ServicerContext) -> pb.Ack:
        if len(batch.events) > self._max_batch:
            self._stats.reject("batch_too_large", len(batch.events))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"batch of {len(batch.events)} events; at most {self._max_batch}")
        bucket = self._buckets.setdefault(host_id, TokenBucket(self._rate, self._burst))
        wait = bucket.delay(len(batch.events))
        if wait > 0:
            # Backpressure: this agent's ack comes later; other agents are not slowed.
            self._stats.throttle(wait)
            await asyncio.sleep(min(wait, MAX_THROTTLE))
        good, bad = ingest.split(batch, host_id, self._clock())
        try:
            fresh = await asyncio.to_thread(self._store.insert_events, good) if good else []
        except StoreError as e:
            logger.error("store unavailable error=%s", e)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector's store is unavailable; retry later")
        new = sum(fresh)
        backfilled = sum(1 for r, is_new in zip(good, fresh) if is_new and r.payload.get("backfilled"))
        if backfilled:
            self._stats.backfill(host_id, backfilled)
        self._stats.add(received=new, duplicate=len(fresh) - new, rejected=Counter(r.reason for r in bad))
        for r in bad:
            logger.warning("event rejected host_id=%s event_id=%s reason=%s", host_id, r.event_id, r.reason)
        if new:
            logger.info("events stored host_id=%s new=%d duplicate=%d", host_id, new, len(fresh) - new)
        await asyncio.to_thread(self._store.touch_host, host_id, seen=self._clock())
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
