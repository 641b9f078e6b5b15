"""enoexec_last_exit_timestamp_seconds: the gauge the image alert is built on.

It is read from the shared store, so it is born with the time of the exit that
created it, is the same on every replica and survives a collector restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.http.metrics import FleetCollector
from collector.ingest.stats import Stats
from collector.store.records import EventRecord
from collector.store.store import Store
from tests.records import exit_record

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
NAME = "enoexec_last_exit_timestamp_seconds"


def ev(event_id: str, *, ago: timedelta, host: str = "pi-1", image: str = "shop/web:2", pull: bool = True,
       backfilled: bool = False) -> EventRecord:
    return exit_record(event_id, NOW - ago, host, image=image, backfilled=backfilled,
                       **({} if pull else {"available": None}))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "last-exit.db")


def open_store(db: str, replica: str) -> Store:
    return Store(db, replica_id=replica, clock=lambda: NOW)


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = open_store(db, "r1")
    yield s
    s.close()


def scrape(store: Store, cap: int = 200) -> dict[tuple[str, ...], float]:
    registry = CollectorRegistry()
    registry.register(FleetCollector(store, Stats(), max_image_labels=cap, clock=lambda: NOW))
    out = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == NAME:
                out[tuple(s.labels[k] for k in ("image", "host", "cause", "hint", "hint_title"))] = s.value
    return out


def test_latest_exit_per_host_with_the_newest_hint_title(store: Store) -> None:
    store.insert_events([
        ev("a", ago=timedelta(minutes=9), pull=False),
        ev("b", ago=timedelta(minutes=2)),
        ev("c", ago=timedelta(minutes=5), host="pi-2"),
    ])
    title = "Pull the linux/arm64 variant of the image"
    assert scrape(store) == {
        ("shop/web:2", "pi-1", "arch_mismatch", "pull_platform", title): (NOW - timedelta(minutes=2)).timestamp(),
        ("shop/web:2", "pi-2", "arch_mismatch", "pull_platform", title): (NOW - timedelta(minutes=5)).timestamp(),
    }


def test_exits_older_than_30_minutes_and_backfilled_exits_are_left_out(store: Store) -> None:
    store.insert_events([
        ev("old", ago=timedelta(minutes=31)),
        ev("before-agent", ago=timedelta(minutes=1), host="pi-3", backfilled=True),
    ])
    assert scrape(store) == {}


def test_same_value_on_every_replica_and_after_a_restart(db: str) -> None:
    r1, r2 = open_store(db, "r1"), open_store(db, "r2")
    try:
        r1.insert_events([ev("a", ago=timedelta(minutes=3))])
        r2.insert_events([ev("b", ago=timedelta(minutes=1), host="pi-2")])
        assert scrape(r1) == scrape(r2) != {}
        before = scrape(r1)
    finally:
        r1.close()
        r2.close()
    restarted = open_store(db, "r1")
    try:
        assert scrape(restarted) == before
    finally:
        restarted.close()


def test_each_series_names_the_hostname_the_agent_reported(store: Store) -> None:
    store.upsert_host("3cf1f58c0e7a4c5d9b2a", "linux/arm64", {"host_id": "3cf1f58c0e7a4c5d9b2a", "hostname": "kitchen-pi"},
                      seen=NOW)
    store.upsert_host("pi-2", "linux/arm64", {"host_id": "pi-2", "hostname": "x" * 500}, seen=NOW)
    store.insert_events([ev("a", ago=timedelta(minutes=3), host="3cf1f58c0e7a4c5d9b2a"),
                         ev("b", ago=timedelta(minutes=2), host="pi-2"),
                         ev("c", ago=timedelta(minutes=1), host="forgotten")])
    registry = CollectorRegistry()
    registry.register(FleetCollector(store, Stats(), max_image_labels=200, clock=lambda: NOW))
    names = {s.labels["host"]: s.labels["hostname"] for f in registry.collect() for s in f.samples if s.name == NAME}
    assert names == {"3cf1f58c0e7a4c5d9b2a": "kitchen-pi", "pi-2": "x" * 200, "forgotten": ""}


def test_images_past_the_label_cap_fold_into_other(store: Store) -> None:
    store.insert_events([ev("a", ago=timedelta(minutes=3)), ev("b", ago=timedelta(minutes=1), image="shop/late:1")])
    assert {k[0] for k in scrape(store, cap=1)} == {"shop/web:2", "_other"}
