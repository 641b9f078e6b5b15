"""Bring a database up to the current schema, once, even with replicas racing.

``schema_version`` holds one row per applied step. :func:`migrate` runs in a
single transaction that first takes a lock (``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so when two replicas start at once
the second waits, then finds nothing left to do.

Adding a step: append to :data:`STEPS` with the next version number, and change
:mod:`collector.store.schema` to match. Step 1 creates the tables as ``schema.py``
describes them *now*, so a later step must check before it alters (a fresh
database already has the change): use ``sqlalchemy.inspect(conn)``. A database
made by an older collector (schema 1) is upgraded in place by step 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, inspect, select, text

from collector.store import aggregates, schema

logger = logging.getLogger(__name__)

# Any constant shared by every replica; "enoexec" in ASCII.
ADVISORY_LOCK_KEY = 0x656E6F65786563


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_baseline(conn: Connection) -> None:
    schema.metadata.create_all(conn, checkfirst=True)


def _compact_events_and_hint_aggregates(conn: Connection) -> None:
    """Schema 2: events keep their host and image facts by reference (``body``,
    ``host_ref``, ``image_facts_ref``, ``shared_facts``), and hint groups are
    aggregate tables kept at ingest, filled here once from the events already
    stored. Old events stay readable as they are."""
    have = {c["name"] for c in inspect(conn).get_columns("events")}
    columns = schema.events.c
    for column in (columns.body, columns.host_ref, columns.image_facts_ref, columns.backfilled):
        if column.name not in have:
            ddl = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE events ADD COLUMN {column.name} {ddl}"))
    conn.execute(text("DROP INDEX IF EXISTS ix_events_cause"))
    for table in (schema.shared_facts, schema.hint_groups, schema.hint_group_hosts):
        table.create(conn, checkfirst=True)
    if conn.execute(select(func.count()).select_from(schema.hint_groups)).scalar():
        return
    aggregates.rebuild(conn)


def _start_failures(conn: Connection) -> None:
    """Schema 3: events say how the container died (``failure``); look-alikes of exec
    format error are counted in their own table."""
    if "failure" not in {c["name"] for c in inspect(conn).get_columns("events")}:
        conn.execute(text("ALTER TABLE events ADD COLUMN failure VARCHAR"))
    schema.start_failure_counts.create(conn, checkfirst=True)


def _replica_leases(conn: Connection) -> None:
    """Schema 4: replicas hold leases on their ids (collector.store.replicas)."""
    schema.replicas.create(conn, checkfirst=True)


STEPS: tuple[Step, ...] = (
    Step(1, "events, counters, images and hosts", _create_baseline),
    Step(2, "events keep host facts by reference; hint group aggregates", _compact_events_and_hint_aggregates),
    Step(3, "failure kind on events; start failure counters", _start_failures),
    Step(4, "replica leases", _replica_leases),
)


def current_version(conn: Connection) -> int:
    """The highest applied step, 0 on an empty database."""
    schema.schema_version.create(conn, checkfirst=True)
    version = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
    return int(version or 0)


def migrate(conn: Connection, *, now: datetime, steps: tuple[Step, ...] = STEPS) -> int:
    """Apply the missing steps inside the caller's transaction; returns the new version.

    The caller opens the transaction (and on SQLite makes it ``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    version = current_version(conn)
    latest = max((s.version for s in steps), default=0)
    if version > latest:
        logger.warning(
            "database schema is at version %d, newer than this collector knows (%d); "
            "running anyway, upgrade the collector",
            version,
            latest,
        )
    for step in sorted(steps, key=lambda s: s.version):
        if step.version <= version:
            continue
        logger.info("applying schema step %d: %s", step.version, step.description)
        step.apply(conn)
        conn.execute(
            schema.schema_version.insert().values(
                version=step.version, description=step.description, applied_at=now
            )
        )
        version = step.version
    return version
