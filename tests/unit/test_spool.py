import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.delivery.spool import Eviction, Spool, SpoolStats, plan_eviction
from agent.errors import SpoolError
from tests import require

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def spool(tmp_path: Path, clock: FakeClock) -> Iterator[Spool]:
    s = Spool(tmp_path / "state" / "spool.db", clock=clock)
    yield s
    s.close()


def ids(events: list) -> list[str]:
    return [e.event_id for e in events]


# -- pure eviction planning -----------------------------------------------------------


def test_plan_eviction_nothing_when_it_fits() -> None:
    plan = plan_eviction([(1, 5)], events=1, nbytes=5, new_size=5, max_events=2, max_bytes=10)
    assert plan == Eviction(0, 0, 0)


def test_plan_eviction_by_count_and_by_bytes() -> None:
    rows = [(3, 4), (4, 4), (9, 4)]
    by_count = plan_eviction(rows, events=3, nbytes=12, new_size=1, max_events=3, max_bytes=100)
    assert by_count == Eviction(count=1, last_seq=3, freed_bytes=4)
    by_bytes = plan_eviction(rows, events=3, nbytes=12, new_size=9, max_events=10, max_bytes=13)
    assert by_bytes == Eviction(count=2, last_seq=4, freed_bytes=8)


# -- events ---------------------------------------------------------------------------


def test_put_peek_ack_keep_order(spool: Spool, clock: FakeClock) -> None:
    for n, event_id in enumerate(["a", "b", "c"]):
        clock.now = 1000.0 + n
        assert spool.put(event_id, event_id.encode() * 3) is True

    first_two = spool.peek(2)
    assert ids(first_two) == ["a", "b"]
    assert first_two[0].payload == b"aaa"
    assert first_two[0].enqueued_at == 1000.0
    assert ids(spool.peek(10)) == ["a", "b", "c"]
    assert ids(spool.peek(10, after=first_two[-1].seq)) == ["c"]
    assert spool.peek(0) == []

    assert spool.ack(["a", "c", "c", "never-spooled"]) == 2
    assert ids(spool.peek(10)) == ["b"]
    assert spool.ack([]) == 0
    assert spool.stats() == SpoolStats(events=1, bytes=3, dropped_total=0)


def test_duplicate_put_is_refused_and_stored_once(spool: Spool) -> None:
    assert spool.put("e1", b"first") is True
    assert spool.put("e1", b"second") is False
    assert [(e.event_id, e.payload) for e in spool.peek(10)] == [("e1", b"first")]
    assert spool.stats() == SpoolStats(events=1, bytes=5, dropped_total=0)


def test_full_by_count_drops_oldest_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "spool.db", max_events=3) as spool:
        for n in range(5):
            assert spool.put(f"e{n}", b"x")
        assert ids(spool.peek(10)) == ["e2", "e3", "e4"]
        assert spool.stats() == SpoolStats(events=3, bytes=3, dropped_total=2)
    assert "dropped the 1 oldest events" in caplog.text


def test_full_by_bytes_drops_oldest_and_counts(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=10) as spool:
        spool.put("a", b"1234")
        spool.put("b", b"1234")
        spool.put("c", b"1234")  # 12 > 10: "a" goes
        assert ids(spool.peek(10)) == ["b", "c"]
        spool.put("d", b"12345678")  # needs both "b" and "c" gone
        assert ids(spool.peek(10)) == ["d"]
        assert spool.stats() == SpoolStats(events=1, bytes=8, dropped_total=3)


def test_payload_larger_than_the_spool_is_dropped_and_counted(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=10) as spool:
        spool.put("a", b"1234")
        assert spool.put("huge", b"x" * 11) is False
        assert ids(spool.peek(10)) == ["a"]
        assert spool.stats().dropped_total == 1


def test_contents_and_dropped_total_survive_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_events=2, clock=clock) as spool:
        for event_id in ["a", "b", "c"]:
            spool.put(event_id, b"payload-" + event_id.encode())
        spool.ack(["b"])
    with Spool(path, max_events=2, clock=clock) as spool:
        assert [(e.event_id, e.payload, e.enqueued_at) for e in spool.peek(10)] == [
            ("c", b"payload-c", clock.now)
        ]
        assert spool.stats() == SpoolStats(events=1, bytes=9, dropped_total=1)


def test_sequence_never_goes_back_even_when_emptied_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spool.put("a", b"1")
        (a,) = spool.peek(1)
        spool.ack(["a"])
    with Spool(path) as spool:
        spool.put("b", b"2")
        (b,) = spool.peek(1, after=0)
        assert b.seq > a.seq
        assert ids(spool.peek(10, after=a.seq)) == ["b"]


def test_put_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from agent.delivery.spool import Spool\n"
        f"s = Spool(Path({str(path)!r}))\n"
        "for n in range(200):\n"
        "    s.put(f'e{n}', b'p' * 100)\n"
        "print('done', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "done"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    with Spool(path) as spool:
        assert ids(spool.peek(1000)) == [f"e{n}" for n in range(200)]
        assert spool.stats().events == 200


def test_concurrent_puts_from_threads_all_land(spool: Spool) -> None:
    def worker(t: int) -> None:
        for n in range(25):
            spool.put(f"t{t}-{n}", b"x")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert spool.stats().events == 100
    assert len(set(ids(spool.peek(1000)))) == 100


def test_closed_spool_says_so(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.close()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.put("a", b"1")


def test_a_failed_write_is_remembered_until_one_succeeds(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.put("a", b"1")
    assert not spool.write_failed
    spool.close()
    with pytest.raises(SpoolError):
        spool.put("b", b"2")
    assert spool.write_failed  # heartbeats report spool_writable=false


# -- unusable files and directories ---------------------------------------------------


def corrupt_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".corrupt-" in p.name)


def test_garbage_file_is_moved_aside_with_its_wal(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    garbage = bytes(range(256)) * 16
    path.write_bytes(garbage)
    (tmp_path / "spool.db-wal").write_bytes(b"old wal")
    clock.now = 1_700_000_000.0  # 2023-11-14T22:13:20Z

    with caplog.at_level(logging.WARNING, logger="agent.delivery.spool"):
        spool = Spool(path, clock=clock)
    with spool:
        assert spool.put("a", b"1") is True
        assert ids(spool.peek(10)) == ["a"]

    aside = tmp_path / "spool.db.corrupt-20231114T221320Z"
    assert aside.read_bytes() == garbage
    assert (tmp_path / "spool.db.corrupt-20231114T221320Z-wal").read_bytes() == b"old wal"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].spool_path == str(path)  # type: ignore[attr-defined]
    assert warnings[0].moved_to == str(aside)  # type: ignore[attr-defined]


def test_truncated_spool_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        for n in range(100):
            spool.put(f"e{n}", b"x" * 2000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Spool(path) as spool:
        assert spool.stats() == SpoolStats(0, 0, 0)
    assert len(corrupt_files(tmp_path)) == 1


def test_foreign_sqlite_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with Spool(path) as spool:
        assert spool.put("a", b"1")
    (aside,) = corrupt_files(tmp_path)
    conn = sqlite3.connect(tmp_path / aside)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("customers",)]
    conn.close()


def test_two_moves_in_the_same_second_do_not_collide(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "spool.db"
    for _ in range(2):
        path.write_bytes(b"not a database at all" * 10)
        Spool(path, clock=clock).close()
    assert len(corrupt_files(tmp_path)) == 2


def test_directory_in_place_of_the_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.mkdir()
    (path / "something").write_text("kept")
    with Spool(path) as spool:
        assert spool.put("a", b"1")
    (aside,) = corrupt_files(tmp_path)
    assert (tmp_path / aside / "something").read_text() == "kept"


def test_state_dir_under_a_regular_file_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(SpoolError, match=r"not-a-dir.*--state-dir"):
        Spool(blocker / "state" / "spool.db")


# An unprivileged user, as the agent runs under systemd (User=enoexec): root writes through directory
# permissions, so as root (CI) the check runs in a child process with nobody's uid and gid (setpriv, util-linux).
NOBODY = 65534
_TRY_SPOOL = """
import sys
from agent.delivery.spool import Spool
from agent.errors import SpoolError
from tests import require
try:
    Spool(sys.argv[1])
except SpoolError as e:
    print(e)
    sys.exit(3)
"""


def test_unwritable_state_dir_raises(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        state = tmp_path / "state"
        state.mkdir(mode=0o500)
        try:
            with pytest.raises(SpoolError, match=r"not writable.*--state-dir"):
                Spool(state / "spool.db")
        finally:
            state.chmod(0o700)
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        require.missing("setpriv not found (apt-get install util-linux): the test runs as an unprivileged user")
    # tmp_path's parents are root's alone (0700): nobody needs a path it can walk to its own state directory
    base = Path(tempfile.mkdtemp(prefix="enoexec-spool-"))
    try:
        base.chmod(0o755)
        state = base / "state"
        state.mkdir(mode=0o500)
        os.chown(state, NOBODY, NOBODY)
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
             sys.executable, "-c", _TRY_SPOOL, str(state / "spool.db")],
            capture_output=True, text=True, timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert out.returncode == 3, out.stdout + out.stderr
        assert re.search(r"not writable.*--state-dir", out.stdout), out.stdout
        assert not (state / "spool.db").exists()
    finally:
        shutil.rmtree(base)


def test_rejects_nonsense_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "spool.db", max_events=0)
    with pytest.raises(ValueError):
        Spool(tmp_path / "spool.db", synchronous="OFF")


# -- state and seen -------------------------------------------------------------------


def test_state_get_set_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        assert spool.get_state("events_since") is None
        spool.set_state("events_since", "1700000000")
        spool.set_state("events_since", "1700000100")
        assert spool.get_state("events_since") == "1700000100"
    with Spool(path) as spool:
        assert spool.get_state("events_since") == "1700000100"


def test_mark_seen_and_prune_seen(spool: Spool, clock: FakeClock) -> None:
    clock.now = 1000.0
    assert spool.is_seen("c1@t1") is False
    assert spool.mark_seen("c1@t1") is True
    assert spool.is_seen("c1@t1") is True
    assert spool.mark_seen("c1@t1") is False
    clock.now = 2000.0
    assert spool.mark_seen("c2@t2") is True

    assert spool.prune_seen(older_than=1500.0) == 1
    assert spool.mark_seen("c1@t1") is True  # forgotten, so new again
    assert spool.prune_seen(older_than=0.0) == 0


def test_seen_keys_expire_after_the_ttl(tmp_path: Path, clock: FakeClock) -> None:
    day = 24 * 3600.0
    with Spool(tmp_path / "spool.db", clock=clock) as spool:
        spool.mark_seen("old")
        clock.now += 3 * day
        spool.mark_seen("recent")
        clock.now += 5 * day  # "old" is 8 days old, "recent" 5
        spool.mark_seen("trigger")
        assert spool.mark_seen("recent") is False
        assert spool.mark_seen("old") is True


def test_empty_file_becomes_a_spool_without_being_moved(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.touch()
    with Spool(path) as spool:
        assert spool.put("a", b"1")
    assert corrupt_files(tmp_path) == []


def test_seen_between_and_wal_truncated_when_the_spool_empties(tmp_path) -> None:
    from agent.delivery.spool import Spool

    with Spool(tmp_path / "s.db") as spool:
        spool.mark_seen_many(["c1@2026-01-01T00:00:01.000000+00:00", "c1@2026-01-01T00:00:00.500000+00:00~state"])
        assert spool.seen_between("c1@2026-01-01T00:00:00.900000+00:00", "c1@2026-01-01T00:00:02.000000+00:00")
        assert not spool.seen_between("c1@2026-01-01T00:00:01.100000+00:00", "c1@2026-01-01T00:00:09.000000+00:00")
        for n in range(50):
            spool.put(f"e{n}", b"x" * 2000)
        wal = tmp_path / "s.db-wal"
        assert wal.stat().st_size > 0
        spool.ack(f"e{n}" for n in range(50))
        assert wal.stat().st_size == 0
