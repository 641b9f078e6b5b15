"""Collector ingest throughput: events/s through real gRPC streams into the store.

    python benchmarks/ingest_bench.py [--quick] [--events N] [--streams 1,50] [--pg URL | --pg-auto]

Starts a real collector process on free loopback ports. Each configuration sends
the same number of events; every stream behaves like an agent (one batch in
flight, the next only after its ack). Printed per run: events/s, ack latency
p50/p99, and the exactness check (every event acknowledged once, the collector's
counters equal to the events sent, a replay of every stream's first batch counted
as duplicates and stored nothing). Baselines from the same run: one stream with
batches of 1 (a round trip and a commit per event), and a bare sqlite3
executemany of rows of the same shape (the floor no collector beats).
Goal (issue #12): >= 20,000 events/s with batches of 100, 1 stream and 50 streams.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import fleet, procs  # noqa: E402

GOAL = 20_000
PROFILE: list[str] = []  # where py-spy writes collapsed stacks of the collector (--profile)


def build(run_id: str, streams: int, events: int) -> list[tuple[object, list[object]]]:
    """Per stream: host facts and its events."""
    per = events // streams
    out = []
    for s in range(streams):
        facts = fleet.host(f"bench-{run_id}-{s:03d}", "linux/amd64", machine="x86_64", can_run_32bit=True,
                           emulators=["linux/arm64"])
        evs = [
            fleet.event(facts, f"{run_id}-{s:03d}-{i:07d}", cause="arch_mismatch", image=f"bench/img{i % 20}:1",
                        image_platform="linux/arm64", binary_platform="linux/arm64")
            for i in range(per)
        ]
        out.append((facts, evs))
    return out


@contextlib.contextmanager
def collector(db: str, tmp: str) -> Iterator[int]:
    g, h = procs.free_port(), procs.free_port()
    extra = ("--agent-rate", "1000000", "--agent-burst", "1000000", "--replica-id", f"bench-{uuid.uuid4().hex[:8]}",
             "--max-batch-events", "1000")
    p = procs.Proc(procs.collector_argv(db, g, h, *extra), Path(tmp) / f"c-{g}.log").start()
    try:
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz"), timeout=30, what="collector")
        p.grpc, p.http = g, h  # type: ignore[attr-defined]
        yield p  # type: ignore[misc]
    finally:
        p.stop()


def run(db: str, tmp: str, streams: int, events: int, batch: int) -> dict[str, float]:
    run_id = uuid.uuid4().hex[:6]
    fleet_data = build(run_id, streams, events)
    total = sum(len(evs) for _, evs in fleet_data)
    with collector(db, tmp) as p:
        agents = [fleet.ScriptedAgent(p.grpc, facts) for facts, _ in fleet_data]  # type: ignore[attr-defined]
        latencies: list[float] = []
        acked: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(streams + 1)

        def drive(agent: fleet.ScriptedAgent, evs: list[object]) -> None:
            mine, ids = [], []
            barrier.wait()
            try:
                for i in range(0, len(evs), batch):
                    t = time.perf_counter()
                    ack = agent.send(evs[i:i + batch])  # type: ignore[arg-type]
                    mine.append(time.perf_counter() - t)
                    ids.extend(ack.stored_event_ids)
            except BaseException as e:  # reported below
                errors.append(e)
            with lock:
                latencies.extend(mine)
                acked.extend(ids)

        threads = [threading.Thread(target=drive, args=(a, evs)) for a, (_, evs) in zip(agents, fleet_data, strict=True)]
        for t in threads:
            t.start()
        spy = None
        if PROFILE and batch > 1:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "250", "--nonblocking",
                                    "--format", "raw", "-o", f"{PROFILE[0]}-{streams}", "--pid", str(p.popen.pid)],  # type: ignore[attr-defined]
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        replay_dupes = 0
        for a, (_, evs) in zip(agents, fleet_data, strict=True):
            ack = a.send(evs[:batch])  # type: ignore[arg-type]
            replay_dupes += len(ack.stored_event_ids)
        for a in agents:
            a.close()
        text = procs.metrics(p.http)  # type: ignore[attr-defined]
        stored = procs.total(text, "enoexec_exits_total")
        received = procs.total(text, "enoexec_collector_events_received_total")
        duplicate = procs.total(text, "enoexec_collector_events_duplicate_total")
    exact = (not errors and len(acked) == len(set(acked)) == total and stored == total == received
             and duplicate == replay_dupes)
    lat = sorted(latencies) or [0.0]
    return {"rate": total / elapsed, "events": total, "p50": statistics.median(lat) * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "exact": float(exact)}


def sqlite_floor(tmp: str, events: int) -> float:
    """A bare sqlite3 executemany of rows shaped like the collector's, in one transaction."""
    con = sqlite3.connect(str(Path(tmp) / "floor.db"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE e (event_id TEXT PRIMARY KEY, time TEXT, host_id TEXT, image_ref TEXT, cause TEXT, body BLOB)")
    rows = [(f"floor-{i:07d}", "2026-11-29 06:00:00.000000", "bench-host", f"bench/img{i % 20}:1", "arch_mismatch",
             b"x" * 250) for i in range(events)]
    start = time.perf_counter()
    for i in range(0, events, 100):
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO e VALUES (?,?,?,?,?,?)", rows[i:i + 100])
        con.execute("COMMIT")
    rate = events / (time.perf_counter() - start)
    con.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run under a minute (2,000 events, 1 and 10 streams)")
    ap.add_argument("--events", type=int, default=20_000, help="events per configuration (default 20,000)")
    ap.add_argument("--streams", default="1,50", help="comma-separated stream counts (default 1,50)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--pg", help="also run against this PostgreSQL database URL")
    ap.add_argument("--pg-auto", action="store_true", help="also run against a private PostgreSQL server (tests/pg.py)")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], help="run one store only")
    ap.add_argument("--profile", metavar="FILE", help="run the collector under py-spy, collapsed stacks to FILE")
    args = ap.parse_args()
    if args.profile:
        PROFILE.append(args.profile)
    events, stream_counts = args.events, [int(s) for s in args.streams.split(",")]
    if args.quick:
        events, stream_counts = 2000, [1, 10]
    print(f"machine shared with other workloads: read ratios, not absolute figures. goal: >= {GOAL:,} events/s, exact")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        targets = [("sqlite", lambda n: str(Path(tmp) / f"bench-{n}.db"))]
        pg = args.pg
        if args.pg_auto:
            from tests.pg import create_database, running_postgres
            admin = stack.enter_context(running_postgres(tmp)).rpartition("/")[0] + "/postgres"
            targets.append(("postgresql", lambda n: create_database(admin, f"bench_{n}")))
        elif pg:
            targets.append(("postgresql", lambda n: pg))
        print(f"baseline: bare sqlite3 executemany, batches of 100: {sqlite_floor(tmp, events):,.0f} rows/s")
        print(f"{'store':<11} {'streams':>7} {'batch':>5} {'events':>7} {'events/s':>9} {'ack p50 ms':>10} {'ack p99 ms':>10} exact")
        n = 0
        for name, make_db in targets:
            if args.only and name != args.only:
                continue
            configs = [(1, 1, min(events, 1000))] + [(s, args.batch, events) for s in stream_counts]
            if not args.quick:
                configs.append((1, 500, events))  # the largest batch the collector accepts by default
            for streams, batch, count in configs:
                n += 1
                r = run(make_db(n), tmp, streams, count, batch)
                label = " (baseline)" if batch == 1 else ""
                print(f"{name:<11} {streams:>7} {batch:>5} {int(r['events']):>7} {r['rate']:>9,.0f} "
                      f"{r['p50']:>10.1f} {r['p99']:>10.1f} {'yes' if r['exact'] else 'NO'}{label}", flush=True)
                if not r["exact"]:
                    sys.exit(1)


if __name__ == "__main__":
    main()
