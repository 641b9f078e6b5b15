"""The collector's safety edges, as a real process: ports it may not share,
what `check` may contact, readiness that means "can take writes", retiring hosts,
and an API whose every error is JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests import fleet, procs, require
from tests.fleet import ScriptedAgent
from tests.pg import create_database
from tests.registry import local_registry, push_multiplatform_index


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", "serve", *args], capture_output=True, text=True, timeout=60)


def test_a_second_collector_on_a_busy_port_exits_2_with_one_line(collector: Callable[..., procs.Proc], tmp_path) -> None:
    first = collector()
    grpc_port, http_port = first.grpc, first.http  # type: ignore[attr-defined]

    out = serve("--db", str(tmp_path / "second.db"), "--insecure", "--log-level", "error",
                "--grpc-listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{procs.free_port()}")
    assert out.returncode == 2, out.stderr
    assert not (tmp_path / "second.db").exists()  # refused before the store opened
    assert out.stderr.splitlines() == [
        f"enoexec-collector: error: --grpc-listen 127.0.0.1:{grpc_port}: port {grpc_port} is already in use "
        "(another collector, or another program, listens there); stop it or choose another port"
    ], out.stderr

    out = serve("--db", str(tmp_path / "second.db"), "--insecure",
                "--grpc-listen", f"127.0.0.1:{procs.free_port()}", "--http-listen", f"127.0.0.1:{http_port}")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"enoexec-collector: error: --http-listen 127.0.0.1:{http_port}: port {http_port} is already in use")
    assert "Traceback" not in out.stderr and "add_port.cc" not in out.stderr, out.stderr
    # The first collector kept both ports and still answers.
    assert first.alive() and procs.get_json(f"http://127.0.0.1:{http_port}/readyz")["status"] == "ready"


def _json_error(url: str, method: str = "GET") -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as e:
        assert e.headers.get_content_type() == "application/json", (e.code, e.headers)
        return e.code, json.load(e)


# -- what 'check' may contact ---------------------------------------------------


@contextlib.contextmanager
def listener() -> Iterator[tuple[int, Callable[[], bool]]]:
    """A listening socket standing in for an internal service; yields its port and
    ``contacted()``, true once anything has connected to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)

        def contacted() -> bool:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                return False
            conn.close()
            return True

        yield sock.getsockname()[1], contacted


def check_api(col: procs.Proc, image: str, *platforms: str) -> tuple[int, dict]:
    query = urllib.parse.urlencode([("image", image), *(("platform", p) for p in platforms)])
    return _json_error(f"http://127.0.0.1:{col.http}/api/v1/check?{query}")  # type: ignore[attr-defined]


def test_check_contacts_only_allowed_registries_and_realms(collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    with local_registry() as registry, listener() as (internal, contacted):
        push_multiplatform_index(registry, "team/svc", "1.0", ["linux/amd64", "linux/arm64"])
        # Default list: public registries only. Neither the local registry nor an internal port is fetched.
        col = collector()
        status, doc = check_api(col, f"127.0.0.1:{internal}/admin/secrets:1")
        assert status == 403 and f"127.0.0.1:{internal}" in doc["error"] and "--check-registries" in doc["error"], doc
        status, doc = check_api(col, f"{registry}/team/svc:1.0")
        assert status == 403, doc
        assert not contacted()
        # --platform needs no registry at all, so it works whatever the list says.
        status, doc = check_api(col, f"127.0.0.1:{internal}/admin/secrets:1", "linux/arm64")
        assert status == 200 and doc["platforms_from"] == "query", doc
        assert not contacted()

        # The operator allows the local registry: the real look-up works.
        # (each collector its own database: two on one database would share a replica id)
        allowed = collector(str(tmp_path / "allowed.db"), None, None, "--check-registries", f"default,{registry}")
        status, doc = check_api(allowed, f"{registry}/team/svc:1.0")
        assert status == 200 and sorted(doc["platforms"]) == ["linux/amd64", "linux/arm64"], doc

    # A registry whose Bearer realm points at another host: the realm is never fetched.
    with listener() as (realm_port, realm_contacted):
        with local_registry(token_realm=f"http://127.0.0.1:{realm_port}/token") as registry:
            col = collector(str(tmp_path / "realm.db"), None, None, "--check-registries", registry)
            status, doc = check_api(col, f"{registry}/team/svc:1.0")
            assert status == 403, doc
            assert f"token realm 'http://127.0.0.1:{realm_port}/token'" in doc["error"], doc
            assert not realm_contacted()


def test_check_refuses_bad_references_and_platforms_with_400(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    status, doc = check_api(col, "NOT A REF")
    assert status == 400 and "invalid image reference" in doc["error"], doc
    status, doc = check_api(col, "NOT A REF", "linux/amd64")
    assert status == 400, doc
    status, doc = check_api(col, "shop/api:1", "banana")
    assert status == 400 and "'banana'" in doc["error"], doc
    status, doc = check_api(col, "shop/api:1", "linux/banana")
    assert status == 400, doc
    status, doc = check_api(col, "shop/api:1", "linux/arm/v7", "windows/amd64")
    assert status == 200 and doc["platforms"] == ["linux/arm/v7", "windows/amd64"], doc


def test_every_http_error_is_json(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    base = f"http://127.0.0.1:{col.http}"  # type: ignore[attr-defined]
    status, doc = _json_error(f"{base}/api/v1/nope")
    assert status == 404 and "/api/v1/nope" in doc["error"], doc
    status, doc = _json_error(f"{base}/nothing-here")
    assert status == 404, doc
    status, doc = _json_error(f"{base}/api/v1/events", method="POST")
    assert status == 405 and "GET" in doc["error"], doc
    status, doc = _json_error(f"{base}/api/v1/hosts/no-such-host", method="DELETE")
    assert status == 404 and "no-such-host" in doc["error"], doc
    # A since date whose UTC form is out of range was a 503 and an ERROR log line per request.
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-01", "1e400"):
        status, doc = _json_error(f"{base}/api/v1/events?" + urllib.parse.urlencode({"since": since}))
        assert status == 400 and doc["error"].startswith("since:"), (since, status, doc)
    assert '"level": "error"' not in col.output(), col.output()[-2000:]


# -- readiness means "the store takes writes" ------------------------------------


def _ready(col: procs.Proc) -> int | None:
    try:
        return procs.http_get(f"http://127.0.0.1:{col.http}/readyz", timeout=5)[0]  # type: ignore[attr-defined]
    except OSError:
        return None


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        require.missing(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _fill(path: Path) -> None:
    """Write until the filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


def test_readyz_fails_while_the_sqlite_filesystem_is_full(collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "full") as mnt:
        col = collector(str(mnt / "enoexec.db"))
        assert _ready(col) == 200
        _fill(mnt / "filler")
        procs.wait_for(lambda: _ready(col) == 503, timeout=15, what="readyz 503 on a full disk")
        status, doc = _json_error(f"http://127.0.0.1:{col.http}/readyz")  # type: ignore[attr-defined]
        assert status == 503 and "full" in doc["error"], doc
        assert _ready(col) == 503  # stays unready, not flapping
        (mnt / "filler").unlink()
        procs.wait_for(lambda: _ready(col) == 200, timeout=15, what="readyz 200 once space is back")
        assert col.stop() == 0


def _events(facts: Any, prefix: str, n: int) -> list[Any]:
    return [fleet.event(facts, f"{prefix}-{i}", cause="arch_mismatch", image=f"shop/app{i}:1",
                        image_platform="linux/arm64", binary_platform="linux/arm64") for i in range(n)]


def _log_lines_since(col: procs.Proc, mark: int) -> list[str]:
    return col.output()[mark:].splitlines()


def test_readyz_follows_the_writer_when_a_probe_still_fits_and_the_outage_is_said_once(
        collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    """SQLite full while the write probe still commits in WAL pages it reuses: /readyz
    answered 200 while the writer logged 'store unavailable' for every batch, and each
    agent's reconnect added a connect and a disconnect line (302 lines in 38 s)."""
    facts = fleet.host("full-1", "linux/amd64", machine="x86_64", can_run_32bit=True)
    with small_tmpfs(tmp_path / "full") as mnt:
        col = collector(str(mnt / "enoexec.db"), None, None, "--host-flush-seconds", "1")
        with ScriptedAgent(col.grpc, facts) as a:  # type: ignore[attr-defined]
            a.send(_events(facts, "before", 40))
        # Another connection checkpoints (a backup tool would): the WAL restarts, so a
        # small write fits in its pages, while a large one must grow the file.
        with contextlib.closing(sqlite3.connect(mnt / "enoexec.db", timeout=10)) as db:
            db.execute("PRAGMA wal_checkpoint(RESTART)")
        _fill(mnt / "filler")
        mark = len(col.output())
        late = _events(facts, "late", 200)
        with pytest.raises(grpc.RpcError) as failed, ScriptedAgent(col.grpc, facts) as a:  # type: ignore[attr-defined]
            a.send(late)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value
        status, doc = _json_error(f"http://127.0.0.1:{col.http}/readyz")  # type: ignore[attr-defined]
        assert status == 503 and "full" in doc["error"], doc
        # Agents that retry at once (no backoff at all, the worst case) are refused before
        # their Hello is taken: no connect/disconnect lines, each refusal only counted.
        for _ in range(30):
            with pytest.raises(grpc.RpcError) as refused:
                ScriptedAgent(col.grpc, facts)  # type: ignore[attr-defined]
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
            assert "store is unavailable" in (refused.value.details() or "")
            assert _ready(col) == 503  # the probe would still commit; the writer's result decides
        text = procs.metrics(col.http)  # type: ignore[attr-defined]
        assert procs.total(text, "enoexec_collector_events_rejected_total", reason="store_unavailable") == 30

        (mnt / "filler").unlink()
        procs.wait_for(lambda: _ready(col) == 200, timeout=30, what="readyz 200 once the writer commits again")
        with ScriptedAgent(col.grpc, facts) as a:  # type: ignore[attr-defined]
            ack = a.send(late)  # the writer stored them on its own retry; the agent's resend is acked
        assert sorted(ack.stored_event_ids) == sorted(e.event_id for e in late)
        lines = _log_lines_since(col, mark)
        outage = [x for x in lines if "agent connected" not in x and "agent disconnected" not in x]
        assert len([x for x in lines if "agent connected" in x]) == 2, lines  # the failed stream and the last one
        assert [json.loads(x)["msg"] for x in outage] == ["store unavailable: database sqlite+pysqlite:///"
                                                          f"{mnt}/enoexec.db failed: database or disk is full; check that "
                                                          "it is reachable and writable", "store unavailable: working again"], outage
        assert col.stop() == 0


@pytest.mark.postgres
def test_readyz_fails_while_postgres_refuses_writes(collector: Callable[..., procs.Proc], postgres_server: str) -> None:
    import psycopg

    name = f"readonly_{os.getpid()}_{int(time.time())}"
    db = create_database(postgres_server, name)
    col = collector(db)
    assert _ready(col) == 200

    def read_only(on: bool) -> None:
        # As after a failover onto a standby: new sessions refuse writes; existing ones are cut.
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    read_only(True)
    procs.wait_for(lambda: _ready(col) == 503, timeout=15, what="readyz 503 on a read-only database")
    status, doc = _json_error(f"http://127.0.0.1:{col.http}/readyz")  # type: ignore[attr-defined]
    assert "read-only" in doc["error"], doc
    assert procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/hosts")["hosts"] == []  # reads still work
    read_only(False)
    procs.wait_for(lambda: _ready(col) == 200, timeout=15, what="readyz 200 once writable again")


# -- retiring hosts -------------------------------------------------------------

GONE = fleet.host("gone-1", "linux/arm/v7", machine="armv7l", can_run_32bit=True)
STAYS = fleet.host("stays-1", "linux/amd64", machine="x86_64", can_run_32bit=True)


def _host_ids(col: procs.Proc) -> list[str]:
    return sorted(h["host_id"] for h in procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/hosts")["hosts"])  # type: ignore[attr-defined]


def _last_seen_hosts(col: procs.Proc) -> list[str]:
    return sorted(labels["host"] for labels, _ in procs.samples(procs.metrics(col.http), "enoexec_agent_last_seen_timestamp_seconds"))  # type: ignore[attr-defined]


def _forget(col: procs.Proc, host_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", "forget", host_id, "--url", f"http://127.0.0.1:{col.http}"],  # type: ignore[attr-defined]
                          capture_output=True, text=True, timeout=60)


def test_forget_retires_a_host_but_keeps_its_exits(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    with ScriptedAgent(col.grpc, GONE) as a:  # type: ignore[attr-defined]
        a.send([fleet.event(GONE, "g1", cause="arch_mismatch", image="shop/api:1", image_platform="linux/amd64", binary_platform="linux/amd64")])
        # A connected host is not forgotten: its agent would register again at once.
        out = _forget(col, "gone-1")
        assert out.returncode == 2 and "HTTP 409" in out.stderr and "stop its agent" in out.stderr, out.stderr
    with ScriptedAgent(col.grpc, STAYS):  # type: ignore[attr-defined]
        pass
    assert _host_ids(col) == ["gone-1", "stays-1"]

    out = _forget(col, "gone-1")
    assert out.returncode == 0 and out.stdout.strip() == "forgot host gone-1; its past exits stay counted", out
    assert _host_ids(col) == ["stays-1"]
    text = procs.metrics(col.http)  # type: ignore[attr-defined]
    assert _last_seen_hosts(col) == ["stays-1"]
    assert procs.total(text, "enoexec_hosts", platform="linux/arm/v7") == 0
    assert procs.total(text, "enoexec_host_exits_total", host="gone-1") == 1.0
    assert procs.total(text, "enoexec_exits_total", image="shop/api:1") == 1.0
    out = _forget(col, "gone-1")
    assert out.returncode == 4 and "HTTP 404" in out.stderr, out.stderr
    out = _forget(col, "bad id!")
    assert out.returncode == 2 and "HOST_ID" in out.stderr, out.stderr

    # It comes back: it simply registers again.
    with ScriptedAgent(col.grpc, GONE):  # type: ignore[attr-defined]
        procs.wait_for(lambda: _host_ids(col) == ["gone-1", "stays-1"], timeout=10, what="gone-1 registered again")


def test_silent_hosts_expire_and_come_back(collector: Callable[..., procs.Proc]) -> None:
    col = collector(None, None, None, "--host-expiry", "3s")
    with ScriptedAgent(col.grpc, GONE) as a:  # type: ignore[attr-defined]
        a.send([fleet.event(GONE, "x1", cause="arch_mismatch", image="shop/api:1", image_platform="linux/amd64", binary_platform="linux/amd64")])
    with ScriptedAgent(col.grpc, STAYS) as live:  # type: ignore[attr-defined]
        assert _host_ids(col) == ["gone-1", "stays-1"]
        # stays-1 keeps talking; gone-1 is silent and expires.
        deadline = time.monotonic() + 20
        while "gone-1" in _host_ids(col):
            assert time.monotonic() < deadline, "gone-1 did not expire"
            live.heartbeat(0, 0)
            time.sleep(0.5)
        assert _host_ids(col) == ["stays-1"]
        assert _last_seen_hosts(col) == ["stays-1"]
        assert procs.total(procs.metrics(col.http), "enoexec_host_exits_total", host="gone-1") == 1.0  # type: ignore[attr-defined]
    assert '"msg": "host expired", "host_id": "gone-1"' in col.output()
    with ScriptedAgent(col.grpc, GONE):  # type: ignore[attr-defined]
        assert "gone-1" in _host_ids(col)
