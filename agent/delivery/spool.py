"""The agent's durable on-disk spool of diagnosed events, plus its small persistent state.

Every diagnosed event is written here before it is sent and removed only when the
collector acknowledges it, so an agent restart, a collector outage or a SIGKILL loses
nothing that ``put`` accepted.

Storage: one SQLite file (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``:
every commit fsyncs the WAL before ``put`` returns, so an accepted event survives a
process kill *and* a power cut. ``NORMAL`` would only survive a process crash; on a
Raspberry Pi an unplugged power lead is the usual way to stop, and exec-format-error
exits arrive at most a few per minute, far below what FULL sustains
(``benchmarks/spool_bench.py`` measures both).

Bounds: ``max_events`` (10,000) and ``max_bytes`` of payload (64 MiB). An event is a
few KiB, so the byte bound only bites for pathological payloads; 64 MiB is well under
1% of the smallest SD card a Pi boots from (8 GB) and 10,000 events is days of a whole
crash-looping fleet's exits. When full, the *oldest* events are dropped to make room
(the newest say most about the present) and counted in ``dropped_total``, which is
stored in the file and survives restarts. The file can be somewhat larger than
``max_bytes`` (page overhead, the WAL, free pages kept for reuse).

Paging for the sender is by sequence number: every event gets a ``seq`` that only
ever grows (``AUTOINCREMENT``, never reused, not even after the spool empties).
A sender with several batches in flight keeps a cursor::

    batch = spool.peek(100, after=cursor)   # oldest first, not removed
    cursor = batch[-1].seq                  # send it, go on with the next batch
    ...
    spool.ack(ids_the_collector_acknowledged)
    # on reconnect: cursor = 0, resend everything not yet acknowledged; the
    # collector counts a replayed event_id once.

A spool that cannot be read at start (garbage, truncated, a directory, a foreign
schema) is moved aside to ``<name>.corrupt-<UTC timestamp>`` with its ``-wal`` and
``-shm`` files, with one warning, and an empty spool takes its place. A directory
that cannot be written raises :class:`~agent.errors.SpoolError`.

The spool is thread-safe: one connection, used under one lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.delivery.spool_file import open_spool
from agent.errors import SpoolError

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_SEEN_TTL = 7 * 24 * 3600.0

_SEEN_PRUNE_INTERVAL = 3600.0
# SQLite checkpoints the WAL into the database by itself only past 1,000 pages
# and never shrinks the file; the spool truncates it after acks, at most this often
# (and whenever the spool has just emptied).
CHECKPOINT_INTERVAL = 60.0
_ACK_CHUNK = 500  # stays under SQLite's oldest limit of 999 bound parameters
_SYNCHRONOUS = ("FULL", "NORMAL")


@dataclass(frozen=True)
class SpooledEvent:
    event_id: str
    payload: bytes
    enqueued_at: float
    seq: int  # grows with every put, never reused: the paging cursor for peek(after=)


@dataclass(frozen=True)
class SpoolStats:
    events: int
    bytes: int  # payload bytes, what max_bytes bounds
    dropped_total: int


@dataclass(frozen=True)
class Eviction:
    count: int
    last_seq: int  # evict every event with seq <= last_seq
    freed_bytes: int


def plan_eviction(
    oldest_first: Iterable[tuple[int, int]],
    *,
    events: int,
    nbytes: int,
    new_size: int,
    max_events: int,
    max_bytes: int,
) -> Eviction:
    """Which of the oldest ``(seq, size)`` entries must go so one of ``new_size`` fits."""
    count = last_seq = freed = 0
    rows = iter(oldest_first)
    while events - count + 1 > max_events or nbytes - freed + new_size > max_bytes:
        row = next(rows, None)
        if row is None:
            break
        last_seq, size = row
        count += 1
        freed += size
    return Eviction(count, last_seq, freed)




class Spool:
    def __init__(
        self,
        path: Path,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        seen_ttl: float = DEFAULT_SEEN_TTL,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("max_events and max_bytes must be at least 1")
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, not {synchronous!r}")
        self._path = Path(path)
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._seen_ttl = seen_ttl
        self._synchronous = synchronous
        self._clock = clock
        self._lock = threading.Lock()
        self._last_seen_prune = float("-inf")
        self.write_failed = False  # the last write transaction failed
        self._last_checkpoint = clock()
        self._conn: sqlite3.Connection | None = open_spool(
            self._path, synchronous=synchronous, clock=clock, seen_ttl=seen_ttl
        )
        self._load_counters(self._conn)

    @property
    def path(self) -> Path:
        return self._path

    # -- events ------------------------------------------------------------------------

    def put(self, event_id: str, payload: bytes) -> bool:
        """Store one event durably before returning.

        ``False`` when it was not stored: that ``event_id`` is already spooled, or the
        payload alone is larger than ``max_bytes`` (then counted as dropped).
        """
        if not event_id:
            raise ValueError("event_id must not be empty")
        payload = bytes(payload)
        size = len(payload)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone():
                return False
            if size > self._max_bytes:
                self._count_dropped(conn, 1)
                logger.warning(
                    "event %s is %d bytes, more than the spool's limit of %d; dropped it",
                    event_id, size, self._max_bytes,
                    extra={"spool_path": str(self._path), "event_id": event_id},
                )
                return False
            cursor = conn.execute("SELECT seq, size FROM events ORDER BY seq")
            try:
                plan = plan_eviction(
                    cursor, events=self._events, nbytes=self._bytes, new_size=size,
                    max_events=self._max_events, max_bytes=self._max_bytes,
                )
            finally:
                cursor.close()
            if plan.count:
                conn.execute("DELETE FROM events WHERE seq <= ?", (plan.last_seq,))
                self._events -= plan.count
                self._bytes -= plan.freed_bytes
                self._count_dropped(conn, plan.count)
                logger.warning(
                    "spool %s is full; dropped the %d oldest events (%d dropped in total)",
                    self._path, plan.count, self._dropped,
                    extra={"spool_path": str(self._path), "dropped": plan.count,
                           "dropped_total": self._dropped},
                )
            conn.execute(
                "INSERT INTO events (event_id, payload, size, enqueued_at) VALUES (?, ?, ?, ?)",
                (event_id, payload, size, self._clock()),
            )
            self._events += 1
            self._bytes += size
        return True

    def peek(self, limit: int, *, after: int = 0) -> list[SpooledEvent]:
        """Up to ``limit`` events with ``seq > after``, oldest first; nothing is removed."""
        if limit < 1:
            return []
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT event_id, payload, enqueued_at, seq FROM events WHERE seq > ?"
                " ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [SpooledEvent(e, bytes(p), t, s) for e, p, t, s in rows]

    def ack(self, event_ids: Iterable[str]) -> int:
        """Remove acknowledged events; returns how many were in the spool."""
        ids = list(dict.fromkeys(event_ids))
        removed = 0
        with self._transaction() as conn:
            for start in range(0, len(ids), _ACK_CHUNK):
                chunk = ids[start : start + _ACK_CHUNK]
                marks = ",".join("?" * len(chunk))
                count, size = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events"
                    f" WHERE event_id IN ({marks})",
                    chunk,
                ).fetchone()
                conn.execute(f"DELETE FROM events WHERE event_id IN ({marks})", chunk)
                removed += count
                self._events -= count
                self._bytes -= size
        now = self._clock()
        if removed and (self._events == 0 or now - self._last_checkpoint >= CHECKPOINT_INTERVAL):
            self.checkpoint()
        return removed

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; ``False`` if a reader kept
        it from completing (it is retried at the next ack)."""
        with self._locked() as conn:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            self._last_checkpoint = self._clock()
        return not busy

    def stats(self) -> SpoolStats:
        with self._locked():
            return SpoolStats(self._events, self._bytes, self._dropped)

    # -- the agent's reconciliation state ----------------------------------------------

    def get_state(self, key: str) -> str | None:
        with self._locked() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def mark_seen(self, key: str) -> bool:
        """Remember ``key``; ``True`` if it was not already remembered.

        Marking again refreshes its time, so a key kept being met stays remembered;
        keys not met for ``seen_ttl`` seconds are forgotten (checked at most hourly).
        """
        now = self._clock()
        with self._transaction() as conn:
            new = conn.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is None
            conn.execute("INSERT OR REPLACE INTO seen (key, seen_at) VALUES (?, ?)", (key, now))
            if now - self._last_seen_prune >= _SEEN_PRUNE_INTERVAL:
                conn.execute("DELETE FROM seen WHERE seen_at < ?", (now - self._seen_ttl,))
                self._last_seen_prune = now
        return new

    def mark_seen_many(self, keys: Iterable[str]) -> None:
        """Remember every key, in one transaction."""
        now = self._clock()
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO seen (key, seen_at) VALUES (?, ?)", [(k, now) for k in keys])

    def seen_between(self, low: str, high: str) -> bool:
        """Whether a remembered key sorts between ``low`` and ``high`` (inclusive)."""
        with self._locked() as conn:
            return conn.execute("SELECT 1 FROM seen WHERE key >= ? AND key <= ? LIMIT 1", (low, high)).fetchone() is not None

    def is_seen(self, key: str) -> bool:
        """Whether ``key`` is remembered; unlike ``mark_seen`` it changes nothing."""
        with self._locked() as conn:
            return conn.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is not None

    def prune_seen(self, older_than: float) -> int:
        """Forget keys last marked before the timestamp ``older_than``; returns how many."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM seen WHERE seen_at < ?", (older_than,)).rowcount

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                logger.debug("spool %s: checkpoint at close failed: %s", self._path, e)
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise SpoolError(f"spool {self._path} is closed; open a new Spool")
            try:
                yield self._conn
            except sqlite3.Error as e:
                raise self._error(e) from e

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._locked() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._load_counters(conn)
                    raise
        except SpoolError:
            self.write_failed = True  # reported in heartbeats (spool_writable)
            raise
        self.write_failed = False

    def _error(self, e: sqlite3.Error) -> SpoolError:
        return SpoolError(
            f"spool {self._path} failed: {e}; check free space on that filesystem and the"
            " permissions of --state-dir"
        )

    def _count_dropped(self, conn: sqlite3.Connection, n: int) -> None:
        self._dropped += n
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?)",
            (str(self._dropped),),
        )

    def _load_counters(self, conn: sqlite3.Connection) -> None:
        self._events, self._bytes = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events"
        ).fetchone()
        row = conn.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
        self._dropped = int(row[0]) if row else 0
