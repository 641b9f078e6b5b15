"""collector.store.store against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from collector.errors import ConfigError, StoreError
from collector.ingest import ingest
from collector.store.migrations import STEPS
from collector.store.records import EventRecord, ExitCount, HostExitCount
from collector.store.schema import database_url, schema_version
from collector.store.store import Store
from enoexec.eventjson import to_json
from enoexec.v1 import enoexec_pb2 as pb
from tests.pg import free_port

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def wire_event(
    event_id: str,
    *,
    minutes: int = 0,
    host: str = "h1",
    host_platform: str = "linux/arm64",
    image: str = "app:1",
    image_platform: str = "linux/amd64",
    binary_platform: str = "linux/amd64",
    cause: str = "arch_mismatch",
) -> pb.Event:
    ev = pb.Event(
        event_id=event_id,
        host=pb.HostFacts(host_id=host, platform=host_platform, kernel_release="6.1.0"),
        container=pb.ContainerFacts(id="c" * 12, name="c", exit_code=255, runtime_message="exec /app: exec format error"),
        image=pb.ImageFacts(ref=image, declared_platform=image_platform),
        binary=pb.BinaryFacts(path="/app", kind="elf", platform=binary_platform),
        cause=cause,
    )
    ev.time.FromDatetime(T0 + timedelta(minutes=minutes))
    return ev


def event(event_id: str, *, hint: str = "", **kw: object) -> EventRecord:
    """A stored record made the way ingest makes it; ``hint`` overrides the chosen hint id."""
    rec = ingest.record(wire_event(event_id, **kw))  # type: ignore[arg-type]
    return dataclasses.replace(rec, hint_id=hint) if hint else rec


def ids(payloads: list[dict]) -> list[str]:
    return [p["event_id"] for p in payloads]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- events and counters --------------------------------------------------------


def test_insert_reports_new_and_duplicate_in_one_batch_and_across_calls(open_store):
    store = open_store()
    assert store.insert_events([event("b"), event("a"), event("b")]) == [True, True, False]
    assert store.insert_events([event("a"), event("c")]) == [False, True]
    assert store.insert_events([]) == []
    assert sorted(ids(store.events())) == ["a", "b", "c"]


def test_counters_count_only_new_events_and_survive_reopen(open_store, store_url):
    store = open_store(replica_id="r1")
    store.insert_events([event("a"), event("b", host="h2"), event("c", cause="missing_shebang", hint="add_shebang")])
    store.insert_events([event("a"), event("b", host="h2")])  # replays
    store.close()

    reopened = open_store(replica_id="r1")
    assert reopened.exit_counts() == [
        ExitCount("arch_mismatch", "linux/arm64", "linux/amd64", "linux/amd64", "app:1", 2),
        ExitCount("missing_shebang", "linux/arm64", "linux/amd64", "linux/amd64", "app:1", 1),
    ]
    assert reopened.host_exit_counts() == [
        HostExitCount("h1", "linux/arm64", 2),
        HostExitCount("h2", "linux/arm64", 1),
    ]
    assert reopened.exit_counts(replica_id="other") == []


def test_two_replicas_detect_duplicates_and_count_only_their_own(open_store):
    one = open_store(replica_id="r1")
    two = open_store(replica_id="r2")
    assert one.insert_events([event("a"), event("b")]) == [True, True]
    assert two.insert_events([event("b"), event("c"), event("d")]) == [False, True, True]

    assert [c.count for c in one.exit_counts()] == [2]
    assert [c.count for c in two.exit_counts()] == [2]
    assert one.exit_counts("r2") == two.exit_counts()
    total = sum(c.count for c in one.exit_counts()) + sum(c.count for c in two.exit_counts())
    assert total == len(one.events()) == 4


def test_replicas_inserting_overlapping_batches_at_once_count_each_event_once(open_store):
    stores = [open_store(replica_id=f"r{i}") for i in range(3)]
    batches = [[event(f"e{n:03d}", minutes=n % 7, host=f"h{n % 4}") for n in range(start, start + 40)]
               for start in range(0, 120, 10)]  # each event is in up to 4 batches
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def insert(store: Store) -> None:
        barrier.wait(timeout=30)
        try:
            for batch in batches:
                store.insert_events(batch)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=insert, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    distinct = len({e.event_id for batch in batches for e in batch})
    assert sum(c.count for s in stores for c in s.exit_counts()) == distinct == 150
    assert sum(c.count for s in stores for c in s.host_exit_counts()) == distinct
    assert len(stores[0].events(limit=1000)) == distinct


def test_naive_datetime_is_refused(open_store):
    store = open_store()
    with pytest.raises(ValueError, match="naive datetime"):
        store.events(since=datetime(2024, 5, 1, 12, 0))


def test_events_filters_limit_and_newest_first(open_store):
    store = open_store()
    store.insert_events(
        [
            event("e1", minutes=0, host="h1", image="app:1", cause="arch_mismatch"),
            event("e2", minutes=5, host="h2", image="app:1", cause="missing_shebang"),
            event("e3", minutes=10, host="h1", image="web:2", cause="arch_mismatch"),
            event("e4", minutes=10, host="h2", image="web:2", cause="empty_file"),  # same time as e3
        ]
    )
    assert ids(store.events()) == ["e4", "e3", "e2", "e1"]
    assert ids(store.events(limit=2)) == ["e4", "e3"]
    assert ids(store.events(host="h1")) == ["e3", "e1"]
    assert ids(store.events(image="app:1")) == ["e2", "e1"]
    assert ids(store.events(cause="arch_mismatch")) == ["e3", "e1"]
    assert ids(store.events(since=T0 + timedelta(minutes=5))) == ["e4", "e3", "e2"]
    assert ids(store.events(host="h2", cause="empty_file", image="web:2")) == ["e4"]
    assert store.events(host="nobody") == []
    newest = store.events()[0]
    expected = to_json(wire_event("e4", minutes=10, host="h2", image="web:2", cause="empty_file"))
    assert {k: v for k, v in newest.items() if k != "hint"} == expected
    assert newest["hint"]["id"] == "fix_empty_file"


def test_events_since_compares_instants_not_local_time(open_store):
    store = open_store()
    store.insert_events([event("e1", minutes=0), event("e2", minutes=60)])
    plus_two = timezone(timedelta(hours=2))
    assert ids(store.events(since=datetime(2024, 5, 1, 14, 30, tzinfo=plus_two))) == ["e2"]


def test_image_first_seen_oldest_first_and_kept_after_prune(open_store):
    store = open_store()
    store.insert_events([event("a", minutes=5, image="web:2"), event("b", minutes=1, image="app:1")])
    store.insert_events([event("c", minutes=9, image="web:2"), event("d", minutes=7, image="db:3")])
    expected = [
        ("app:1", T0 + timedelta(minutes=1)),
        ("web:2", T0 + timedelta(minutes=5)),
        ("db:3", T0 + timedelta(minutes=7)),
    ]
    assert store.image_first_seen() == expected
    assert store.prune(T0 + timedelta(hours=1)) == 4
    assert store.image_first_seen() == expected


def test_prune_deletes_old_events_and_leaves_counters(open_store):
    store = open_store()
    store.insert_events([event("old", minutes=0), event("new", minutes=30)])
    before = store.exit_counts()
    assert store.prune(T0 + timedelta(minutes=10)) == 1
    assert ids(store.events()) == ["new"]
    assert store.exit_counts() == before == [
        ExitCount("arch_mismatch", "linux/arm64", "linux/amd64", "linux/amd64", "app:1", 2)
    ]
    assert store.prune(T0) == 0


def test_hint_groups_aggregate_by_image_cause_and_host_platform(open_store):
    store = open_store()
    store.insert_events(
        [
            event("a1", minutes=0, host="h1", hint="pull_platform"),
            event("a2", minutes=1, host="h2"),
            event("a3", minutes=2, host="h1", hint="rebuild_multiplatform"),
            event("a4", minutes=3, host="h3"),
            event("a5", minutes=4, host="h4", hint="rebuild_multiplatform"),
            event("b1", minutes=2, host="h9", host_platform="linux/amd64", cause="missing_shebang",
                  hint="add_shebang"),
        ]
    )
    latest, older = store.hint_groups(example_hosts=3)
    assert (latest.image, latest.cause, latest.host_platform) == ("app:1", "arch_mismatch", "linux/arm64")
    assert latest.hint_id == "rebuild_multiplatform"
    assert (latest.hosts, latest.exits) == (4, 5)
    assert (latest.first_seen, latest.last_seen) == (T0, T0 + timedelta(minutes=4))
    assert latest.example_hosts == ("h4", "h3", "h1")
    assert latest.sample["event_id"] == "a5"

    assert (older.cause, older.host_platform, older.hosts, older.exits) == ("missing_shebang", "linux/amd64", 1, 1)
    assert older.example_hosts == ("h9",)
    assert older.hint_id == "add_shebang"
    assert store.hint_groups(example_hosts=0)[0].example_hosts == ()
    lean = store.hint_groups(example_hosts=0, samples=False)
    assert [(g.image, g.hint_id, g.exits) for g in lean] == [(g.image, g.hint_id, g.exits) for g in (latest, older)]
    assert all(g.sample == {} for g in lean)


def test_hint_groups_empty_store(open_store):
    assert open_store().hint_groups() == []


# -- hosts ------------------------------------------------------------------------


def test_upsert_host_inserts_then_updates_keeping_first_seen(open_store):
    clock = Clock(T0)
    store = open_store(clock=clock)
    store.upsert_host("h1", "linux/arm64", {"kernel": "6.1"}, seen=T0, connected=True, spool_events=3)
    store.upsert_host("h1", "linux/arm64", {"kernel": "6.6"}, seen=T0 + timedelta(seconds=30), dropped_total=2)
    clock.now = T0 + timedelta(seconds=40)
    (host,) = store.hosts()
    assert host.host_id == "h1" and host.platform == "linux/arm64"
    assert host.facts == {"kernel": "6.6"}
    assert (host.first_seen, host.last_seen) == (T0, T0 + timedelta(seconds=30))
    assert (host.connected, host.spool_events, host.dropped_total) == (True, 3, 2)


def test_host_goes_stale_without_touch(open_store):
    clock = Clock(T0)
    store = open_store(clock=clock, stale_after=timedelta(seconds=90))
    store.upsert_host("h1", "linux/amd64", {}, seen=T0, connected=True)
    clock.now = T0 + timedelta(seconds=91)
    assert [h.connected for h in store.hosts()] == [False]
    store.touch_host("h1", seen=T0 + timedelta(seconds=91), spool_events=7, dropped_total=1)
    (host,) = store.hosts()
    assert (host.connected, host.spool_events, host.dropped_total) == (True, 7, 1)
    store.touch_host("unknown", seen=T0)  # ignored
    assert [h.host_id for h in store.hosts()] == ["h1"]


def test_disconnect_only_by_the_holding_replica(open_store):
    clock = Clock(T0)
    one = open_store(replica_id="r1", clock=clock)
    two = open_store(replica_id="r2", clock=clock)
    one.upsert_host("h1", "linux/amd64", {}, seen=T0, connected=True)
    two.upsert_host("h1", "linux/amd64", {}, seen=T0, connected=False)  # r2 does not hold it
    assert [h.connected for h in one.hosts()] == [True]

    two.upsert_host("h1", "linux/amd64", {}, seen=T0, connected=True)  # agent moved to r2
    one.disconnect_all()  # r1 no longer holds it
    assert [h.connected for h in one.hosts()] == [True]
    two.upsert_host("h1", "linux/amd64", {}, seen=T0, connected=False)
    assert [h.connected for h in one.hosts()] == [False]


def test_disconnect_all_releases_this_replicas_hosts(open_store):
    clock = Clock(T0)
    one = open_store(replica_id="r1", clock=clock)
    two = open_store(replica_id="r2", clock=clock)
    one.upsert_host("h1", "linux/amd64", {}, seen=T0, connected=True)
    one.upsert_host("h2", "linux/arm64", {}, seen=T0, connected=True)
    two.upsert_host("h3", "linux/arm/v7", {}, seen=T0, connected=True)
    one.disconnect_all()
    assert {h.host_id: h.connected for h in two.hosts()} == {"h1": False, "h2": False, "h3": True}


# -- opening, migrations, errors ------------------------------------------------


def schema_versions(store_url: str) -> list[int]:
    engine = create_engine(database_url(store_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(schema_version.c.version).order_by(schema_version.c.version)).scalars())
    finally:
        engine.dispose()


def test_migrations_are_recorded_once_across_reopens(open_store, store_url):
    open_store().close()
    open_store().close()
    store = open_store()
    store.ping()
    assert schema_versions(store_url) == [s.version for s in STEPS]


def test_replicas_opening_at_once_both_migrate_cleanly(open_store, store_url):
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait(timeout=30)
        try:
            open_store()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert schema_versions(store_url) == [s.version for s in STEPS]


def test_sqlite_is_in_wal_mode(tmp_path: Path):
    store = Store(str(tmp_path / "db" / "x.db"))
    try:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.execute(select(func.count()).select_from(schema_version)).scalar() == len(STEPS)
    finally:
        store.close()
    assert (tmp_path / "db" / "x.db").exists()


@pytest.mark.parametrize(
    "url",
    ["", "   ", "mysql://u@localhost/db", "redis://localhost:6379", "sqlite://", "sqlite:///:memory:", "http://x"],
)
def test_bad_database_url_is_a_config_error(url: str):
    with pytest.raises(ConfigError) as info:
        Store(url)
    assert "\n" not in str(info.value)


def test_sqlite_parent_that_cannot_be_created_is_a_config_error(tmp_path: Path):
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create directory"):
        Store(str(tmp_path / "afile" / "sub" / "enoexec.db"))


def test_sqlite_path_that_is_a_directory_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="is a directory"):
        Store(str(tmp_path))


def test_postgres_urls_are_converted_to_psycopg():
    assert database_url("postgresql://u:pw@db:5432/enoexec").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@db/enoexec").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@db/enoexec").drivername == "postgresql+psycopg"


def test_unreachable_postgres_is_a_store_error_without_password():
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as info:
        Store(f"postgresql://enoexec:s3cret@127.0.0.1:{port}/enoexec?connect_timeout=2")
    assert "s3cret" not in str(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # needs a server that can be taken away
def test_ping_after_postgres_goes_away_is_a_store_error(open_store, store_url):
    assert store_url.startswith("postgresql://")
    import psycopg

    store = open_store()
    store.ping()
    admin = store_url.rpartition("/")[0] + "/postgres"
    name = store_url.rpartition("/")[2]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    with pytest.raises(StoreError):
        store.ping()


# -- upgrading a schema-1 database ------------------------------------------------------


def make_schema_1_database(url: str) -> None:
    """A database as the schema-1 collector left it: events with their whole JSON,
    counters, images, hosts, and version 1 recorded."""
    from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

    from collector.store.schema import UTCDateTime

    md = MetaData()
    version = Table("schema_version", md, Column("version", Integer, primary_key=True, autoincrement=False),
                    Column("description", String, nullable=False), Column("applied_at", UTCDateTime, nullable=False))
    ev = Table("events", md, Column("event_id", String, primary_key=True), Column("time", UTCDateTime, nullable=False),
               *[Column(c, String, nullable=False) for c in ("host_id", "host_platform", "image_ref", "image_platform",
                                                             "binary_platform", "cause", "hint_id")],
               Column("payload", Text, nullable=False), Column("replica_id", String, nullable=False),
               Index("ix_events_time", "time"), Index("ix_events_host_id", "host_id"),
               Index("ix_events_image_ref", "image_ref"), Index("ix_events_cause", "cause"))
    Table("exit_counts", md, *[Column(c, String, primary_key=True) for c in (
        "replica_id", "cause", "host_platform", "image_platform", "binary_platform", "image")],
        Column("count", BigInteger, nullable=False))
    Table("host_exit_counts", md, *[Column(c, String, primary_key=True) for c in ("replica_id", "host", "host_platform")],
          Column("count", BigInteger, nullable=False))
    Table("images", md, Column("image_ref", String, primary_key=True), Column("first_seen", UTCDateTime, nullable=False))
    Table("hosts", md, Column("host_id", String, primary_key=True), Column("platform", String, nullable=False),
          Column("facts", Text, nullable=False), Column("first_seen", UTCDateTime, nullable=False),
          Column("last_seen", UTCDateTime, nullable=False), Column("connected_replica", String, nullable=True),
          Column("spool_events", BigInteger, nullable=False), Column("dropped_total", BigInteger, nullable=False))
    engine = create_engine(database_url(url))
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            conn.execute(version.insert().values(version=1, description="events, counters, images and hosts", applied_at=T0))
            for i, (host, minutes, hint) in enumerate([("h1", 0, "pull_platform"), ("h2", 5, "rebuild_multiplatform"),
                                                       ("h1", 9, "rebuild_multiplatform")]):
                payload = {"event_id": f"old{i}", "host": {"host_id": host}, "cause": "arch_mismatch",
                           "hint": {"id": hint, "title": "t", "text": "x", "commands": []}}
                conn.execute(ev.insert().values(
                    event_id=f"old{i}", time=T0 + timedelta(minutes=minutes), host_id=host, host_platform="linux/arm64",
                    image_ref="app:1", image_platform="linux/amd64", binary_platform="linux/amd64",
                    cause="arch_mismatch", hint_id=hint, payload=json.dumps(payload), replica_id="r1"))
    finally:
        engine.dispose()


def test_a_schema_1_database_is_upgraded_in_place(open_store, store_url):
    make_schema_1_database(store_url)
    store = open_store(replica_id="r1")
    assert schema_versions(store_url) == [1, 2, 3, 4]
    # events stored before the failure kind existed are exec format errors
    assert {r.host for r in store.recent_exits(T0 - timedelta(hours=1))} == {"h1", "h2"}
    assert store.recent_exits(T0 - timedelta(hours=1), failure="start_failure") == []

    # old events read as they were stored; hint groups were built from them
    assert ids(store.events()) == ["old2", "old1", "old0"]
    assert store.events()[0]["hint"]["id"] == "rebuild_multiplatform"
    (group,) = store.hint_groups()
    assert (group.hosts, group.exits, group.hint_id) == (2, 3, "rebuild_multiplatform")
    assert (group.first_seen, group.last_seen, group.example_hosts) == (T0, T0 + timedelta(minutes=9), ("h1", "h2"))
    assert group.sample["event_id"] == "old2"

    # new events go in the new form beside them, and fold into the same group
    assert store.insert_events([event("new", minutes=20, host="h3"), event("old1")]) == [True, False]
    assert ids(store.events()) == ["new", "old2", "old1", "old0"]
    assert store.events()[0]["host"]["host_id"] == "h3"
    (group,) = store.hint_groups()
    assert (group.hosts, group.exits, group.example_hosts[0]) == (3, 4, "h3")
    store.close()
    open_store(replica_id="r1").close()  # reopening finds nothing left to do
    assert schema_versions(store_url) == [1, 2, 3, 4]


def test_prune_recomputes_the_hint_groups_it_shortened(open_store):
    store = open_store()
    store.insert_events([event("a", minutes=0, host="h1"), event("b", minutes=10, host="h2"),
                         event("c", minutes=20, host="h2"), event("z", minutes=0, image="gone:1")])
    assert store.prune(T0 + timedelta(minutes=5)) == 2
    (group,) = store.hint_groups()
    assert (group.image, group.hosts, group.exits, group.first_seen) == ("app:1", 1, 2, T0 + timedelta(minutes=10))
    assert group.example_hosts == ("h2",)


def test_one_write_stores_an_event_carried_twice_once(open_store):
    store = open_store()
    assert store.write([event("a"), event("b"), event("a", host="h2")]) == {"a", "b"}
    assert store.write([event("a"), event("c")]) == {"c"}
    assert [c.count for c in store.exit_counts()] == [3]


def test_hosts_page_by_host_id(open_store):
    store = open_store()
    for n in range(7):
        store.upsert_host(f"h{n}", "linux/amd64", {"n": n}, seen=T0, connected=True)
    assert [h.host_id for h in store.hosts(limit=3)] == ["h0", "h1", "h2"]
    assert [h.host_id for h in store.hosts(limit=3, after="h2")] == ["h3", "h4", "h5"]
    assert [h.host_id for h in store.hosts(limit=3, after="h5")] == ["h6"]
    assert [h.facts for h in store.hosts(limit=2, facts=False)] == [{}, {}]


def test_backfilled_exits_are_stored_but_not_counted(open_store):
    store = open_store()
    old = dataclasses.replace(event("old", minutes=0), backfilled=True)
    assert store.insert_events([old, event("new", minutes=1)]) == [True, True]
    assert sorted(ids(store.events())) == ["new", "old"]
    assert [c.count for c in store.exit_counts()] == [1]
    assert [c.count for c in store.host_exit_counts()] == [1]
