"""Scrape and API time against fleet size and stored events.

    python benchmarks/scrape_bench.py [--quick] [--sizes 1000:100000,10000:1000000]

For each HOSTS:EVENTS size, fills a fresh SQLite store through the collector's
own write path (every host 3 failing images out of 200, 3 causes), starts a real
collector process on it and times, over 5 requests each (median and max):
/metrics, the first page of /api/v1/hosts (1,000 hosts), every page of it,
/api/v1/hints and /api/v1/events?limit=100. Baseline from the same run:
/healthz (the HTTP round trip alone). Also printed: bytes per stored event
(database file after a checkpoint, divided by the events).
Goals (issue #12): /metrics <= 1 s and /api/v1/hosts <= 1 s with 10,000 hosts
and 10^6 events; <= 1 KiB per stored event.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.ingest import ingest
from collector.store import eventcodec  # noqa: E402
from collector.store.records import EventRecord, HostRow  # noqa: E402
from collector.store.store import Store  # noqa: E402
from enoexec.eventjson import to_json  # noqa: E402
from tests import fleet, procs  # noqa: E402

CAUSES = ("arch_mismatch", "no_32bit_support", "missing_shebang")
NOW = datetime.now(UTC)


def fill(db: str, hosts: int, events: int) -> float:
    """Hosts and events through Store.write; returns seconds spent writing."""
    store = Store(db, replica_id="bench")
    try:
        facts = [fleet.host(f"host-{h:05d}", "linux/amd64", machine="x86_64", can_run_32bit=True,
                            emulators=["linux/riscv64"]) for h in range(hosts)]
        store.write_hosts([HostRow(f.host_id, "linux/amd64", to_json(f), NOW, NOW, False, 0, 0) for f in facts])
        templates = {}
        for img in range(200):
            for cause in CAUSES:
                ev = fleet.event(facts[0], "template", cause=cause, image=f"registry.example.com/team/app{img}:1.{img % 7}",
                                 image_platform="linux/arm64", binary_platform="linux/arm64", available=["linux/arm64"])
                templates[img, cause] = ingest.record(ev)
        host_refs = [(eventcodec.ref(b), b) for b in (f.SerializeToString(deterministic=True) for f in facts)]
        spent = 0.0
        chunk: list[EventRecord] = []
        for i in range(events):
            h = i % hosts
            img = (h * 7 + (i // hosts) % 3) % 200
            t = templates[img, CAUSES[(i // hosts) % 3]]
            ref, hb = host_refs[h]
            chunk.append(EventRecord(
                event_id=f"host-{h:05d}:{i:012x}", time=NOW - timedelta(seconds=events - i), host_id=f"host-{h:05d}",
                host_platform="linux/amd64", image_ref=t.image_ref, image_platform=t.image_platform,
                binary_platform=t.binary_platform, cause=t.cause, hint_id=t.hint_id, body=t.body,
                host_ref=ref, host_facts=hb, image_facts_ref=t.image_facts_ref, image_facts=t.image_facts))
            if len(chunk) == 5000 or i == events - 1:
                start = time.perf_counter()
                store.write(chunk)
                spent += time.perf_counter() - start
                chunk = []
        return spent
    finally:
        store.close()


def timed(url: str, n: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = procs.http_get(url, timeout=120)
        times.append(time.perf_counter() - t)
        assert status == 200, (url, status)
    return statistics.median(times), max(times)


def all_pages(base: str) -> None:
    cursor = None
    while True:
        page = procs.get_json(base + "/api/v1/hosts" + (f"?cursor={urllib.parse.quote(cursor)}" if cursor else ""))
        cursor = page["next_cursor"]
        if cursor is None:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100:1000 and 1000:10000, a smoke run under a minute")
    ap.add_argument("--sizes", default="1000:100000,10000:1000000", help="HOSTS:EVENTS,... (default %(default)s)")
    args = ap.parse_args()
    sizes = [tuple(int(x) for x in s.split(":")) for s in ("100:1000,1000:10000" if args.quick else args.sizes).split(",")]
    print("machine shared with other workloads: read ratios against /healthz from the same run")
    print("goal: /metrics <= 1 s and /api/v1/hosts <= 1 s at 10,000 hosts and 10^6 events; <= 1,024 bytes per event")
    print(f"{'hosts':>6} {'events':>8} {'fill ev/s':>9} {'B/event':>7} {'healthz ms':>10} {'metrics s':>13} "
          f"{'hosts page s':>13} {'all pages s':>11} {'hints s':>13} {'events s':>13}")
    for hosts, events in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "scrape.db")
            spent = fill(db, hosts, events)
            con = sqlite3.connect(db)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            per_event = os.path.getsize(db) / events
            g, h = procs.free_port(), procs.free_port()
            col = procs.Proc(procs.collector_argv(db, g, h), Path(tmp) / "c.log").start()
            try:
                base = f"http://127.0.0.1:{h}"
                procs.wait_for(lambda base=base: procs.answering(base + "/healthz"), timeout=60, what="collector")
                health = timed(base + "/healthz")
                metrics = timed(base + "/metrics")
                page = timed(base + "/api/v1/hosts")
                start = time.perf_counter()
                all_pages(base)
                walk = time.perf_counter() - start
                hints = timed(base + "/api/v1/hints")
                evs = timed(base + "/api/v1/events?limit=100")
            finally:
                col.stop()

            def fmt(mm: tuple[float, float]) -> str:
                return f"{mm[0]:.3f}/{mm[1]:.3f}"
            print(f"{hosts:>6} {events:>8} {events / spent:>9,.0f} {per_event:>7.0f} {health[0] * 1000:>10.1f} "
                  f"{fmt(metrics):>13} {fmt(page):>13} {walk:>11.2f} {fmt(hints):>13} {fmt(evs):>13}", flush=True)
    print("(median/max of 5 requests)")


if __name__ == "__main__":
    main()
