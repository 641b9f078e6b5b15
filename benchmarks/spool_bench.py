"""Spool throughput: put + ack events/s with synchronous=FULL (chosen) and NORMAL (baseline).

Each event is put in its own transaction (as the agent does: durable before ``put``
returns) and acknowledged in batches, as the sender does. Also times opening a full
spool, which runs ``PRAGMA integrity_check``.

    python benchmarks/spool_bench.py [--events N] [--payload BYTES] [--batch N] [--dir DIR]

Run it on the target (a Pi's SD card) with ``--dir`` on that card: fsync cost is the
whole story and differs by orders of magnitude between an SSD and an SD card.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from agent.delivery.spool import Spool


def bench(
    directory: Path, synchronous: str, events: int, payload: bytes, batch: int
) -> dict[str, float]:
    path = directory / f"bench-{synchronous.lower()}.db"
    with Spool(path, synchronous=synchronous, max_events=events + 1) as spool:
        start = time.perf_counter()
        for n in range(events):
            spool.put(f"event-{n}", payload)
        put_s = time.perf_counter() - start
    start = time.perf_counter()
    spool = Spool(path, synchronous=synchronous, max_events=events + 1)
    open_s = time.perf_counter() - start
    with spool:
        start = time.perf_counter()
        while batch_events := spool.peek(batch):
            spool.ack(e.event_id for e in batch_events)
        ack_s = time.perf_counter() - start
    return {
        "put_per_s": events / put_s,
        "ack_per_s": events / ack_s,
        "put_ack_per_s": events / (put_s + ack_s),
        "open_full_ms": open_s * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--payload", type=int, default=2048, help="bytes per event")
    parser.add_argument("--batch", type=int, default=100, help="events per ack")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files")
    args = parser.parse_args()
    payload = os.urandom(args.payload)
    print(f"# {platform.machine()} {platform.python_version()}, {args.events} events "
          f"of {args.payload} B, ack batch {args.batch}")
    print(f"{'synchronous':<12} {'put/s':>10} {'ack/s':>10} {'put+ack/s':>10} {'open ms':>9}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for synchronous in ("NORMAL", "FULL"):
            r = bench(Path(tmp), synchronous, args.events, payload, args.batch)
            print(f"{synchronous:<12} {r['put_per_s']:>10.0f} {r['ack_per_s']:>10.0f} "
                  f"{r['put_ack_per_s']:>10.0f} {r['open_full_ms']:>9.1f}")


if __name__ == "__main__":
    main()
