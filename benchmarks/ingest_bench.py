"""Collector ingest throughput: events/s through the real gRPC stream into the
store, with batches of 1 (baseline: one round trip and one commit per event)
against the agent's default batch of 100, on SQLite (and PostgreSQL with --pg URL).

    python benchmarks/ingest_bench.py [--events N] [--pg postgresql://...]

Starts a real collector process on free loopback ports; prints one line per run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import fleet, procs  # noqa: E402


def run(db: str, events: int, batch: int) -> float:
    g, h = procs.free_port(), procs.free_port()
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        extra = ("--agent-rate", "1000000", "--agent-burst", "1000000", "--replica-id", f"bench-{run_id}")
        p = procs.Proc(procs.collector_argv(db, g, h, *extra), Path(tmp) / "c.log").start()
        try:
            procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz"), timeout=30, what="collector")
            facts = fleet.host("bench-host", "linux/amd64", machine="x86_64", can_run_32bit=True)
            evs = [
                fleet.event(facts, f"{run_id}-{i}", cause="arch_mismatch", image=f"bench/img{i % 20}:1",
                            image_platform="linux/arm64", binary_platform="linux/arm64")
                for i in range(events)
            ]
            with fleet.ScriptedAgent(g, facts) as agent:
                start = time.perf_counter()
                for i in range(0, events, batch):
                    ack = agent.send(evs[i:i + batch])
                    assert len(ack.stored_event_ids) == len(evs[i:i + batch]), ack
                elapsed = time.perf_counter() - start
            total = procs.total(procs.metrics(h), "enoexec_exits_total")
            assert total == events, (total, events)
            return events / elapsed
        finally:
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--pg", help="also run against this PostgreSQL database URL")
    args = ap.parse_args()
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("sqlite", str(Path(tmp) / "bench.db")))
        if args.pg:
            targets.append(("postgresql", args.pg))
        print(f"{'store':<11} {'batch':>5} {'events':>7} {'events/s':>10}")
        for name, db in targets:
            for batch in (1, 100):
                rate = run(db, args.events, batch)
                print(f"{name:<11} {batch:>5} {args.events:>7} {rate:>10.0f}")


if __name__ == "__main__":
    main()
