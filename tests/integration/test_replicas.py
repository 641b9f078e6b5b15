"""Collector replicas on one real PostgreSQL database, as real processes: a replica
id is held by one live replica at a time, and counts stay in sum() across
replicas when a replica comes back under another id."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.delivery.sender import Sender
from agent.delivery.spool import Spool
from tests import fleet, procs
from tests.fleet import ScriptedAgent
from tests.pg import create_database

pytestmark = pytest.mark.postgres
_numbers = itertools.count(1)


def database(postgres_server: str) -> str:
    return create_database(postgres_server, f"replicas_{next(_numbers)}_{os.getpid()}_{int(time.time())}")


def serve(db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", "serve", "--insecure", "--db", db, "--log-level", "error",
                           "--grpc-listen", f"127.0.0.1:{procs.free_port()}", "--http-listen", f"127.0.0.1:{procs.free_port()}",
                           *extra], capture_output=True, text=True, timeout=60)


def exits(*cols: procs.Proc) -> float:
    return sum(procs.total(procs.metrics(c.http), "enoexec_exits_total") for c in cols)  # type: ignore[attr-defined]


def report(col: procs.Proc, host_id: str, n: int) -> None:
    facts = fleet.host(host_id, "linux/amd64", machine="x86_64", can_run_32bit=True)
    with ScriptedAgent(col.grpc, facts) as agent:  # type: ignore[attr-defined]
        ack = agent.send([fleet.event(facts, f"{host_id}-{i}", cause="arch_mismatch", image="shop/api:1",
                                      image_platform="linux/arm64", binary_platform="linux/arm64") for i in range(n)])
    assert len(ack.stored_event_ids) == n


def test_a_replica_id_held_by_a_live_replica_is_refused(collector: Callable[..., procs.Proc], postgres_server: str) -> None:
    """Two replicas with one id each exported the combined counter (sum() was 4,000 for
    2,000 exits), and nothing was logged."""
    db = database(postgres_server)
    first = collector(db, None, None, "--replica-id", "same")
    report(first, "r15-a", 3)
    out = serve(db, "--replica-id", "same")
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "enoexec-collector: error: --replica-id same: a live collector replica on this database already holds this id; "
        "give each replica its own --replica-id (the default, the hostname, is the same for two collectors on one host "
        "or containers sharing a hostname)"], out.stderr
    assert first.alive() and exits(first) == 3
    assert "replica id held by another process" not in first.output()  # a free id is taken at once

    # The default id, the hostname, is refused the same way.
    other = database(postgres_server)
    collector(other)
    out = serve(other)
    assert out.returncode == 2 and "a live collector replica" in out.stderr, out.stderr

    # A cleanly stopped replica frees its id at once; a killed one once its lease stands still.
    assert first.stop() == 0
    again = collector(db, None, None, "--replica-id", "same")
    assert exits(again) == 3
    os.kill(again.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
    again.popen.wait(timeout=10)  # type: ignore[union-attr]
    successor = collector(db, None, None, "--replica-id", "same")
    assert exits(successor) == 3
    assert "took over the replica id of a collector that stopped renewing it" in successor.output()


def test_counts_stay_in_sum_when_a_replica_comes_back_under_another_id(collector: Callable[..., procs.Proc],
                                                                      postgres_server: str) -> None:
    """A recreated container (new hostname, so a new replica id) orphaned its rows:
    sum(enoexec_exits_total) fell from 6,000 to 3,000 with 6,000 events stored."""
    db = database(postgres_server)
    a1 = collector(db, None, None, "--replica-id", "a1")
    b1 = collector(db, None, None, "--replica-id", "b1")
    report(a1, "r16-a", 3)
    report(b1, "r16-b", 2)
    assert exits(a1, b1) == 5

    assert a1.stop() == 0  # stopped cleanly, recreated as a2: a2 takes a1's rows before it serves
    a2 = collector(db, None, None, "--replica-id", "a2")
    assert exits(a2) == 3 and exits(a2, b1) == 5
    assert "retired_replica_id=a1" in a2.output() or '"retired_replica_id": "a1"' in a2.output()

    os.kill(a2.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]  # killed: its lease stands still
    a2.popen.wait(timeout=10)  # type: ignore[union-attr]
    a3 = collector(db, None, None, "--replica-id", "a3")
    procs.wait_for(lambda: exits(a3) == 3, timeout=40, what="a3 took over the killed a2's counts")
    report(a3, "r16-c", 1)
    assert exits(a3, b1) == 6

    # A replica that comes back with its own id keeps its rows; nobody took them.
    assert b1.stop() == 0
    b1_again = collector(db, None, None, "--replica-id", "b1")
    assert exits(b1_again) == 2 and exits(a3) == 4


class SenderFleet:
    """Real agent senders (``agent.delivery.sender.Sender``, each with its own real
    spool) in a thread of their own, speaking the real protocol to the replicas."""

    def __init__(self, targets: list[str], tmp_path: Path) -> None:
        self.facts = [fleet.host(f"outage-{i}", "linux/amd64", machine="x86_64", can_run_32bit=True)
                      for i in range(len(targets))]
        self.spools = [Spool(tmp_path / f"spool-{i}.db") for i in range(len(targets))]
        self._targets = targets
        self._senders: list[Sender] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._senders = [Sender(t, s, lambda f=f: f, heartbeat_interval=1.0)
                             for t, s, f in zip(self._targets, self.spools, self.facts, strict=True)]
            tasks = [asyncio.create_task(s.run()) for s in self._senders]
            self._ready.set()
            await asyncio.gather(*tasks)

        self._loop.run_until_complete(main())

    def exit_each(self, tag: str) -> None:
        """One more diagnosed exit in every agent's spool."""
        for facts, spool, sender in zip(self.facts, self.spools, self._senders, strict=True):
            ev = fleet.event(facts, f"{facts.host_id}-{tag}", cause="arch_mismatch", image="shop/api:1",
                             image_platform="linux/arm64", binary_platform="linux/arm64")
            spool.put(ev.event_id, ev.SerializeToString())
            self._loop.call_soon_threadsafe(sender.notify)

    def close(self) -> None:
        for sender in self._senders:
            self._loop.call_soon_threadsafe(sender.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        for spool in self.spools:
            spool.close()


def test_a_store_outage_is_said_once_per_replica_and_agents_back_off(collector: Callable[..., procs.Proc],
                                                                     postgres_server: str, tmp_path: Path) -> None:
    """The Welcome came before the store was touched and reset the agents' backoff: 20
    agents wrote ~150 collector log lines/s per replica for a whole 20 s outage."""
    import psycopg

    db = database(postgres_server)
    name = db.rsplit("/", 1)[1]
    replicas = [collector(db, None, None, "--replica-id", f"o{i}", "--host-flush-seconds", "1") for i in range(2)]
    agents = SenderFleet([f"127.0.0.1:{replicas[i % 2].grpc}" for i in range(10)], tmp_path)  # type: ignore[attr-defined]
    try:
        agents.exit_each("before")
        procs.wait_for(lambda: exits(*replicas) == 10, timeout=60, what="10 exits before the outage")

        def read_only(on: bool) -> None:
            with psycopg.connect(postgres_server, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                             "AND pid <> pg_backend_pid()", (name,))

        marks = [len(r.output()) for r in replicas]
        read_only(True)
        agents.exit_each("during")

        def refused() -> float:
            return sum(procs.total(procs.metrics(r.http), "enoexec_collector_events_rejected_total",  # type: ignore[attr-defined]
                                   reason="store_unavailable") for r in replicas)

        # Every agent has come back several times and been turned away.
        procs.wait_for(lambda: refused() >= 30, timeout=120, what="30 reconnects refused during the outage")
        for replica, mark in zip(replicas, marks, strict=True):
            lines = replica.output()[mark:].splitlines()
            msgs = [json.loads(x)["msg"] for x in lines]
            assert sum(m.startswith("store unavailable: ") for m in msgs) == 1, msgs  # said once
            assert "agent connected" not in msgs, msgs  # refused before the Hello was taken
            own = [x for x in lines if json.loads(x).get("logger", "").startswith("collector.")]
            assert len(own) <= 1 + 5, own  # that line, and at most each of its 5 agents' stream ending
            # psycopg warns once per pooled connection it drops ("error ignored terminating <Pipeline>"):
            # bounded by the pool (SQLAlchemy's 5 + 10 overflow), not by the 30+ refused reconnects.
            assert len(lines) - len(own) <= 15, lines
            assert "Traceback" not in replica.output()

        read_only(False)
        procs.wait_for(lambda: exits(*replicas) == 20, timeout=120, what="every exit delivered after the outage")
        for replica, mark in zip(replicas, marks, strict=True):
            msgs = [json.loads(x)["msg"] for x in replica.output()[mark:].splitlines()]
            assert msgs.count("store unavailable: working again") == 1, msgs
    finally:
        agents.close()
