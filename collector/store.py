"""The collector's durable store: events, per-replica counters and the host inventory.

SQLite (a file path, the default) or PostgreSQL (a ``postgresql://`` URL), both
through SQLAlchemy Core with a synchronous engine; the async server calls in via
``asyncio.to_thread``. Every database error leaves this module as a
:class:`~collector.errors.StoreError`, translated in :meth:`Store._translate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from collector import hint_queries, migrations, recent_exits, records
from collector.errors import StoreError
from collector.schema import (
    database_url,
    events,
    exit_counts,
    host_exit_counts,
    hosts,
    images,
    make_engine,
    write_probe,
)

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
            raise StoreError(
                f"database {self._where} failed: {first_line}; check that it is reachable and writable"
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
        if not events_in:
            return []
        # A stable order avoids deadlocks between replicas inserting overlapping batches.
        order = sorted(range(len(events_in)), key=lambda i: events_in[i].event_id)
        is_new = [False] * len(events_in)
        fresh: list[records.EventRecord] = []
        with self._write() as conn:
            for i in order:
                ev = events_in[i]
                row = {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}
                stmt = (
                    self._insert(events)
                    .values(**row, replica_id=self.replica_id)
                    .on_conflict_do_nothing(index_elements=[events.c.event_id])
                    .returning(events.c.event_id)
                )
                if conn.execute(stmt).first() is not None:
                    is_new[i] = True
                    fresh.append(ev)
            self._count(conn, fresh)
        return is_new

    def _count(self, conn: Connection, fresh: Sequence[records.EventRecord]) -> None:
        # Back-filled exits (a fresh agent's report of the past) are stored, not counted.
        fresh = [e for e in fresh if not e.payload.get("backfilled")]
        exits = Counter(
            (e.cause, e.host_platform, e.image_platform, e.binary_platform, e.image_ref) for e in fresh
        )
        for (cause, host_pf, image_pf, binary_pf, image), n in sorted(exits.items()):
            stmt = self._insert(exit_counts).values(
                replica_id=self.replica_id,
                cause=cause,
                host_platform=host_pf,
                image_platform=image_pf,
                binary_platform=binary_pf,
                image=image,
                count=n,
            )
            keys = list(exit_counts.primary_key)
            conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_={"count": exit_counts.c.count + n}))
        per_host = Counter((e.host_id, e.host_platform) for e in fresh)
        for (host, host_pf), n in sorted(per_host.items()):
            stmt = self._insert(host_exit_counts).values(
                replica_id=self.replica_id, host=host, host_platform=host_pf, count=n
            )
            keys = list(host_exit_counts.primary_key)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=keys, set_={"count": host_exit_counts.c.count + n})
            )
        first_seen: dict[str, datetime] = {}
        for e in fresh:
            first_seen[e.image_ref] = min(first_seen.get(e.image_ref, e.time), e.time)
        for image, seen in sorted(first_seen.items()):
            stmt = self._insert(images).values(image_ref=image, first_seen=seen)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[images.c.image_ref]))

    def exit_counts(self, replica_id: str | None = None) -> list[records.ExitCount]:
        """This replica's (or the named one's) exit counters."""
        c = exit_counts.c
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
    ) -> list[dict[str, Any]]:
        """Event payloads, newest first (by time, then event_id)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = select(events.c.payload)
        if host is not None:
            query = query.where(events.c.host_id == host)
        if image is not None:
            query = query.where(events.c.image_ref == image)
        if cause is not None:
            query = query.where(events.c.cause == cause)
        if since is not None:
            query = query.where(events.c.time >= since)
        query = query.order_by(events.c.time.desc(), events.c.event_id.desc()).limit(limit)
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def hint_groups(self, *, example_hosts: int = 3, samples: bool = True) -> list[records.HintGroup]:
        """One group per (image, cause, host platform), most recently hit first.

        ``samples=False`` leaves ``sample`` empty and skips loading payloads."""
        totals, latest, examples = hint_queries.queries(example_hosts, samples=samples)
        with self._read() as conn:
            total_rows = conn.execute(totals).all()
            latest_rows = conn.execute(latest).all()
            example_rows = conn.execute(examples).all() if example_hosts > 0 else []
        return hint_queries.assemble(total_rows, latest_rows, example_rows)

    def recent_exits(self, since: datetime) -> list[recent_exits.RecentExit]:
        """Latest exit per (image, host platform, cause, host) since ``since``, for alerting."""
        with self._read() as conn:
            return recent_exits.read(conn, since)

    def prune(self, older_than: datetime) -> int:
        """Delete events older than ``older_than``; counters stay (they only ever grow)."""
        with self._write() as conn:
            deleted = conn.execute(events.delete().where(events.c.time < older_than)).rowcount
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

    def hosts(self) -> list[records.HostRecord]:
        """Every known host; connected when some replica holds it and it was seen lately."""
        fresh_since = self._clock() - self._stale_after
        with self._read() as conn:
            rows = conn.execute(select(hosts).order_by(hosts.c.host_id)).mappings().all()
        return [
            records.HostRecord(
                host_id=r["host_id"],
                platform=r["platform"],
                facts=r["facts"],
                first_seen=r["first_seen"],
                last_seen=r["last_seen"],
                connected=r["connected_replica"] is not None and r["last_seen"] >= fresh_since,
                spool_events=r["spool_events"],
                dropped_total=r["dropped_total"],
            )
            for r in rows
        ]

    def forget_host(self, host_id: str) -> str:
        """Retire a host: "forgotten", "unknown", or "connected" (a live stream holds it: kept).

        Its events and exit counters stay; an agent that comes back registers again."""
        fresh_since = self._clock() - self._stale_after
        live = (hosts.c.connected_replica.is_not(None)) & (hosts.c.last_seen >= fresh_since)
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
