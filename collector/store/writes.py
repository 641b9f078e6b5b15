"""The SQL of the ingest transaction: events, counters, aggregates and hosts.

Everything here runs inside one transaction the caller opened, as a handful of
executemany statements whatever the number of events: the events in one
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (the returned ids are exactly
the events new to the database, also when replicas race on PostgreSQL), each
counter table in one upsert. Rows go in a stable order so that replicas
writing overlapping batches take row locks in the same order (no deadlock).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, case
from sqlalchemy.dialects import postgresql, sqlite

from collector.store import aggregates
from collector.store.records import EventRecord, HostRow
from collector.store.schema import exit_counts, host_exit_counts, hosts, images, shared_facts, start_failure_counts
from enoexec.causes import EXEC_FORMAT_ERROR, START_FAILURE


@functools.lru_cache(maxsize=8)
def _statements(dialect: str, replica_id: str) -> dict[str, Any]:
    """The upserts of the ingest transaction, built once (building one costs more
    than running it on a few rows)."""
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    exits, host_exits, host = ins(exit_counts), ins(host_exit_counts), ins(hosts)
    starts = ins(start_failure_counts)
    ex, t = host.excluded, hosts.c
    return {
        "facts": ins(shared_facts).on_conflict_do_nothing(index_elements=[shared_facts.c.ref]),
        "exits": exits.on_conflict_do_update(index_elements=list(exit_counts.primary_key),
                                             set_={"count": exit_counts.c.count + exits.excluded.count}),
        "starts": starts.on_conflict_do_update(index_elements=list(start_failure_counts.primary_key),
                                               set_={"count": start_failure_counts.c.count + starts.excluded.count}),
        "host_exits": host_exits.on_conflict_do_update(
            index_elements=list(host_exit_counts.primary_key),
            set_={"count": host_exit_counts.c.count + host_exits.excluded.count}),
        "images": ins(images).on_conflict_do_nothing(index_elements=[images.c.image_ref]),
        "hosts": host.on_conflict_do_update(
            index_elements=[t.host_id],
            set_={
                "platform": ex.platform,
                "facts": ex.facts,
                "last_seen": case((ex.last_seen > t.last_seen, ex.last_seen), else_=t.last_seen),
                "connected_replica": case(
                    (ex.connected_replica.is_not(None), ex.connected_replica),
                    (t.connected_replica == replica_id, None),
                    else_=t.connected_replica,
                ),
                "spool_events": ex.spool_events,
                "dropped_total": ex.dropped_total,
            },
        ),
    }


_COLUMNS = ("event_id", "time", "host_id", "host_platform", "image_ref", "image_platform", "binary_platform",
            "cause", "hint_id", "payload", "replica_id", "body", "host_ref", "image_facts_ref", "backfilled",
            "failure")
_SQLITE_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_CHUNK = 500  # ids per IN (...) lookup, well under SQLite's variable limit


def _sqlite_time(t: datetime) -> str:
    """The text form UTCDateTime gives a timestamp on SQLite (naive UTC, microseconds)."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    return t.replace(tzinfo=None).isoformat(" ", "microseconds")


def store_events(conn: Connection, events_in: Sequence[EventRecord], replica_id: str) -> set[str]:
    """Insert the events not stored yet and count them; returns their ids."""
    unique: dict[str, EventRecord] = {}
    for e in events_in:
        unique.setdefault(e.event_id, e)
    if not unique:
        return set()
    facts = {e.host_ref: e.host_facts for e in unique.values()}
    facts.update((e.image_facts_ref, e.image_facts) for e in unique.values())
    conn.execute(
        _statements(conn.dialect.name, replica_id)["facts"],
        [{"ref": ref, "data": facts[ref]} for ref in sorted(facts)],
    )
    ordered = [unique[k] for k in sorted(unique)]
    if conn.dialect.name == "sqlite":
        new = _sqlite_insert(conn, ordered, replica_id)
    else:
        new = _postgres_insert(conn, ordered, replica_id)
    fresh = [e for e in ordered if e.event_id in new]
    if fresh:
        count(conn, fresh, replica_id)
        aggregates.add(conn, fresh)
    return new


_PG_TYPES = ("text", "timestamptz", *["text"] * 9, "bytea", "text", "text", "boolean", "text")
_PG_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _PG_TYPES)}) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def _postgres_insert(conn: Connection, ordered: Sequence[EventRecord], replica_id: str) -> set[str]:
    """PostgreSQL: one statement whatever the number of events (an array per
    column, unnest'ed); ON CONFLICT DO NOTHING RETURNING names exactly the rows
    this transaction inserted, also when another replica inserts the same ids at once."""
    n = len(ordered)
    columns: list[list[Any]] = [
        [e.event_id for e in ordered], [e.time for e in ordered], [e.host_id for e in ordered],
        [e.host_platform for e in ordered], [e.image_ref for e in ordered], [e.image_platform for e in ordered],
        [e.binary_platform for e in ordered], [e.cause for e in ordered], [e.hint_id for e in ordered],
        [""] * n, [replica_id] * n, [e.body for e in ordered], [e.host_ref for e in ordered],
        [e.image_facts_ref for e in ordered], [e.backfilled for e in ordered], [e.failure for e in ordered],
    ]
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(_PG_INSERT, columns)
        return {r[0] for r in cursor.fetchall()}


def _sqlite_insert(conn: Connection, ordered: Sequence[EventRecord], replica_id: str) -> set[str]:
    """SQLite: the transaction began IMMEDIATE and holds the database's write lock,
    so no one can insert between looking the ids up and inserting the rest; plain
    sqlite3 executemany, without SQLAlchemy's per-row work."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        ids = [e.event_id for e in ordered]
        existing: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            cursor.execute(f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})", chunk)
            existing.update(r[0] for r in cursor.fetchall())
        rows = [
            (e.event_id, _sqlite_time(e.time), e.host_id, e.host_platform, e.image_ref, e.image_platform,
             e.binary_platform, e.cause, e.hint_id, "", replica_id, e.body, e.host_ref, e.image_facts_ref,
             e.backfilled, e.failure)
            for e in ordered if e.event_id not in existing
        ]
        cursor.executemany(_SQLITE_INSERT, rows)
    finally:
        cursor.close()
    return {r[0] for r in rows}


def count(conn: Connection, fresh: Sequence[EventRecord], replica_id: str) -> None:
    """Add fresh events to this replica's counters and note first-seen images.
    Back-filled exits (a fresh agent's report of the past) are stored, not counted."""
    stmts = _statements(conn.dialect.name, replica_id)
    fresh = [e for e in fresh if not e.backfilled]
    if not fresh:
        return
    # Emulation warnings (failure "emulated") are stored and listed, never counted as exits.
    enoexec = [e for e in fresh if e.failure == EXEC_FORMAT_ERROR]
    for stmt, chosen in (("exits", enoexec), ("starts", [e for e in fresh if e.failure == START_FAILURE])):
        counted = Counter((e.cause, e.host_platform, e.image_platform, e.binary_platform, e.image_ref) for e in chosen)
        if counted:
            conn.execute(stmts[stmt], [
                {"replica_id": replica_id, "cause": c, "host_platform": h, "image_platform": i, "binary_platform": b,
                 "image": img, "count": n}
                for (c, h, i, b, img), n in sorted(counted.items())
            ])
    per_host = Counter((e.host_id, e.host_platform) for e in enoexec)
    if per_host:
        conn.execute(stmts["host_exits"], [
            {"replica_id": replica_id, "host": h, "host_platform": p, "count": n}
            for (h, p), n in sorted(per_host.items())
        ])
    first_seen: dict[str, datetime] = {}
    for e in fresh:
        first_seen[e.image_ref] = min(first_seen.get(e.image_ref, e.time), e.time)
    conn.execute(stmts["images"], [{"image_ref": i, "first_seen": t} for i, t in sorted(first_seen.items())])


def upsert_hosts(conn: Connection, rows: Sequence[HostRow], replica_id: str) -> None:
    """Write hosts as this replica sees them. ``connected`` makes this replica the
    holder; not connected releases the host only if this replica held it."""
    if not rows:
        return
    conn.execute(_statements(conn.dialect.name, replica_id)["hosts"], [
        {"host_id": h.host_id, "platform": h.platform, "facts": h.facts, "first_seen": h.first_seen,
         "last_seen": h.last_seen, "connected_replica": replica_id if h.connected else None,
         "spool_events": h.spool_events, "dropped_total": h.dropped_total}
        for h in sorted(rows, key=lambda h: h.host_id)
    ])
