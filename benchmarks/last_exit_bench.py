"""Scrape cost of enoexec_last_exit_timestamp_seconds: one /metrics collect with
and without the family (baseline: the same FleetCollector minus it), on a SQLite
store holding ``--recent`` exits in the last 30 minutes (a fleet in a bad deploy) and
``--old`` older ones (which the range on events.time skips).

    python benchmarks/last_exit_bench.py [--quick] [--recent N] [--old N] [--hosts N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from collector.http import metrics  # noqa: E402
from collector.ingest.stats import Stats  # noqa: E402
from collector.store.records import EventRecord  # noqa: E402
from collector.store.store import Store  # noqa: E402
from tests.records import exit_record  # noqa: E402

NOW = datetime.now(UTC)


def fill(store: Store, recent: int, old: int, hosts: int) -> None:
    def ev(i: int, age: timedelta) -> EventRecord:
        return exit_record(f"e{i}", NOW - age, f"host-{i % hosts}", image=f"shop/img{i % 20}:1")
    batch: list[EventRecord] = []
    for i in range(recent + old):
        age = timedelta(seconds=(i * 1800 / max(recent, 1)) % 1790) if i < recent else timedelta(hours=2, seconds=i)
        batch.append(ev(i, age))
        if len(batch) == 1000:
            store.insert_events(batch)
            batch.clear()
    store.insert_events(batch)


def time_scrapes(store: Store, with_family: bool, runs: int) -> float:
    collector = metrics.FleetCollector(store, Stats())
    if not with_family:
        collector._last_exits = lambda img: iter(())  # type: ignore[method-assign]
    registry = CollectorRegistry()
    registry.register(collector)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small store, few runs (under a minute)")
    ap.add_argument("--recent", type=int, default=50_000)
    ap.add_argument("--old", type=int, default=100_000)
    ap.add_argument("--hosts", type=int, default=500)
    args = ap.parse_args()
    recent, old, runs = (5_000, 10_000, 5) if args.quick else (args.recent, args.old, 11)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "bench.db"))
        try:
            fill(store, recent, old, args.hosts)
            series = len(store.recent_exits(NOW - metrics.LAST_EXIT_WINDOW))
            base = time_scrapes(store, False, runs)
            full = time_scrapes(store, True, runs)
        finally:
            store.close()
    print(f"events: {recent} in the last 30 minutes, {old} older; {args.hosts} hosts, 20 images; {series} last-exit series")
    print(f"scrape without the family (baseline): {base:.1f} ms median of {runs}")
    print(f"scrape with enoexec_last_exit_timestamp_seconds: {full:.1f} ms (+{full - base:.1f} ms)")


if __name__ == "__main__":
    main()
