"""Which hosts have a live stream on this replica, and what they last said: in memory.

Hellos and heartbeats change only this book (no database write, no fsync each);
the writer persists the changed hosts in its next transaction, at least every
``host_flush_seconds``. So a host's ``last_seen`` in the database may be a few
seconds behind by design; this replica's own views (:func:`overlay`) use the
book and are current.

A host counts as connected while ANY of its streams lives: a second stream of
the same host ending leaves it connected. An entry with no stream is dropped
once it has been written, so the book holds the connected hosts plus those
waiting to be written, and the database stays the word on hosts held by other
replicas.

Every method takes the lock: the event loop writes, scrapes and API reads run in
worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from collector.store.records import HostRecord, HostRow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Entry:
    row: HostRow
    streams: int
    dirty: bool
    heartbeat: Any = None  # the host's last Heartbeat message, as received


class Presence:
    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._hosts: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def hello(self, host_id: str, platform: str, facts: dict[str, Any], *, spool_events: int, dropped_total: int) -> None:
        """A stream of ``host_id`` introduced itself."""
        now = self._clock()
        with self._lock:
            entry = self._hosts.get(host_id)
            first = entry.row.first_seen if entry else now
            streams = entry.streams + 1 if entry else 1
            row = HostRow(host_id, platform, facts, first, now, True, spool_events, dropped_total)
            self._hosts[host_id] = _Entry(row, streams, True, entry.heartbeat if entry else None)

    def heartbeat(self, host_id: str, message: Any, *, spool_events: int, dropped_total: int) -> None:
        now = self._clock()
        with self._lock:
            entry = self._hosts.get(host_id)
            if entry is not None:
                entry.row = replace(entry.row, last_seen=now, spool_events=spool_events, dropped_total=dropped_total)
                entry.heartbeat = message
                entry.dirty = True

    def seen(self, host_id: str) -> None:
        now = self._clock()
        with self._lock:
            entry = self._hosts.get(host_id)
            if entry is not None:
                entry.row = replace(entry.row, last_seen=now)
                entry.dirty = True

    def bye(self, host_id: str) -> None:
        """A stream of ``host_id`` ended; the host stays connected while another lives."""
        now = self._clock()
        with self._lock:
            entry = self._hosts.get(host_id)
            if entry is None:
                return
            entry.streams = max(0, entry.streams - 1)
            entry.row = replace(entry.row, last_seen=now, connected=entry.streams > 0)
            entry.dirty = True

    def forget(self, host_id: str) -> None:
        with self._lock:
            self._hosts.pop(host_id, None)

    def connected(self) -> int:
        """Hosts with at least one live stream here."""
        with self._lock:
            return sum(1 for e in self._hosts.values() if e.streams > 0)

    def take_dirty(self) -> list[HostRow]:
        """The rows changed since the last call, to be written; entries without a
        stream leave the book (give the rows back with :meth:`restore` if the write fails)."""
        with self._lock:
            out = [e.row for e in self._hosts.values() if e.dirty]
            for host_id in [h for h, e in self._hosts.items() if e.dirty and e.streams == 0]:
                del self._hosts[host_id]
            for e in self._hosts.values():
                e.dirty = False
            return out

    def restore(self, rows: Sequence[HostRow]) -> None:
        """Rows whose write failed: write them again next time, unless newer news came."""
        with self._lock:
            for row in rows:
                entry = self._hosts.get(row.host_id)
                if entry is None:
                    self._hosts[row.host_id] = _Entry(row, 0, True)
                else:
                    entry.dirty = True

    def local(self) -> dict[str, HostRow]:
        with self._lock:
            return {h: e.row for h, e in self._hosts.items()}

    def heartbeats(self) -> dict[str, Any]:
        """The last Heartbeat message of each host in the book."""
        with self._lock:
            return {h: e.heartbeat for h, e in self._hosts.items() if e.heartbeat is not None}


def overlay(
    stored: Sequence[HostRecord],
    local: dict[str, HostRow],
    *,
    after: str = "",
    limit: int | None = None,
    with_facts: bool = True,
) -> list[HostRecord]:
    """The database's hosts (one page: ids after ``after``, at most ``limit``, as the
    database returned them) with this replica's fresher rows laid over. Pure."""
    out = {h.host_id: h for h in stored}
    full_page = limit is not None and len(stored) >= limit
    ceiling = stored[-1].host_id if full_page and stored else None
    for host_id, row in local.items():
        if host_id <= after or (ceiling is not None and host_id > ceiling):
            continue
        known = out.get(host_id)
        first = row.first_seen if known is None or row.first_seen < known.first_seen else known.first_seen
        out[host_id] = HostRecord(host_id, row.platform, row.facts if with_facts else {}, first, row.last_seen,
                                  row.connected, row.spool_events, row.dropped_total)
    merged = [out[h] for h in sorted(out)]
    return merged[:limit] if limit is not None else merged
