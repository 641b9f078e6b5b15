"""Opening the spool's SQLite file: schema, integrity check, and moving a corrupt
file aside so the agent starts with an empty spool instead of crash-looping."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from agent.errors import SpoolError

logger = logging.getLogger("agent.delivery.spool")

SCHEMA_VERSION = "1"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT = 5.0
# Errors that say nothing about the file's contents: never move a spool aside for them.
_NOT_CORRUPTION = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
     sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY}
)

# SQLite keeps each CREATE statement verbatim, so the schema check compares text.
_TABLES = {
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "events": (
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL"
        " UNIQUE, payload BLOB NOT NULL, size INTEGER NOT NULL, enqueued_at REAL NOT NULL)"
    ),
    "state": "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "seen": "CREATE TABLE seen (key TEXT PRIMARY KEY, seen_at REAL NOT NULL)",
}
_INDEXES = ("CREATE INDEX seen_by_time ON seen (seen_at)",)


def _header_problem(path: Path) -> str:
    """Why ``path`` cannot be a SQLite database, judged by its first bytes; "" if it may be."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return ""
    except OSError as e:
        return f"cannot read it: {e}"
    if header and header != _SQLITE_MAGIC:
        return "file is not a database"
    return ""


class _Unusable(Exception):
    """The file is not a spool we can use; move it aside."""


def open_spool(path: Path, *, synchronous: str, clock: Callable[[], float], seen_ttl: float) -> sqlite3.Connection:
    """Open (or create) the spool database; a corrupt file is moved aside first."""
    directory = path.parent
    hint = "check that --state-dir names a directory this agent's user can write"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpoolError(f"cannot create the spool directory {directory}: {e}; {hint}") from e
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SpoolError(f"the spool directory {directory} is not writable; {hint}")
    if path.exists() and not path.is_file():
        _move_aside(path, "it is not a regular file", clock)
    elif problem := _header_problem(path):
        # Decided before SQLite opens it: SQLite deletes the -wal of a file it does
        # not take for a WAL database, and that -wal is evidence worth keeping.
        _move_aside(path, problem, clock)
    try:
        return _connect(path, synchronous, clock, seen_ttl)
    except _Unusable as e:
        _move_aside(path, str(e), clock)
    try:
        return _connect(path, synchronous, clock, seen_ttl)
    except _Unusable as e:
        raise SpoolError(f"cannot create a new spool at {path}: {e}; {hint}") from e

def _connect(path: Path, synchronous: str, clock: Callable[[], float], seen_ttl: float) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise _Unusable(str(e)) from e
    try:
        _prepare(conn, path, synchronous, clock, seen_ttl)
    except sqlite3.Error as e:
        conn.close()
        if (getattr(e, "sqlite_errorcode", 0) & 0xFF) in _NOT_CORRUPTION:
            raise SpoolError(
                f"cannot open the spool {path}: {e}; check the file's permissions and"
                " free space, and that no other enoexec-agent uses this --state-dir"
            ) from e
        raise _Unusable(str(e)) from e
    except BaseException:
        conn.close()
        raise
    return conn

def _prepare(conn: sqlite3.Connection, path: Path, synchronous: str, clock: Callable[[], float], seen_ttl: float) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        logger.warning("spool %s: WAL is not available here, using journal mode %s",
                       path, mode, extra={"spool_path": str(path)})
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA journal_size_limit=4194304")
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise _Unusable("integrity check failed: " + "; ".join(problems[:3]))
    tables = dict(conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    ).fetchall())
    if not tables:
        conn.execute("BEGIN IMMEDIATE")
        for sql in (*_TABLES.values(), *_INDEXES):
            conn.execute(sql)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                     (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    elif tables != _TABLES:
        raise _Unusable(f"not an enoexec spool (tables: {', '.join(sorted(tables))})")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or row[0] != SCHEMA_VERSION:
        raise _Unusable(f"unknown spool schema version {row[0] if row else None!r}")
    conn.execute("DELETE FROM seen WHERE seen_at < ?", (clock() - seen_ttl,))

def _move_aside(path: Path, reason: str, clock: Callable[[], float]) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while any(os.path.lexists(f"{target}{s}") for s in ("", "-wal", "-shm")):
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        for suffix in ("", "-wal", "-shm"):
            source = f"{path}{suffix}"
            if os.path.lexists(source):
                os.replace(source, f"{target}{suffix}")
    except OSError as e:
        raise SpoolError(
            f"the spool {path} is unusable ({reason}) and could not be moved aside:"
            f" {e}; move or delete it by hand, or point --state-dir elsewhere"
        ) from e
    logger.warning(
        "spool %s is unusable (%s); moved it aside to %s and started an empty spool",
        path, reason, target,
        extra={"spool_path": str(path), "moved_to": str(target), "reason": reason},
    )
