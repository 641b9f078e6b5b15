"""Start the real collector and agent as subprocesses on free ports, and read
their metrics and API. Every wait is bounded and polls for its condition."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> T:
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Proc:
    argv: list[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.popen is None:
            return 0
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def collector_argv(db: str, grpc_port: int, http_port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "collector.cli", "serve", "--insecure", "--db", db,
        "--grpc-listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}", *extra,
    ]


def agent_argv(collector: str, docker_host: str, state_dir: Path, host_id: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "agent.cli", "run", "--insecure", "--collector", collector,
        "--docker-host", docker_host, "--state-dir", str(state_dir), "--host-id", host_id,
        "--heartbeat-interval", "1", "--reconcile-interval", "5", "--no-lookup-registry", *extra,
    ]


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(url: str) -> Any:
    status, body = http_get(url)
    assert status == 200, (status, body[:500])
    return json.loads(body)


def answering(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


def samples(metrics_text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` (counter samples as ``name``, without ``_total``)."""
    out = []
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name:
                out.append((dict(s.labels), s.value))
    return out


def total(metrics_text: str, name: str, **match: str) -> float:
    return sum(v for labels, v in samples(metrics_text, name) if all(labels.get(k) == x for k, x in match.items()))


def metrics(http_port: int) -> str:
    status, body = http_get(f"http://127.0.0.1:{http_port}/metrics")
    assert status == 200
    return body.decode()


def label_sets(metrics_text: str, name: str, keys: Iterable[str]) -> list[tuple[tuple[str, ...], float]]:
    return sorted((tuple(labels.get(k, "") for k in keys), v) for labels, v in samples(metrics_text, name))


def wait_reconciled(agent: Proc, timeout: float = 60.0) -> None:
    """Wait until the agent finished a reconciliation pass whose window covers every exit
    until now (its checkpoint, persisted in its spool, reaches now) and sent what it found:
    the point after which a negative check ("nothing counted twice") means something."""
    now = datetime.now(UTC)
    spool = Path(agent.argv[agent.argv.index("--state-dir") + 1]) / "spool.db"
    wait_for(lambda: _spool_checkpoint(spool) >= now, timeout=timeout, what="a reconciliation pass covering every exit")
    wait_for(lambda: _spool_pending(spool) == 0, timeout=30, what="the spool drained")


def _spool_checkpoint(spool: Path) -> datetime:
    with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute("SELECT value FROM state WHERE key = 'reconcile_checkpoint'").fetchone()
    return datetime.fromisoformat(row[0]) if row else datetime.min.replace(tzinfo=UTC)


def _spool_pending(spool: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
