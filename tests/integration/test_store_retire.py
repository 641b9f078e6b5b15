"""Store.forget_host, expire_hosts and probe_write on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.ingest import ingest
from collector.store.records import EventRecord
from enoexec.v1 import enoexec_pb2 as pb

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def exit_on(host: str, event_id: str) -> EventRecord:
    ev = pb.Event(event_id=event_id, host=pb.HostFacts(host_id=host, platform="linux/arm64"), cause="arch_mismatch",
                  image=pb.ImageFacts(ref="app:1", declared_platform="linux/amd64"),
                  binary=pb.BinaryFacts(platform="linux/amd64"))
    ev.time.FromDatetime(T0)
    return ingest.record(ev)


def test_forget_keeps_counters_and_refuses_a_connected_host(open_store):
    clock = Clock(T0)
    store = open_store(clock=clock)
    store.upsert_host("old", "linux/arm64", {}, seen=T0, connected=False)
    store.upsert_host("live", "linux/arm64", {}, seen=T0, connected=True)
    store.insert_events([exit_on("old", "e1")])

    assert store.forget_host("old") == "forgotten"
    assert store.forget_host("old") == "unknown"
    assert store.forget_host("live") == "connected"
    assert [h.host_id for h in store.hosts()] == ["live"]
    assert [(c.host, c.count) for c in store.host_exit_counts()] == [("old", 1)]
    assert [e["event_id"] for e in store.events(host="old")] == ["e1"]
    # A connected host whose stream went stale (its replica died) may be forgotten.
    clock.now = T0 + timedelta(minutes=10)
    assert store.forget_host("live") == "forgotten"
    # Coming back registers it again.
    store.upsert_host("old", "linux/arm64", {}, seen=clock.now, connected=True)
    assert [h.host_id for h in store.hosts()] == ["old"]


def test_expire_forgets_only_hosts_silent_since_the_cutoff(open_store):
    store = open_store(clock=Clock(T0))
    store.upsert_host("a", "linux/amd64", {}, seen=T0 - timedelta(days=8))
    store.upsert_host("b", "linux/amd64", {}, seen=T0 - timedelta(days=9))
    store.upsert_host("c", "linux/amd64", {}, seen=T0 - timedelta(hours=1))
    assert store.expire_hosts(T0 - timedelta(days=7)) == ["a", "b"]
    assert store.expire_hosts(T0 - timedelta(days=7)) == []
    assert [h.host_id for h in store.hosts()] == ["c"]


def test_probe_write_commits_a_change_every_time(open_store, store_url):
    from sqlalchemy import create_engine, select

    from collector.store.schema import database_url, write_probe

    one = open_store(replica_id="r1", clock=Clock(T0))  # a frozen clock: the probe must still change the row
    two = open_store(replica_id="r2", clock=Clock(T0))
    for _ in range(3):
        one.probe_write()
    two.probe_write()
    engine = create_engine(database_url(store_url))
    try:
        with engine.connect() as conn:
            rows = sorted(conn.execute(select(write_probe.c.replica_id, write_probe.c.probes)).all())
    finally:
        engine.dispose()
    assert rows == [("r1", 3), ("r2", 1)]
