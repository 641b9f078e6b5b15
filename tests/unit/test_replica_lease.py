"""collector.replica.ReplicaLease on a real SQLite store, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.errors import ConfigError
from collector.ingest import ingest
from collector.replica import ReplicaLease
from collector.store.store import Store
from enoexec.v1 import enoexec_pb2 as pb

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep()


def lease(store: Store, replica_id: str, clock: Clock) -> ReplicaLease:
    return ReplicaLease(store, replica_id, clock=clock, sleep=clock.sleep, now=lambda: T0, ttl=10, retire_after=100)


def count(db: str, replica_id: str, n: int) -> None:
    events = []
    for i in range(n):
        ev = pb.Event(event_id=f"{replica_id}-{i}", host=pb.HostFacts(host_id="h1", platform="linux/amd64"),
                      cause="arch_mismatch", image=pb.ImageFacts(ref="app:1", declared_platform="linux/arm64"))
        ev.time.FromDatetime(T0)
        events.append(ingest.record(ev))
    writer = Store(db, replica_id=replica_id)  # that replica's own store, on the same file
    try:
        writer.write(events)
    finally:
        writer.close()


def exits(store: Store, replica_id: str) -> int:
    return sum(c.count for c in store.exit_counts(replica_id))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "r.db")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


def test_an_id_whose_holder_renews_is_refused_and_a_silent_one_taken_over(store: Store) -> None:
    clock = Clock()
    live = lease(store, "r1", clock)
    live.claim()
    clock.on_sleep = live.tick  # the holder renews while the newcomer watches
    with pytest.raises(ConfigError, match="--replica-id r1: a live collector replica"):
        lease(store, "r1", clock).claim()
    clock.on_sleep = lambda: None  # killed: its lease stands still
    taker = lease(store, "r1", clock)
    taker.claim()
    assert clock.now >= 10
    live.release()  # the old holder cannot release what it no longer holds
    clock.on_sleep = taker.tick
    with pytest.raises(ConfigError):
        lease(store, "r1", clock).claim()


def test_a_new_id_folds_released_and_silent_ids_and_a_returning_id_keeps_its_rows(store: Store, db: str) -> None:
    clock = Clock()
    a1, b1 = lease(store, "a1", clock), lease(store, "b1", clock)
    a1.claim()
    b1.claim()
    count(db, "a1", 3)
    count(db, "b1", 2)
    a1.release()
    a2 = lease(store, "a2", clock)
    a2.claim()  # a successor: a1 stopped cleanly, so its rows are a2's before it serves
    assert (exits(store, "a1"), exits(store, "a2"), exits(store, "b1")) == (0, 3, 2)

    # b1 keeps renewing: never folded, whatever the time.
    for _ in range(30):
        clock.now += 5
        b1.tick()
        a2.tick()
    assert exits(store, "b1") == 2
    # b1 comes back under its own id after a clean stop: its rows stay its own.
    b1.release()
    b1_again = lease(store, "b1", clock)
    b1_again.claim()
    a2.tick()
    assert (exits(store, "a2"), exits(store, "b1")) == (3, 2)
    # b1 scaled away (killed): after retire_after any live replica takes its rows.
    for _ in range(25):
        clock.now += 5
        a2.tick()
    assert (exits(store, "a2"), exits(store, "b1")) == (5, 0)
