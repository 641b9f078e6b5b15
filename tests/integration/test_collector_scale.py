"""The collector under many streams, as a real process over real gRPC: group
commit is exact and acks follow commits; hosts page; streams that misbehave
(stalled Hellos, floods of empties, a host's second stream) do not distort the
fleet view."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from collector.store.store import Store
from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc
from tests import fleet, procs
from tests.fleet import ScriptedAgent

AMD64 = "linux/amd64"


def host(n: int | str) -> pb.HostFacts:
    return fleet.host(f"scale-{n}", AMD64, machine="x86_64", can_run_32bit=True)


def events_for(facts: pb.HostFacts, ids: list[str]) -> list[pb.Event]:
    return [fleet.event(facts, i, cause="arch_mismatch", image="app:1", image_platform="linux/arm64",
                        binary_platform="linux/arm64") for i in ids]


def api(col: procs.Proc, path: str, **params: Any) -> Any:
    query = urllib.parse.urlencode(params)
    return procs.get_json(f"http://127.0.0.1:{col.http}{path}" + (f"?{query}" if query else ""))  # type: ignore[attr-defined]


def total(col: procs.Proc, name: str) -> float:
    return procs.total(procs.metrics(col.http), name)  # type: ignore[attr-defined]


def run_all(workers: list[Callable[[], None]]) -> None:
    """Run ``workers`` at once in threads; re-raise the first failure."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def wrap(work: Callable[[], None]) -> None:
        barrier.wait(timeout=30)
        try:
            work()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]


def test_many_concurrent_streams_store_every_event_once_and_ack_only_what_is_committed(collector, tmp_path) -> None:
    """30 streams at once, two per host, each resending half of its sibling's
    events: every event is stored once, counted once, and readable as soon as
    its ack arrives."""
    col = collector(str(tmp_path / "c.db"), None, None, "--agent-rate", "100000", "--agent-burst", "100000")
    hosts = 15
    per_host = [[f"s{h}-{i:03d}" for i in range(120)] for h in range(hosts)]
    acked: list[str] = []
    lock = threading.Lock()

    def stream(h: int, first_half: bool) -> Callable[[], None]:
        ids = per_host[h]
        mine = ids[:80] if first_half else ids[40:]  # 40 ids carried by both streams of the host

        def work() -> None:
            facts = host(h)
            with ScriptedAgent(col.grpc, facts) as agent:
                for i in range(0, len(mine), 20):
                    ack = agent.send(events_for(facts, mine[i:i + 20]))
                    assert sorted(ack.stored_event_ids) == sorted(mine[i:i + 20]) and not ack.rejected
                    # acked means committed: readable at once, from another connection
                    stored = {e["event_id"] for e in api(col, "/api/v1/events", host=facts.host_id, limit=1000)["events"]}
                    assert set(ack.stored_event_ids) <= stored
                    with lock:
                        acked.extend(ack.stored_event_ids)
        return work

    run_all([stream(h, first) for h in range(hosts) for first in (True, False)])
    distinct = {i for ids in per_host for i in ids}
    assert set(acked) == distinct and len(acked) == len(distinct) + 40 * hosts
    assert total(col, "enoexec_exits_total") == len(distinct)
    assert total(col, "enoexec_collector_events_received_total") == len(distinct)
    assert total(col, "enoexec_collector_events_duplicate_total") == 40 * hosts
    store = Store(str(tmp_path / "c.db"))
    try:
        stored = [e["event_id"] for e in store.events(limit=10_000)]
    finally:
        store.close()
    assert sorted(stored) == sorted(distinct)


def test_every_acked_event_survives_a_kill_9(collector, tmp_path) -> None:
    """Acks come after commit: kill the collector mid-stream, and every event any
    agent saw acknowledged is in the database."""
    db = str(tmp_path / "killed.db")
    col = collector(db, None, None, "--agent-rate", "100000", "--agent-burst", "100000")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def agent(n: int) -> Callable[[], None]:
        def work() -> None:
            facts = host(f"k{n}")
            try:
                with ScriptedAgent(col.grpc, facts) as a:
                    for b in range(10_000):
                        if stop.is_set():
                            return
                        ack = a.send(events_for(facts, [f"k{n}-{b}-{i}" for i in range(25)]))
                        with lock:
                            acked.extend(ack.stored_event_ids)
            except (grpc.RpcError, AssertionError, StopIteration):
                pass  # the collector died under it
        return work

    threads = [threading.Thread(target=agent(n)) for n in range(8)]
    for t in threads:
        t.start()
    procs.wait_for(lambda: len(acked) > 2000, timeout=60, what="some acks")
    os.kill(col.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
    stop.set()
    for t in threads:
        t.join(timeout=60)
    store = Store(db)
    try:
        stored = {e["event_id"] for e in store.events(limit=1_000_000)}
    finally:
        store.close()
    assert acked and set(acked) <= stored


def test_hosts_api_pages_with_a_cursor(collector) -> None:
    col = collector()
    agents = [ScriptedAgent(col.grpc, host(f"{n:02d}")) for n in range(25)]
    try:
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = api(col, "/api/v1/hosts", limit=10, **({"cursor": cursor} if cursor else {}))
            assert len(page["hosts"]) <= 10
            seen += [h["host_id"] for h in page["hosts"]]
            assert all(h["connected"] for h in page["hosts"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"scale-{n:02d}" for n in range(25)]
        assert len(api(col, "/api/v1/hosts")["hosts"]) == 25  # the default page holds 1,000
        for bad in ({"limit": "0"}, {"limit": "x"}, {"limit": "10001"}, {"page": "2"}):
            status, body = procs.http_get(f"http://127.0.0.1:{col.http}/api/v1/hosts?{urllib.parse.urlencode(bad)}")
            assert status == 400, (bad, body)
    finally:
        for a in agents:
            a.close()


def test_a_hosts_second_stream_ending_leaves_it_connected(collector) -> None:
    col = collector()
    facts = host("twice")
    first, second = ScriptedAgent(col.grpc, facts), ScriptedAgent(col.grpc, facts)
    assert total(col, "enoexec_agents_connected") == 1
    assert total(col, "enoexec_collector_streams") == 2
    second.close()
    procs.wait_for(lambda: total(col, "enoexec_collector_streams") == 1, timeout=10, what="one stream closed")
    assert total(col, "enoexec_agents_connected") == 1
    assert [h["connected"] for h in api(col, "/api/v1/hosts")["hosts"]] == [True]
    first.heartbeat(spool_events=4, dropped_total=1)
    procs.wait_for(lambda: api(col, "/api/v1/hosts")["hosts"][0]["spool_events"] == 4, timeout=10, what="heartbeat seen")
    first.close()
    procs.wait_for(lambda: total(col, "enoexec_agents_connected") == 0, timeout=10, what="host disconnected")
    assert [h["connected"] for h in api(col, "/api/v1/hosts")["hosts"]] == [False]


class SilentStream:
    """A stream that never sends its Hello."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._release = threading.Event()
        self.call = pb_grpc.CollectorStub(self.channel).Stream(self._requests(), timeout=60)

    def _requests(self) -> Any:
        self._release.wait(60)
        return
        yield  # a generator that yields nothing

    def outcome(self) -> grpc.StatusCode:
        try:
            for _ in self.call:
                pass
        except grpc.RpcError as e:
            return e.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def close(self) -> None:
        self._release.set()
        self.channel.close()


def test_stalled_hellos_are_capped_timed_out_and_not_counted_as_agents(collector) -> None:
    col = collector(None, None, None, "--max-streams", "5", "--hello-timeout", "2")
    silent = [SilentStream(col.grpc) for _ in range(5)]
    try:
        procs.wait_for(lambda: total(col, "enoexec_collector_streams") == 5, timeout=10, what="5 open streams")
        assert total(col, "enoexec_agents_connected") == 0
        extra = SilentStream(col.grpc)
        assert extra.outcome() == grpc.StatusCode.RESOURCE_EXHAUSTED
        extra.close()
        assert {s.outcome() for s in silent} == {grpc.StatusCode.INVALID_ARGUMENT}  # Hello timed out
        procs.wait_for(lambda: total(col, "enoexec_collector_streams") == 0, timeout=10, what="streams released")
        with ScriptedAgent(col.grpc, host("after")):  # room again
            assert total(col, "enoexec_agents_connected") == 1
        text = procs.metrics(col.http)  # type: ignore[attr-defined]
        assert procs.total(text, "enoexec_collector_events_rejected_total", reason="too_many_streams") == 1
        assert procs.total(text, "enoexec_collector_events_rejected_total", reason="no_hello") == 5
    finally:
        for s in silent:
            s.close()


@pytest.mark.parametrize("flood", ["empty_batches", "heartbeats"])
def test_floods_of_empty_batches_and_heartbeats_are_slowed(collector, flood: str) -> None:
    col = collector(None, None, None, "--agent-rate", "10", "--agent-burst", "5")
    facts = host(flood)
    with ScriptedAgent(col.grpc, facts) as agent:
        start = time.monotonic()
        for _ in range(25):
            if flood == "empty_batches":
                agent.send([])
            else:
                agent.heartbeat(spool_events=0, dropped_total=0)
        if flood == "heartbeats":
            agent.send([])  # answered only after the heartbeats before it were let through
        elapsed = time.monotonic() - start
    assert elapsed >= 1.5  # 5 free, the other ~20 at 10 per second
    assert total(col, "enoexec_collector_throttled_seconds_total") >= 1.5
