"""collector.http.metrics.FleetCollector on a real SQLite store, scraped through its own registry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.http.metrics import OTHER, FleetCollector, allowed_images
from collector.ingest.presence import Presence
from collector.ingest.stats import Stats
from collector.store import eventcodec
from collector.store.records import EventRecord
from collector.store.store import Store
from enoexec.v1 import enoexec_pb2 as pb

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def ev(event_id: str, *, minutes: int, host: str = "graviton-1", host_platform: str = "linux/arm64",
       image: str = "edge/agent:2", cause: str = "no_32bit_support", hint: str = "rebuild_64bit",
       image_platform: str = "linux/arm/v7", binary_platform: str = "linux/arm/v7") -> EventRecord:
    when = T0 + timedelta(minutes=minutes)
    body, host_facts, image_facts = eventcodec.split(pb.Event(event_id=event_id, host=pb.HostFacts(host_id=host)))
    return EventRecord(event_id, when, host, host_platform, image, image_platform, binary_platform, cause, hint,
                       body, eventcodec.ref(host_facts), host_facts, eventcodec.ref(image_facts), image_facts)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "metrics.db")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = Store(db, replica_id="r1", clock=lambda: NOW)
    yield s
    s.close()


def scrape(store: Store, stats: Stats | None = None, cap: int = 200, presence: Presence | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(FleetCollector(store, stats or Stats(), presence, max_image_labels=cap))
    return registry


def exits(registry: CollectorRegistry, image: str, cause: str = "no_32bit_support", host_platform: str = "linux/arm64") -> float | None:
    return registry.get_sample_value("enoexec_exits_total", {
        "cause": cause, "host_platform": host_platform, "image_platform": "linux/arm/v7",
        "binary_platform": "linux/arm/v7", "image": image,
    })


def test_an_empty_store_exposes_zero_process_counters_and_no_series(store: Store) -> None:
    r = scrape(store)
    assert r.get_sample_value("enoexec_agents_connected") == 0
    assert r.get_sample_value("enoexec_collector_events_received_total") == 0
    assert r.get_sample_value("enoexec_collector_events_duplicate_total") == 0
    assert exits(r, "edge/agent:2") is None
    assert r.get_sample_value("enoexec_hosts", {"platform": "linux/arm64"}) is None


def test_exit_and_host_counters_and_hints(store: Store) -> None:
    store.insert_events([
        ev("a", minutes=1), ev("b", minutes=2),
        ev("c", minutes=3, host="pi-1", host_platform="linux/arm/v7", cause="arch_mismatch", hint="rebuild_multiplatform",
           image="shop/api:1.4", image_platform="linux/amd64", binary_platform="linux/amd64"),
    ])
    assert store.insert_events([ev("a", minutes=1)]) == [False]  # a replay does not count
    r = scrape(store)
    assert exits(r, "edge/agent:2") == 2
    assert r.get_sample_value("enoexec_exits_total", {
        "cause": "arch_mismatch", "host_platform": "linux/arm/v7", "image_platform": "linux/amd64",
        "binary_platform": "linux/amd64", "image": "shop/api:1.4"}) == 1
    assert r.get_sample_value("enoexec_host_exits_total", {"host": "graviton-1", "host_platform": "linux/arm64"}) == 2
    assert r.get_sample_value("enoexec_host_exits_total", {"host": "pi-1", "host_platform": "linux/arm/v7"}) == 1
    assert r.get_sample_value("enoexec_hint_info", {"image": "edge/agent:2", "cause": "no_32bit_support",
                                                    "host_platform": "linux/arm64", "hint": "rebuild_64bit"}) == 1
    assert r.get_sample_value("enoexec_hint_info", {"image": "shop/api:1.4", "cause": "arch_mismatch",
                                                    "host_platform": "linux/arm/v7", "hint": "rebuild_multiplatform"}) == 1


def test_counters_are_per_replica_but_hosts_and_hints_are_shared(store: Store, db: str) -> None:
    other = Store(db, replica_id="r2", clock=lambda: NOW)
    try:
        store.insert_events([ev("a", minutes=1)])
        other.insert_events([ev("b", minutes=2), ev("a", minutes=1)])  # "a" is already stored by r1
        other.upsert_host("graviton-1", "linux/arm64", {}, seen=NOW, connected=True)
        r1, r2 = scrape(store), scrape(other)
        assert exits(r1, "edge/agent:2") == 1 and exits(r2, "edge/agent:2") == 1  # sum = 2 distinct exits
        for r in (r1, r2):
            assert r.get_sample_value("enoexec_hosts", {"platform": "linux/arm64"}) == 1
            assert r.get_sample_value("enoexec_hint_info", {"image": "edge/agent:2", "cause": "no_32bit_support",
                                                            "host_platform": "linux/arm64", "hint": "rebuild_64bit"}) == 1
    finally:
        other.close()


def test_image_cap_keeps_the_first_seen_images_and_folds_the_rest(store: Store) -> None:
    # Inserted out of order: first seen is by event time, not by arrival.
    store.insert_events([ev("d", minutes=40, image="team/d:1"), ev("c", minutes=30, image="team/c:1")])
    store.insert_events([ev("a", minutes=10, image="team/a:1"), ev("b", minutes=20, image="team/b:1"),
                         ev("a2", minutes=50, image="team/a:1")])
    r = scrape(store, cap=2)
    assert exits(r, "team/a:1") == 2 and exits(r, "team/b:1") == 1
    assert exits(r, OTHER) == 2
    assert exits(r, "team/c:1") is None and exits(r, "team/d:1") is None
    # The folded hints are one series, not two.
    assert r.get_sample_value("enoexec_hint_info", {"image": OTHER, "cause": "no_32bit_support",
                                                    "host_platform": "linux/arm64", "hint": "rebuild_64bit"}) == 1
    uncapped = scrape(store)
    assert sum(exits(uncapped, f"team/{x}:1") or 0 for x in "abcd") == 5
    assert exits(uncapped, OTHER) is None


def test_allowed_images_is_stable_under_the_cap() -> None:
    seen = [("a", 1), ("b", 2), ("c", 3)]
    assert allowed_images(seen, 2) == {"a", "b"}
    assert allowed_images(seen + [("d", 4)], 2) == {"a", "b"}  # a newcomer never displaces a label
    assert allowed_images(seen, 10) == {"a", "b", "c"}


def test_host_gauges_come_from_the_inventory(store: Store) -> None:
    store.upsert_host("pi-1", "linux/arm/v7", {}, seen=NOW - timedelta(minutes=5), connected=True, spool_events=3, dropped_total=9)
    store.upsert_host("x86-1", "linux/amd64", {}, seen=NOW, connected=True)
    store.upsert_host("x86-2", "linux/amd64", {}, seen=NOW, connected=False)
    store.touch_host("x86-1", seen=NOW, spool_events=4, dropped_total=1)
    r = scrape(store)
    assert r.get_sample_value("enoexec_hosts", {"platform": "linux/amd64"}) == 2
    assert r.get_sample_value("enoexec_hosts", {"platform": "linux/arm/v7"}) == 1
    assert r.get_sample_value("enoexec_agent_last_seen_timestamp_seconds", {"host": "pi-1", "platform": "linux/arm/v7"}) == (NOW - timedelta(minutes=5)).timestamp()
    assert r.get_sample_value("enoexec_agent_spool_events", {"host": "pi-1"}) == 3
    assert r.get_sample_value("enoexec_agent_dropped_events_total", {"host": "pi-1"}) == 9
    assert r.get_sample_value("enoexec_agent_spool_events", {"host": "x86-1"}) == 4
    assert r.get_sample_value("enoexec_agent_dropped_events_total", {"host": "x86-1"}) == 1
    assert r.get_sample_value("enoexec_agent_spool_events", {"host": "x86-2"}) == 0


def test_process_stats_are_exposed(store: Store) -> None:
    stats = Stats()
    stats.add(received=5, duplicate=2, rejected=Counter({"bad_cause": 1, "host_mismatch": 2}))
    stats.reject("no_hello")
    for delta in (+1, +1, +1, -1):
        stats.stream(delta)
    presence = Presence(clock=lambda: NOW)
    presence.hello("h1", "linux/amd64", {}, spool_events=0, dropped_total=0)
    presence.hello("h1", "linux/amd64", {}, spool_events=0, dropped_total=0)  # a second stream of h1
    presence.hello("h2", "linux/amd64", {}, spool_events=0, dropped_total=0)
    presence.bye("h1")  # h1's other stream lives on
    presence.bye("h2")
    r = scrape(store, stats, presence=presence)
    assert r.get_sample_value("enoexec_collector_events_received_total") == 5
    assert r.get_sample_value("enoexec_collector_events_duplicate_total") == 2
    assert r.get_sample_value("enoexec_collector_events_rejected_total", {"reason": "bad_cause"}) == 1
    assert r.get_sample_value("enoexec_collector_events_rejected_total", {"reason": "host_mismatch"}) == 2
    assert r.get_sample_value("enoexec_collector_events_rejected_total", {"reason": "no_hello"}) == 1
    assert r.get_sample_value("enoexec_agents_connected") == 1
    assert r.get_sample_value("enoexec_collector_streams") == 2
    assert r.get_sample_value("enoexec_agent_last_seen_timestamp_seconds", {"host": "h1", "platform": "linux/amd64"}) == NOW.timestamp()


def test_counters_survive_pruning_and_reopening(store: Store, db: str) -> None:
    store.insert_events([ev("a", minutes=1), ev("b", minutes=2)])
    assert store.prune(NOW) == 2
    r = scrape(store)
    assert exits(r, "edge/agent:2") == 2  # counters only ever grow
    assert r.get_sample_value("enoexec_hint_info", {"image": "edge/agent:2", "cause": "no_32bit_support",
                                                    "host_platform": "linux/arm64", "hint": "rebuild_64bit"}) is None
    reopened = Store(db, replica_id="r1")
    try:
        assert exits(scrape(reopened), "edge/agent:2") == 2
    finally:
        reopened.close()


def test_a_scrape_survives_a_store_failure_with_the_process_metrics_and_store_up_0(tmp_path: Path) -> None:
    """A failing store made /metrics a 503: Prometheus then saw the collector as down."""
    path = tmp_path / "gone.db"
    store = Store(str(path))
    stats = Stats()
    stats.add(received=3, duplicate=1, rejected=Counter({"bad_cause": 2}))
    registry = CollectorRegistry()
    registry.register(FleetCollector(store, stats, Presence(clock=lambda: NOW), clock=lambda: NOW))
    store.write([ev("e1", minutes=1)])
    assert registry.get_sample_value("enoexec_collector_store_up") == 1
    assert registry.get_sample_value("enoexec_exits_total", {
        "cause": "no_32bit_support", "host_platform": "linux/arm64", "image_platform": "linux/arm/v7",
        "binary_platform": "linux/arm/v7", "image": "edge/agent:2"}) == 1

    store.close()  # the database goes away: its file becomes a directory SQLite cannot open
    for leftover in tmp_path.glob("gone.db*"):
        leftover.unlink()
    path.mkdir()
    assert registry.get_sample_value("enoexec_collector_store_up") == 0
    assert registry.get_sample_value("enoexec_collector_events_received_total") == 3
    assert registry.get_sample_value("enoexec_collector_events_rejected_total", {"reason": "bad_cause"}) == 2
    assert registry.get_sample_value("enoexec_exits_total", {
        "cause": "no_32bit_support", "host_platform": "linux/arm64", "image_platform": "linux/arm/v7",
        "binary_platform": "linux/arm/v7", "image": "edge/agent:2"}) is None
