"""Group commit: one writer task and one transaction for what every stream brought
since the last commit.

Streams hand their checked events to :meth:`GroupWriter.write` and wait. The
writer takes everything that queued up (while the previous transaction ran,
more arrived: no artificial delay is needed), writes it in one transaction on
its own thread together with the hosts :class:`~collector.ingest.presence.Presence`
has changed, and only after the commit releases each stream with the ids that
were new, so acks never precede the commit. A failed transaction fails the
waiting streams (each answers UNAVAILABLE and its agent resends; nothing was
committed); when a group of several fails, each of its batches is tried again
alone, so one bad batch fails only its own stream. With no events, changed
hosts are written every ``host_flush_seconds``.

While the store fails, :attr:`GroupWriter.failure` holds its error: ``/readyz``
answers 503 and new streams are refused (their agents back off) until a commit
succeeds. Every ``host_flush_seconds`` the writer tries again with the events of
the last failed transaction (ids keep that exact), so it is the writer's own
result on real data, not a probe that fits in free pages, that says the store
works again. The outage is logged once, summarised, and its end logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from collector.errors import StoreError
from collector.ingest.presence import Presence
from collector.store.records import EventRecord, HostRow
from collector.store.store import Store
from enoexec.logsetup import Repeats

logger = logging.getLogger(__name__)


class GroupWriter:
    def __init__(
        self,
        store: Store,
        presence: Presence,
        *,
        host_flush_seconds: float = 5.0,
        max_events: int = 20_000,
    ) -> None:
        self._store = store
        self._presence = presence
        self._flush_every = host_flush_seconds
        self._max_events = max_events
        self._pending: deque[tuple[Sequence[EventRecord], asyncio.Future[set[str]]]] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._stopping = False
        self.commits = 0
        self.failure = ""  # the store's error while its last transaction failed; "" once one succeeds
        self._retry: list[EventRecord] = []  # the events of the last failed transaction, tried again
        self._outage = Repeats(logger, "store unavailable", every=300.0)

    async def write(self, records: Sequence[EventRecord]) -> set[str]:
        """Store ``records`` in the next group commit; the ids new to the database
        (each claimed by the first waiting stream that carried it), after commit."""
        if self._stopping:
            raise StoreError("the collector is shutting down")
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._pending.append((records, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        """Commit until :meth:`stop`; then commit what is queued and the hosts' last state."""
        try:
            while not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._flush_every)
                except TimeoutError:
                    pass
                self._wake.clear()
                await self.commit_once()
            while self._pending:
                await self.commit_once()
            await self.commit_once()
        finally:
            self._executor.shutdown(wait=True)

    async def commit_once(self) -> None:
        taken: list[tuple[Sequence[EventRecord], asyncio.Future[set[str]]]] = []
        n = 0
        while self._pending and (not taken or n + len(self._pending[0][0]) <= self._max_events):
            item = self._pending.popleft()
            taken.append(item)
            n += len(item[0])
        if self._pending:
            self._wake.set()  # more than one transaction's worth queued
        hosts = self._presence.take_dirty()
        if not taken and self.failure:
            await self._try_again(hosts)
            return
        if not taken and not hosts:
            return
        if not await self._commit(taken, hosts) and len(taken) > 1:
            # One bad batch must not fail every agent it was grouped with: each
            # batch again in its own transaction, so only a culprit fails twice.
            alone = [await self._commit([item], []) for item in taken]
            if any(alone):  # the store takes writes: what failed was a batch, not the store
                self._retry = []
                self._succeeded()

    async def _try_again(self, hosts: list[HostRow]) -> None:
        """While failing and idle: the last failed events (and the changed hosts) once more."""
        retry, self._retry = self._retry, []
        loop = asyncio.get_running_loop()
        try:
            if retry or hosts:
                await loop.run_in_executor(self._executor, self._store.write, retry, hosts)
            else:  # nothing of its own to try: a write that must reach the database all the same
                await loop.run_in_executor(self._executor, self._store.probe_write)
        except StoreError as e:
            self._presence.restore(hosts)
            if e.transient:
                self._retry = retry
                self._failed(e)
            else:
                logger.error("group commit refused error=%s", e)
                self._succeeded()  # the store answered; the stored-again events were at fault
            return
        except Exception:
            self._presence.restore(hosts)
            logger.exception("group commit failed")
            return
        self._succeeded()

    def _failed(self, e: StoreError) -> None:
        self.failure = str(e)
        self._outage.failed(str(e))

    def _succeeded(self) -> None:
        if self.failure:
            self.failure = ""
            self._outage.recovered("working again")

    async def _commit(self, taken: list[tuple[Sequence[EventRecord], asyncio.Future[set[str]]]],
                      hosts: list[HostRow]) -> bool:
        records = [r for batch, _ in taken for r in batch]
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(self._executor, self._store.write, records, hosts)
        except Exception as e:  # StoreError, or a bug: every waiting stream must hear of it
            self._presence.restore(hosts)
            if not isinstance(e, StoreError):
                logger.exception("group commit failed")
                e = StoreError(f"write failed: {e}", transient=False)
            elif e.transient:
                if len(taken) == 1 or not self._retry:
                    self._retry = records[: self._max_events]
                self._failed(e)
            else:  # what was asked, not the store: its streams fail, the others go on
                logger.error("group commit refused error=%s", e)
            if len(taken) == 1:
                for _, future in taken:
                    if not future.done():
                        future.set_exception(e)
            return False
        self.commits += 1
        self._succeeded()
        claimed: set[str] = set()
        for batch, future in taken:
            mine = {r.event_id for r in batch if r.event_id in new and r.event_id not in claimed}
            claimed |= mine
            if not future.done():
                future.set_result(mine)
        return True

    def stop(self) -> None:
        """Refuse new writes; :meth:`run` commits what is queued and returns."""
        self._stopping = True
        self._wake.set()
