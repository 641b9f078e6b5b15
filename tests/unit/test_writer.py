"""collector.ingest.writer.GroupWriter on a real SQLite store: concurrent writers share
transactions, each event is new to exactly one of them, and a write returns only
once its events are committed (another connection reads them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.ingest import ingest
from collector.ingest.presence import Presence
from collector.ingest.writer import GroupWriter
from collector.store.records import EventRecord
from collector.store.store import Store
from enoexec.v1 import enoexec_pb2 as pb

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def record(event_id: str, host: str) -> EventRecord:
    ev = pb.Event(event_id=event_id, host=pb.HostFacts(host_id=host, platform="linux/amd64"), cause="arch_mismatch",
                  image=pb.ImageFacts(ref="app:1", declared_platform="linux/arm64"))
    ev.time.FromDatetime(T0 + timedelta(seconds=len(event_id)))
    return ingest.record(ev)


def test_concurrent_writers_share_commits_and_each_event_is_new_once(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    store, reader = Store(db), Store(db)
    presence = Presence(clock=lambda: T0)
    presence.hello("h0", "linux/amd64", {}, spool_events=0, dropped_total=0)

    async def main() -> list[set[str]]:
        writer = GroupWriter(store, presence, host_flush_seconds=0.05)
        running = asyncio.create_task(writer.run())

        async def stream(n: int) -> set[str]:
            mine: set[str] = set()
            for b in range(5):
                # every id is also sent by the neighbouring stream
                batch = [record(f"e{(n + k) % 40}-{b}", f"h{n % 4}") for k in range(2)]
                new = await writer.write(batch)
                stored = {e["event_id"] for e in await asyncio.to_thread(reader.events, limit=1000)}
                assert {r.event_id for r in batch} <= stored  # returned after commit
                mine |= new
            return mine

        results = await asyncio.gather(*[stream(n) for n in range(40)])
        writer.stop()
        await running
        assert writer.commits < 40 * 5  # streams shared transactions
        return results

    try:
        results = asyncio.run(main())
        claimed = [i for r in results for i in r]
        assert len(claimed) == len(set(claimed)) == 200
        assert sum(c.count for c in store.exit_counts()) == 200
        assert [h.host_id for h in store.hosts()] == ["h0"]  # the host was written with the events
    finally:
        store.close()
        reader.close()
