"""This replica's hold on its ``--replica-id``, and who takes a retired replica's counts.

- **Unique ids.** At start the replica takes the lease on its id. A lease that is
  held (not released at a clean stop) is watched for ``ttl`` seconds: if its beats
  move, a live replica holds the id and this one refuses to start (exit 2, one
  line); if they do not, its holder is gone (killed) and the lease is taken over.
  While running, the lease is renewed every ``renew_every`` seconds.
- **Counts stay in sum().** A replica starting with an id never seen before (a
  recreated container's new hostname) is a successor: it folds into its own rows,
  before it serves, the counters of every id whose lease was released or that has
  none; and those of ids held when it started whose beats stand still for ``ttl``
  seconds (a killed predecessor). Any replica folds an id whose lease has not
  moved for ``retire_after`` seconds (a replica scaled away). A replica that comes
  back with its own id keeps its rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from collector.errors import ConfigError, StoreError
from collector.store import replicas
from collector.store.replicas import Lease
from collector.store.store import Store

logger = logging.getLogger(__name__)

RENEW_EVERY = 2.0
TTL = 10.0
RETIRE_AFTER = 900.0
SUCCESSOR_WINDOW = 120.0  # how long a new replica may take over ids held by silent holders it met at start


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReplicaLease:
    def __init__(
        self,
        store: Store,
        replica_id: str,
        *,
        ttl: float = TTL,
        renew_every: float = RENEW_EVERY,
        retire_after: float = RETIRE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self.replica_id = replica_id
        self.instance = uuid.uuid4().hex
        self._ttl = ttl
        self._renew_every = renew_every
        self._retire_after = retire_after
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self._started = clock()
        self._candidates: set[str] = set()  # held by others when this successor started
        self._watch: dict[str, tuple[Lease | None, float]] = {}
        self._lost = False

    def _tx(self, work: Callable[..., object]) -> object:
        return self._store.in_transaction(work)

    def claim(self) -> None:
        """Take the lease on our id (blocking, at most ``ttl`` seconds); ConfigError when a live replica holds it."""
        seen: Lease | None = None
        watching_since = 0.0
        first = True
        successor = False
        while True:
            held: dict[str, Lease] = self._tx(replicas.leases)  # type: ignore[assignment]
            mine = held.get(self.replica_id)
            if first:
                counted: set[str] = self._tx(replicas.counted_ids)  # type: ignore[assignment]
                successor = mine is None and self.replica_id not in counted
                first = False
            if mine is None or mine.released:
                if self._tx(lambda c, m=mine: replicas.take(c, self.replica_id, self.instance, self._now(), m)):
                    break
                continue
            if seen is None:
                seen, watching_since = mine, self._clock()
                logger.info("replica id held by another process; watching whether it is alive replica_id=%s seconds=%s",
                            self.replica_id, self._ttl)
            elif mine != seen:
                raise ConfigError(
                    f"--replica-id {self.replica_id}: a live collector replica on this database already holds this id; "
                    "give each replica its own --replica-id (the default, the hostname, is the same for two "
                    "collectors on one host or containers sharing a hostname)")
            elif self._clock() - watching_since >= self._ttl:
                if self._tx(lambda c, m=mine: replicas.take(c, self.replica_id, self.instance, self._now(), m)):
                    logger.warning("took over the replica id of a collector that stopped renewing it replica_id=%s",
                                   self.replica_id)
                    break
                seen = None
                continue
            self._sleep(min(0.5, self._ttl / 4))
        self._started = self._clock()
        if successor:
            self._take_over_at_start()

    def _take_over_at_start(self) -> None:
        """A new id: fold what no live replica holds; watch the ids others held."""
        held: dict[str, Lease] = self._tx(replicas.leases)  # type: ignore[assignment]
        counted: set[str] = self._tx(replicas.counted_ids)  # type: ignore[assignment]
        for other in sorted((set(held) | counted) - {self.replica_id}):
            lease = held.get(other)
            if lease is None or lease.released:
                self._fold(other, lease)
            else:
                self._candidates.add(other)
                self._watch[other] = (lease, self._clock())

    def _fold(self, dead: str, lease: Lease | None) -> None:
        moved = self._tx(lambda c: replicas.fold(c, dead, self.replica_id, lease))
        self._watch.pop(dead, None)
        logger.info("counters of a retired replica folded into this one retired_replica_id=%s replica_id=%s exits=%s",
                    dead, self.replica_id, moved)

    def tick(self) -> None:
        """Renew our lease; fold ids whose holders are gone. Blocking (a worker thread)."""
        if not self._lost and not self._tx(lambda c: replicas.renew(c, self.replica_id, self.instance, self._now())):
            # Gone: retired while this replica could not renew it (its counts were folded
            # away; it counts on from 0), so take it again; or held by another process.
            if self._tx(lambda c: replicas.take(c, self.replica_id, self.instance, self._now(), None)):
                logger.warning("replica lease was retired while it could not be renewed; taken again replica_id=%s",
                               self.replica_id)
            else:
                self._lost = True
                logger.error("another collector took over --replica-id %s (this one did not renew it in time); "
                             "give each replica its own --replica-id", self.replica_id)
        now = self._clock()
        held: dict[str, Lease] = self._tx(replicas.leases)  # type: ignore[assignment]
        counted: set[str] = self._tx(replicas.counted_ids)  # type: ignore[assignment]
        for other in (set(held) | counted) - {self.replica_id}:
            state = held.get(other)
            before = self._watch.get(other)
            if before is None or before[0] != state:
                if before is not None:
                    self._candidates.discard(other)  # its holder moved: alive, not ours to take
                self._watch[other] = (state, now)
                continue
            successor_may = other in self._candidates and now - self._started < SUCCESSOR_WINDOW
            if now - before[1] >= (self._ttl if successor_may else self._retire_after):
                self._fold(other, state)

    async def run(self) -> None:
        """Renew and watch until cancelled."""
        while True:
            await asyncio.sleep(self._renew_every)
            try:
                await asyncio.to_thread(self.tick)
            except StoreError as e:  # the writer and /readyz say the outage; the lease waits for it
                logger.debug("replica lease not renewed error=%s", e)

    def release(self) -> None:
        """At a clean stop: the id is free at once for whoever starts with it."""
        self._tx(lambda c: replicas.release(c, self.replica_id, self.instance, self._now()))
