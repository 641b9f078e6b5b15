"""collector.ingest.presence: which hosts are connected, what is written when, and the
overlay of this replica's fresh view on the database's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.ingest.presence import Presence, overlay
from collector.store.records import HostRecord

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def stored(host_id: str, *, connected: bool = False, seen: datetime = T0) -> HostRecord:
    return HostRecord(host_id, "linux/amd64", {}, T0 - timedelta(days=1), seen, connected, 0, 0)


def test_a_host_stays_connected_while_any_of_its_streams_lives() -> None:
    book = Presence(clock=Clock())
    book.hello("h1", "linux/amd64", {}, spool_events=0, dropped_total=0)
    book.hello("h1", "linux/amd64", {}, spool_events=0, dropped_total=0)
    assert book.connected() == 1
    book.bye("h1")
    assert book.connected() == 1 and book.local()["h1"].connected
    book.bye("h1")
    assert book.connected() == 0 and not book.local()["h1"].connected


def test_heartbeats_change_memory_only_until_taken_and_disconnected_hosts_leave_once_written() -> None:
    clock = Clock()
    book = Presence(clock=clock)
    book.hello("h1", "linux/amd64", {"kernel_release": "6.1"}, spool_events=1, dropped_total=0)
    book.hello("h2", "linux/arm64", {}, spool_events=0, dropped_total=0)
    assert sorted(r.host_id for r in book.take_dirty()) == ["h1", "h2"]
    assert book.take_dirty() == []  # nothing changed since

    clock.now = T0 + timedelta(seconds=30)
    book.heartbeat("h1", "hb-message", spool_events=7, dropped_total=2)
    book.heartbeat("unknown", "hb", spool_events=1, dropped_total=1)  # no stream: ignored
    (row,) = book.take_dirty()
    assert (row.host_id, row.last_seen, row.spool_events, row.dropped_total) == ("h1", clock.now, 7, 2)
    assert book.heartbeats() == {"h1": "hb-message"}

    book.bye("h2")
    (gone,) = book.take_dirty()
    assert gone.host_id == "h2" and not gone.connected
    assert sorted(book.local()) == ["h1"]  # written, so the database speaks for h2 again
    book.restore([gone])  # the write failed: it is written again next time
    assert [r.host_id for r in book.take_dirty()] == ["h2"]


def test_overlay_lays_local_rows_over_one_page_of_stored_hosts() -> None:
    clock = Clock()
    book = Presence(clock=clock)
    clock.now = T0 + timedelta(minutes=5)
    for host in ("b", "d", "z"):
        book.hello(host, "linux/amd64", {"fresh": True}, spool_events=3, dropped_total=0)
    page = [stored("a"), stored("b"), stored("c")]  # the database's first page of 3
    merged = overlay(page, book.local(), limit=3)
    assert [h.host_id for h in merged] == ["a", "b", "c"]  # d and z belong to later pages
    b = merged[1]
    assert (b.connected, b.last_seen, b.spool_events, b.first_seen) == (True, clock.now, 3, T0 - timedelta(days=1))

    last_page = overlay([stored("e")], book.local(), after="c", limit=3)
    assert [h.host_id for h in last_page] == ["d", "e", "z"]  # not yet written, still listed
    assert all(h.facts == {} for h in overlay(page, book.local(), limit=3, with_facts=False))
