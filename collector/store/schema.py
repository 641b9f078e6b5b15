"""The store's database: how ``--db`` is reached, and its tables.

:func:`database_url` turns a SQLite path or a ``postgresql://`` URL into an
engine URL (psycopg 3 for PostgreSQL), :func:`make_engine` sets SQLite up for
concurrent use (WAL, busy timeout, ``BEGIN IMMEDIATE`` for writers).

Timestamps go through :class:`UTCDateTime` (aware UTC in, aware UTC out on both
backends) and host facts through :class:`JSONText` (plain JSON text, readable
with any SQL client); events are stored as described in :mod:`collector.store.eventcodec`. :mod:`collector.store.migrations` creates and evolves these tables.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.types import TypeDecorator

from collector.errors import ConfigError

_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}


def database_url(value: str) -> URL:
    """Turn ``--db`` into an engine URL: a SQLite path or a ``postgresql://`` URL."""
    value = value.strip()
    if not value:
        raise ConfigError("empty database: give --db a SQLite file path or a postgresql:// URL")
    if "://" not in value:
        return _sqlite_url(Path(value))
    try:
        url = make_url(value)
    except ArgumentError as e:
        raise ConfigError(f"cannot parse database URL {value!r}: {e}") from e
    if url.drivername in _PG_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_DRIVERS:
        if not url.database or url.database == ":memory:":
            raise ConfigError("in-memory SQLite is not durable: give --db a file path")
        return _sqlite_url(Path(url.database))
    raise ConfigError(
        f"unsupported database {url.drivername!r} in --db: use a SQLite file path or a postgresql:// URL"
    )


def _sqlite_url(path: Path) -> URL:
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"--db {path} is a directory: name a file inside it, e.g. {path / 'enoexec.db'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create directory {path.parent} for the SQLite database ({e.strerror or e}): "
            "choose a writable --db path"
        ) from e
    return URL.create("sqlite+pysqlite", database=str(path))


def make_engine(url: URL, *, busy_timeout_ms: int, connect_timeout_s: int) -> Engine:
    if url.get_backend_name() == "postgresql":
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": connect_timeout_s}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
        cursor = dbapi_conn.cursor()
        # busy_timeout first, so switching to WAL waits for a replica opening at once.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front so busy_timeout applies instead of SQLITE_BUSY.
        writing = conn.get_execution_options().get("enoexec_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC time")
        value = value.astimezone(UTC)
        # SQLite keeps text; dropping the offset keeps every stored value in one sortable form.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """A JSON document kept as text, so both backends store it the same way."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("time", UTCDateTime, nullable=False),
    Column("host_id", String, nullable=False),
    Column("host_platform", String, nullable=False),
    Column("image_ref", String, nullable=False),
    Column("image_platform", String, nullable=False),
    Column("binary_platform", String, nullable=False),
    Column("cause", String, nullable=False),
    Column("hint_id", String, nullable=False),
    # Schema 1 kept the whole event JSON here; since schema 2 it is '' and the
    # event is in ``body`` and ``shared_facts`` (see collector.store.eventcodec).
    Column("payload", Text, nullable=False),
    Column("replica_id", String, nullable=False),  # which collector replica stored it
    Column("body", LargeBinary, nullable=True),
    Column("host_ref", String, nullable=True),  # -> shared_facts.ref
    Column("image_facts_ref", String, nullable=True),  # -> shared_facts.ref
    # A fresh agent's report of an exit from before it started: stored, never paged on.
    Column("backfilled", Boolean, nullable=True),
    # "start_failure" for a look-alike; NULL (events before schema 3) or "exec_format_error" for ENOEXEC.
    Column("failure", String, nullable=True),
    Index("ix_events_time", "time"),
    Index("ix_events_host_id", "host_id"),
    Index("ix_events_image_ref", "image_ref"),
    # No index on cause: a handful of values, and /api/v1/events?cause= walks ix_events_time.
)

# Counters are per replica so that each replica's exported counter only ever grows
# by what it inserted itself; summed over replicas they equal the distinct events.
exit_counts = Table(
    "exit_counts",
    metadata,
    Column("replica_id", String, primary_key=True),
    Column("cause", String, primary_key=True),
    Column("host_platform", String, primary_key=True),
    Column("image_platform", String, primary_key=True),
    Column("binary_platform", String, primary_key=True),
    Column("image", String, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Look-alikes (failure "start_failure") are counted apart, so enoexec_exits_total keeps
# counting exec format errors only.
start_failure_counts = Table(
    "start_failure_counts",
    metadata,
    Column("replica_id", String, primary_key=True),
    Column("cause", String, primary_key=True),
    Column("host_platform", String, primary_key=True),
    Column("image_platform", String, primary_key=True),
    Column("binary_platform", String, primary_key=True),
    Column("image", String, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

host_exit_counts = Table(
    "host_exit_counts",
    metadata,
    Column("replica_id", String, primary_key=True),
    Column("host", String, primary_key=True),
    Column("host_platform", String, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# First sighting of each image ref; survives pruning so label capping stays stable.
images = Table(
    "images",
    metadata,
    Column("image_ref", String, primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
)

hosts = Table(
    "hosts",
    metadata,
    Column("host_id", String, primary_key=True),
    Column("platform", String, nullable=False),
    Column("facts", JSONText, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("connected_replica", String, nullable=True),  # replica holding the agent's stream
    Column("spool_events", BigInteger, nullable=False),
    Column("dropped_total", BigInteger, nullable=False),
)

# Host and image facts, once per distinct value, keyed by content (collector.store.eventcodec.ref).
shared_facts = Table(
    "shared_facts",
    metadata,
    Column("ref", String, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# Hint groups over the retained events, maintained at ingest and on prune, so that
# /metrics and /api/v1/hints read a row per group instead of every event.
hint_groups = Table(
    "hint_groups",
    metadata,
    Column("image_ref", String, primary_key=True),
    Column("cause", String, primary_key=True),
    Column("host_platform", String, primary_key=True),
    Column("exits", BigInteger, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("latest_event_id", String, nullable=False),  # newest by (time, event_id)
    Column("hint_id", String, nullable=False),  # that event's hint
)

hint_group_hosts = Table(
    "hint_group_hosts",
    metadata,
    Column("image_ref", String, primary_key=True),
    Column("cause", String, primary_key=True),
    Column("host_platform", String, primary_key=True),
    Column("host_id", String, primary_key=True),
    Column("exits", BigInteger, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
)

# One row per replica, rewritten by each readiness check: proof the database takes writes.
write_probe = Table(
    "write_probe",
    metadata,
    Column("replica_id", String, primary_key=True),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("probes", BigInteger, nullable=False),  # grows on every probe, so each one changes the row
)

# One row per replica id: its lease, renewed while its collector runs (collector.store.replicas).
replicas = Table(
    "replicas",
    metadata,
    Column("replica_id", String, primary_key=True),
    Column("instance", String, nullable=False),  # the holding process, random per start
    Column("beats", BigInteger, nullable=False),  # grows with every renewal: a live holder moves it
    Column("released", Boolean, nullable=False),  # its holder stopped cleanly
    Column("renewed_at", UTCDateTime, nullable=False),  # the holder's clock; for people, not for liveness
)
