"""Delivery guarantees with real processes, a real Docker Engine and real gRPC.

Every diagnosed exit reaches the collector and is counted once, whatever fails
in between: the collector, the agent (SIGKILL), the network (a lost ack), the
Docker daemon, a full spool, a corrupt spool file.

The Docker daemon restart affects the whole session's engine; it stays last.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import images, procs, require
from tests.images import File

N = 4
DELIVERY_TIMEOUT = 60.0  # covers the agent's capped reconnect backoff


# -- helpers -------------------------------------------------------------------------


def _arm64(dock: Any) -> str:
    return dock.load("arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])


def _exits(col: procs.Proc) -> float:
    return procs.total(procs.metrics(col.http), "enoexec_exits_total")  # type: ignore[attr-defined]


def _duplicates(col: procs.Proc) -> float:
    return procs.total(procs.metrics(col.http), "enoexec_collector_events_duplicate_total")  # type: ignore[attr-defined]


def _events(col: procs.Proc) -> list[dict[str, Any]]:
    return procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/events?limit=1000")["events"]  # type: ignore[attr-defined]


def _spooled_logged(ag: procs.Proc) -> int:
    """Events the agent diagnosed and put in its spool (one log line each)."""
    return ag.output().count('"msg": "exec format error", "event_id"')


def _wait_exits(col: procs.Proc, n: int, ag: procs.Proc) -> None:
    try:
        procs.wait_for(lambda: _exits(col) >= n, timeout=DELIVERY_TIMEOUT, what=f"{n} exits in /metrics")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- agent log ---\n{ag.output()[-4000:]}") from None


def _assert_each_once(col: procs.Proc, container_ids: list[str]) -> None:
    """exits_total == len(container_ids); one stored event per container, distinct ids."""
    assert _exits(col) == len(container_ids)
    evs = _events(col)
    assert sorted(e["container"]["id"] for e in evs) == sorted(container_ids)
    assert len({e["event_id"] for e in evs}) == len(container_ids)


def _wait_finished(api: Any, cids: list[str]) -> None:
    for cid in cids:
        api.wait(cid, timeout=60)


class Proxy:
    """A TCP proxy on 127.0.0.1 whose collector-to-agent direction can be held.

    While held, bytes from the collector stay unread (the agent never hears an
    ack); ``cut()`` closes every connection, both sides.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self._upstream), timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            with self._lock:
                if self._closed:
                    down.close()
                    up.close()
                    return
                self._sockets += [down, up]
                self.accepted += 1
            self._spawn(self._pump, down, up, None)
            self._spawn(self._pump, up, down, self._flowing)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, gate: threading.Event | None) -> None:
        try:
            while True:
                if gate is not None:
                    gate.wait()
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hold_replies(self) -> None:
        self._flowing.clear()

    def cut(self) -> None:
        """Close every open connection, then let replies flow again for new ones."""
        with self._lock:
            socks, self._sockets = self._sockets, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._flowing.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._listener.close()
        self.cut()
        for t in self._threads:
            t.join(timeout=5)


@pytest.fixture
def proxy() -> Iterator[Callable[[int], Proxy]]:
    made: list[Proxy] = []

    def start(upstream_port: int) -> Proxy:
        p = Proxy(upstream_port)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


# -- scenarios -----------------------------------------------------------------------


def test_collector_outage_spools_and_delivers_each_exit_once(dock, collector, agent) -> None:
    image = _arm64(dock)
    col = collector()
    ag = agent(col.grpc, "outage-host")
    procs.wait_for(lambda: "collector connected" in ag.output(), timeout=30, what="agent connected to collector")

    assert col.stop(signal.SIGTERM) == 0, col.output()[-2000:]
    cids = [dock.run(image) for _ in range(N)]
    procs.wait_for(lambda: _spooled_logged(ag) >= N, timeout=30, what=f"{N} events spooled")
    assert ag.alive(), ag.output()[-2000:]

    # Same ports, same database: the agent finds it again by itself.
    col2 = collector(None, col.grpc, col.http)
    _wait_exits(col2, N, ag)
    _assert_each_once(col2, cids)

    def spool_gauge() -> float | None:
        found = procs.samples(procs.metrics(col2.http), "enoexec_agent_spool_events")
        values = [v for labels, v in found if labels.get("host") == "outage-host"]
        return values[0] if values else None

    # Heartbeats (1 s) report the emptied spool.
    procs.wait_for(lambda: spool_gauge() == 0.0, timeout=30, what="agent spool gauge back to 0")
    assert ag.alive()
    assert _exits(col2) == N


def test_agent_sigkill_loses_nothing_and_counts_nothing_twice(dock, collector, agent, tmp_path: Path) -> None:
    image = _arm64(dock)
    col = collector()
    state = tmp_path / "state-kill"
    ag = agent(col.grpc, "kill-host", state)
    procs.wait_for(lambda: "collector connected" in ag.output(), timeout=30, what="agent connected to collector")

    cids = [dock.run(image)]
    _wait_exits(col, 1, ag)

    # Mid-stream: containers fail while the agent dies.
    racing = [dock.run(image, wait=False) for _ in range(2)]
    ag.kill()
    assert not ag.alive()
    _wait_finished(dock.api, racing)
    cids += racing
    # While it is dead.
    cids += [dock.run(image) for _ in range(2)]

    starts = ag.output().count("agent started")
    ag2 = agent(col.grpc, "kill-host", state)
    procs.wait_for(lambda: ag2.output().count("agent started") > starts, timeout=30, what="agent restarted")
    _wait_exits(col, len(cids), ag2)
    _assert_each_once(col, cids)
    # The exits it slept through came from reconciliation at start.
    assert "reconciliation found missed exits" in ag2.output().split("agent started")[-1]
    assert ag2.alive()


def test_lost_ack_is_resent_and_counted_once(dock, collector, agent, proxy) -> None:
    image = _arm64(dock)
    col = collector()
    px = proxy(col.grpc)
    ag = agent(px.port, "ack-host")
    procs.wait_for(lambda: "collector connected" in ag.output(), timeout=30, what="agent connected through the proxy")

    px.hold_replies()  # after the Welcome: acks stay with the proxy
    cid = dock.run(image)
    procs.wait_for(lambda: [e for e in _events(col) if e["container"]["id"] == cid], timeout=30, what="event stored by the collector")
    assert _duplicates(col) == 0
    assert ag.output().count("collector connected") == 1  # still the first stream, ack withheld

    px.cut()  # the ack never arrives; the agent reconnects and resends
    procs.wait_for(lambda: _duplicates(col) >= 1, timeout=DELIVERY_TIMEOUT, what="the replay reaching the collector")
    assert px.accepted >= 2
    assert _exits(col) == 1
    evs = _events(col)
    assert [e["container"]["id"] for e in evs] == [cid]

    def spool_gauge() -> float | None:
        found = procs.samples(procs.metrics(col.http), "enoexec_agent_spool_events")
        values = [v for labels, v in found if labels.get("host") == "ack-host"]
        return values[0] if values else None

    procs.wait_for(lambda: spool_gauge() == 0.0, timeout=30, what="the resent event acknowledged")
    assert _exits(col) == 1


def test_full_spool_keeps_the_newest_and_counts_the_dropped(dock, collector, agent) -> None:
    image = _arm64(dock)
    grpc_port, http_port = procs.free_port(), procs.free_port()
    ag = agent(grpc_port, "full-host", None, "--spool-max-events", "2")  # no collector yet

    cids = []
    for _ in range(4):
        cids.append(dock.run(image))
        n = len(cids)
        procs.wait_for(lambda n=n: _spooled_logged(ag) >= n, timeout=30, what=f"event {n} spooled")
    assert ag.output().count("is full; dropped the 1 oldest events") == 2
    assert ag.alive()

    col = collector(None, grpc_port, http_port)
    _wait_exits(col, 2, ag)
    _assert_each_once(col, cids[-2:])  # the newest two were kept

    def dropped() -> float:
        return procs.total(procs.metrics(col.http), "enoexec_agent_dropped_events_total", host="full-host")

    procs.wait_for(lambda: dropped() == 2.0, timeout=30, what="dropped_total 2 reported")
    assert ag.alive()
    assert _exits(col) == 2


def test_corrupt_spool_is_moved_aside_and_the_agent_works(dock, collector, agent, tmp_path: Path) -> None:
    image = _arm64(dock)
    state = tmp_path / "state-corrupt"
    state.mkdir()
    spool = state / "spool.db"
    spool.write_bytes(b"garbage, not a spool\n" + os.urandom(4096))

    col = collector()
    ag = agent(col.grpc, "corrupt-host", state)
    log = ag.output()
    assert "unusable" in log and str(spool) in log, log[-2000:]
    aside = list(state.glob("spool.db.corrupt-*"))
    assert len(aside) == 1, aside
    assert aside[0].read_bytes().startswith(b"garbage, not a spool\n")

    cid = dock.run(image)
    _wait_exits(col, 1, ag)
    _assert_each_once(col, [cid])


def test_docker_daemon_restart_is_survived(engine, dock, collector, agent) -> None:
    """Keep last: restarts the session's private daemon (stop + start, same data root)."""
    if not engine.private:
        require.missing("needs the private test daemon to restart it: unset DOCKER_HOST")
    image = _arm64(dock)
    col = collector()
    ag = agent(col.grpc, "restart-host")
    cids = [dock.run(image)]
    _wait_exits(col, 1, ag)

    connects = ag.output().count("docker event stream connected")
    failures = ag.output().count("docker unavailable")
    engine.stop()
    try:
        # Let the agent's reconnect backoff grow (0.2 s doubling, capped at 5 s)
        # so the next container likely fails before it is back.
        procs.wait_for(lambda: ag.output().count("docker unavailable") >= failures + 5, timeout=30, what="agent retrying docker")
    finally:
        engine.start()
    cids.append(dock.run(image))
    procs.wait_for(
        lambda: ag.output().count("docker event stream connected") > connects,
        timeout=30, what="agent reconnected to the restarted daemon",
    )
    _wait_exits(col, 2, ag)
    _assert_each_once(col, cids)
    assert ag.alive()
