"""Store.recent_exits on both backends (SQLite and a real PostgreSQL): the query
behind enoexec_last_exit_timestamp_seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.store.recent_exits import RecentExit
from collector.store.records import EventRecord
from tests.records import PULL_TITLE, exit_record

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def ev(event_id: str, minutes_ago: int, host: str, *, pull: bool = True, backfilled: bool = False) -> EventRecord:
    """An exit whose hint is pull_platform, or rebuild_multiplatform with ``pull=False``."""
    return exit_record(event_id, NOW - timedelta(minutes=minutes_ago), host, backfilled=backfilled,
                       **({} if pull else {"available": None}))


def test_latest_exit_per_host_newest_title_without_backfilled_or_old(open_store) -> None:
    store = open_store(replica_id="r1", clock=lambda: NOW)
    store.insert_events([
        ev("a", 9, "pi-1", pull=False),
        ev("b", 2, "pi-1"),  # the group's newest exit: its hint names the group
        ev("c", 5, "pi-2"),
        ev("d", 1, "pi-3", backfilled=True),
        ev("e", 90, "pi-4"),
    ])
    rows = store.recent_exits(NOW - timedelta(hours=1))
    assert rows == [
        RecentExit("shop/web:2", "linux/arm64", "arch_mismatch", "pi-1", "pull_platform", PULL_TITLE, NOW - timedelta(minutes=2)),
        RecentExit("shop/web:2", "linux/arm64", "arch_mismatch", "pi-2", "pull_platform", PULL_TITLE, NOW - timedelta(minutes=5)),
    ]
    assert store.recent_exits(NOW) == []
