"""The collector's durable store: events, per-replica counters and the host inventory.

SQLite (a file path, the default) or PostgreSQL (a ``postgresql://`` URL), both
through SQLAlchemy Core with a synchronous engine; the async server calls in via
``asyncio.to_thread``. Every database error leaves this module as a
:class:`~collector.errors.StoreError`, translated in :meth:`Store._translate`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, InternalError, OperationalError, SQLAlchemyError, StatementError

from collector.errors import StoreError
from collector.store import aggregates, eventcodec, hint_queries, migrations, recent_exits, records, writes
from collector.store.schema import (
    database_url,
    events,
    exit_counts,
    host_exit_counts,
    hosts,
    images,
    make_engine,
    shared_facts,
    start_failure_counts,
    write_probe,
)
from enoexec.causes import EXEC_FORMAT_ERROR

logger = logging.getLogger(__name__)

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Events, counters and hosts in one database, shared by every collector replica."""

    def __init__(
        self,
        url: str,
        *,
        replica_id: str = "default",
        clock: Callable[[], datetime] = utcnow,
        stale_after: timedelta = timedelta(seconds=90),
        busy_timeout_ms: int = 5000,
        connect_timeout_s: int = 10,
    ) -> None:
        self.replica_id = replica_id
        self._clock = clock
        self._stale_after = stale_after
        engine_url = database_url(url)
        self._where = engine_url.render_as_string(hide_password=True)
        self._engine = make_engine(
            engine_url, busy_timeout_ms=busy_timeout_ms, connect_timeout_s=connect_timeout_s
        )
        self._insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        try:
            version = self._migrate()
        except BaseException:
            self._engine.dispose()
            raise
        logger.info("store %s open at schema version %d (replica %s)", self._where, version, replica_id)

    def _migrate(self, attempts: int = 20) -> int:
        """Apply migrations. SQLite may refuse the switch to WAL with "database is
        locked" without waiting while another process opens the same new file;
        that is retried briefly."""
        for attempt in range(attempts):
            try:
                with self._write() as conn:
                    return migrations.migrate(conn, now=self._clock())
            except StoreError as e:
                if self._engine.dialect.name != "sqlite" or "locked" not in str(e) or attempt == attempts - 1:
                    raise
                self._engine.dispose()
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @classmethod
    def open(cls, url: str, **kw: Any) -> Store:
        return cls(url, **kw)

    # -- plumbing -----------------------------------------------------------

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as e:
            cause = getattr(e, "orig", None) or e
            if isinstance(e, StatementError) and not isinstance(e, DBAPIError):
                if isinstance(cause, (TypeError, ValueError)):  # a bad value (naive datetime), not the database
                    raise cause from e
            first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            transient = isinstance(e, (OperationalError, InterfaceError, InternalError)) or not isinstance(e, StatementError)
            raise StoreError(
                f"database {self._where} failed: {first_line}; check that it is reachable and writable",
                transient=transient,
            ) from e

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._translate(), self._engine.connect() as conn:
            conn = conn.execution_options(enoexec_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._translate(), self._engine.connect() as conn, conn.begin():
            yield conn

    # -- events and counters ------------------------------------------------

    def insert_events(self, events_in: Sequence[records.EventRecord]) -> list[bool]:
        """Store the events not seen before; True where new. Returns after commit."""
        new = self.write(events_in)
        first: set[str] = set()
        out = []
        for e in events_in:
            out.append(e.event_id in new and e.event_id not in first)
            first.add(e.event_id)
        return out

    def write(self, events_in: Sequence[records.EventRecord], hosts_in: Sequence[records.HostRow] = ()) -> set[str]:
        """One transaction: the new events with their counters and aggregates, and
        the hosts' rows. Returns the ids of the events new to the database, after commit."""
        with self._write() as conn:
            new = writes.store_events(conn, events_in, self.replica_id)
            writes.upsert_hosts(conn, hosts_in, self.replica_id)
        return new

    def exit_counts(self, replica_id: str | None = None) -> list[records.ExitCount]:
        """This replica's (or the named one's) exit counters."""
        return self._counts(exit_counts, replica_id)

    def start_failure_counts(self, replica_id: str | None = None) -> list[records.ExitCount]:
        """This replica's (or the named one's) start failure (look-alike) counters."""
        return self._counts(start_failure_counts, replica_id)

    def _counts(self, table: Table, replica_id: str | None) -> list[records.ExitCount]:
        c = table.c
        query = (
            select(c.cause, c.host_platform, c.image_platform, c.binary_platform, c.image, c.count)
            .where(c.replica_id == (replica_id or self.replica_id))
            .order_by(c.cause, c.host_platform, c.image_platform, c.binary_platform, c.image)
        )
        with self._read() as conn:
            return [records.ExitCount(*row) for row in conn.execute(query)]

    def host_exit_counts(self, replica_id: str | None = None) -> list[records.HostExitCount]:
        c = host_exit_counts.c
        query = (
            select(c.host, c.host_platform, c.count)
            .where(c.replica_id == (replica_id or self.replica_id))
            .order_by(c.host, c.host_platform)
        )
        with self._read() as conn:
            return [records.HostExitCount(*row) for row in conn.execute(query)]

    def image_first_seen(self) -> list[tuple[str, datetime]]:
        """Every image ref ever stored, oldest first (pruning does not forget them)."""
        query = select(images.c.image_ref, images.c.first_seen).order_by(
            images.c.first_seen, images.c.image_ref
        )
        with self._read() as conn:
            return [(ref, seen) for ref, seen in conn.execute(query)]

    def events(
        self,
        *,
        limit: int = 100,
        host: str | None = None,
        image: str | None = None,
        cause: str | None = None,
        since: datetime | None = None,
        failure: str | None = None,
    ) -> list[dict[str, Any]]:
        """Event payloads, newest first (by time, then event_id)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        host_doc, image_doc = shared_facts.alias("host"), shared_facts.alias("image")
        query = (
            select(events.c.body, host_doc.c.data, image_doc.c.data, events.c.payload)
            .select_from(events.outerjoin(host_doc, host_doc.c.ref == events.c.host_ref)
                         .outerjoin(image_doc, image_doc.c.ref == events.c.image_facts_ref))
        )
        if host is not None:
            query = query.where(events.c.host_id == host)
        if image is not None:
            query = query.where(events.c.image_ref == image)
        if cause is not None:
            query = query.where(events.c.cause == cause)
        if failure == EXEC_FORMAT_ERROR:  # also those stored before the failure kind existed
            query = query.where(events.c.failure.is_(None) | (events.c.failure == failure))
        elif failure is not None:
            query = query.where(events.c.failure == failure)
        if since is not None:
            query = query.where(events.c.time >= since)
        query = query.order_by(events.c.time.desc(), events.c.event_id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [eventcodec.payload(body, host, image, legacy) for body, host, image, legacy in rows]

    def hint_groups(self, *, example_hosts: int = 3, samples: bool = True) -> list[records.HintGroup]:
        """One group per (image, cause, host platform), most recently hit first.

        Read from aggregates kept at ingest; ``samples=False`` leaves ``sample`` empty."""
        with self._read() as conn:
            return hint_queries.read(conn, example_hosts, samples=samples)

    def recent_exits(self, since: datetime, *, failure: str = EXEC_FORMAT_ERROR) -> list[recent_exits.RecentExit]:
        """Latest event per (image, host platform, cause, host) since ``since`` of one
        failure kind, for alerting (exec format errors unless said otherwise)."""
        with self._read() as conn:
            return recent_exits.read(conn, since, failure=failure)

    def prune(self, older_than: datetime) -> int:
        """Delete events older than ``older_than``; counters stay (they only ever grow),
        hint groups are recomputed for what remains."""
        with self._write() as conn:
            deleted = conn.execute(events.delete().where(events.c.time < older_than)).rowcount
            if deleted:
                aggregates.prune(conn, older_than)
        logger.info("pruned %d events older than %s", deleted, older_than.isoformat())
        return deleted

    # -- hosts ----------------------------------------------------------------

    def upsert_host(
        self,
        host_id: str,
        platform: str,
        facts: dict[str, Any],
        *,
        seen: datetime,
        connected: bool | None = None,
        spool_events: int | None = None,
        dropped_total: int | None = None,
    ) -> None:
        """Record a host's facts; ``connected=True`` makes this replica its holder."""
        stmt = self._insert(hosts).values(
            host_id=host_id,
            platform=platform,
            facts=facts,
            first_seen=seen,
            last_seen=seen,
            connected_replica=self.replica_id if connected else None,
            spool_events=spool_events or 0,
            dropped_total=dropped_total or 0,
        )
        changes: dict[str, Any] = {"platform": platform, "facts": stmt.excluded.facts, "last_seen": seen}
        if connected is True:
            changes["connected_replica"] = self.replica_id
        elif connected is False:
            held_here = hosts.c.connected_replica == self.replica_id
            changes["connected_replica"] = case((held_here, None), else_=hosts.c.connected_replica)
        if spool_events is not None:
            changes["spool_events"] = spool_events
        if dropped_total is not None:
            changes["dropped_total"] = dropped_total
        with self._write() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=[hosts.c.host_id], set_=changes))

    def touch_host(
        self,
        host_id: str,
        *,
        seen: datetime,
        spool_events: int | None = None,
        dropped_total: int | None = None,
    ) -> None:
        """Note that a known host is alive; unknown hosts are ignored."""
        values: dict[str, Any] = {"last_seen": seen}
        if spool_events is not None:
            values["spool_events"] = spool_events
        if dropped_total is not None:
            values["dropped_total"] = dropped_total
        with self._write() as conn:
            conn.execute(update(hosts).where(hosts.c.host_id == host_id).values(**values))

    def disconnect_all(self) -> None:
        """Release every host this replica holds (call at start and at shutdown)."""
        with self._write() as conn:
            conn.execute(
                update(hosts).where(hosts.c.connected_replica == self.replica_id).values(connected_replica=None)
            )

    def write_hosts(self, rows: Sequence[records.HostRow]) -> None:
        with self._write() as conn:
            writes.upsert_hosts(conn, rows, self.replica_id)

    def hosts(self, *, limit: int | None = None, after: str = "", facts: bool = True) -> list[records.HostRecord]:
        """Known hosts by host id (those after ``after``, at most ``limit``); connected
        when some replica holds it and it was seen lately. ``facts=False`` skips the facts."""
        fresh_since = self._clock() - self._stale_after
        c = hosts.c
        cols = [c.host_id, c.platform, c.first_seen, c.last_seen, c.connected_replica, c.spool_events, c.dropped_total]
        query = select(*cols, *([c.facts] if facts else [])).order_by(c.host_id)
        if after:
            query = query.where(c.host_id > after)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            records.HostRecord(
                host_id=r[0],
                platform=r[1],
                facts=r[7] if facts else {},
                first_seen=r[2],
                last_seen=r[3],
                connected=r[4] is not None and r[3] >= fresh_since,
                spool_events=r[5],
                dropped_total=r[6],
            )
            for r in rows
        ]

    def host_ids(self) -> list[str]:
        """Every known host id."""
        with self._read() as conn:
            return list(conn.execute(select(hosts.c.host_id)).scalars())

    def forget_host(self, host_id: str, *, released_here: bool = False) -> str:
        """Retire a host: "forgotten", "unknown", or "connected" (a live stream holds it: kept).

        ``released_here``: this replica knows its own streams of the host ended (the
        row may not say so yet), so only another replica's hold keeps it.
        Its events and exit counters stay; an agent that comes back registers again."""
        fresh_since = self._clock() - self._stale_after
        holder = hosts.c.connected_replica
        held = (holder.is_not(None) & (holder != self.replica_id)) if released_here else holder.is_not(None)
        live = held & (hosts.c.last_seen >= fresh_since)
        with self._write() as conn:
            deleted = conn.execute(hosts.delete().where(hosts.c.host_id == host_id, ~live)).rowcount
            if deleted:
                return "forgotten"
            exists = conn.execute(select(hosts.c.host_id).where(hosts.c.host_id == host_id)).first()
        return "connected" if exists else "unknown"

    def expire_hosts(self, silent_before: datetime) -> list[str]:
        """Forget every host last heard from before ``silent_before``; returns their ids."""
        with self._write() as conn:
            gone = conn.execute(
                hosts.delete().where(hosts.c.last_seen < silent_before).returning(hosts.c.host_id)
            ).scalars().all()
        return sorted(gone)

    # -- lifecycle ------------------------------------------------------------

    def in_transaction(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in one write transaction; database errors as StoreError."""
        with self._write() as conn:
            return work(conn)

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        with self._read() as conn:
            conn.execute(text("SELECT 1"))

    def probe_write(self) -> None:
        """Raise StoreError unless the database commits a write now (a full disk or
        a read-only database fails here, where ``ping`` would still answer)."""
        with self._write() as conn:
            write_probe.create(conn, checkfirst=True)
            stmt = self._insert(write_probe).values(replica_id=self.replica_id, checked_at=self._clock(), probes=1)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[write_probe.c.replica_id],
                set_={"checked_at": stmt.excluded.checked_at, "probes": write_probe.c.probes + 1},
            ))

    def close(self) -> None:
        self._engine.dispose()
