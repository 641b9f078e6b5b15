"""A real Prometheus and Alertmanager (Debian's packages) for tests, with an in-test
webhook receiver. Each gets its own port and data directory; nothing is shared
with the host's own services."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests import procs, require

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "enoexec-rules.yml"
ALERTMANAGER = RULES.with_name("alertmanager.yml")
RECEIVER_URL = "http://127.0.0.1:5001/enoexec"  # the shipped file's placeholder


@dataclass
class Webhook:
    """Collects Alertmanager's webhook notifications (JSON bodies) in order."""

    port: int = 0
    notifications: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a for n in self.notifications for a in n.get("alerts", [])]


@contextmanager
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with hook._lock:
                hook.notifications.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        require.missing(f"{name} not found: install it (apt-get install -y {package})")
    return path


@contextmanager
def alertmanager(workdir: Path, webhook_port: int) -> Iterator[int]:
    """Alertmanager with the shipped deploy/prometheus/alertmanager.yml (its routes, timings and
    inhibition as they are), its receiver pointed at the webhook."""
    binary = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = procs.free_port()
    config = workdir / "alertmanager.yml"
    shipped = ALERTMANAGER.read_text()
    assert shipped.count(RECEIVER_URL) == 1, f"{ALERTMANAGER} no longer has the receiver {RECEIVER_URL}"
    config.write_text(shipped.replace(RECEIVER_URL, f"http://127.0.0.1:{webhook_port}/"))
    proc = procs.Proc([
        binary, f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ], workdir / "alertmanager.log").start()
    try:
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{port}/-/ready") or not proc.alive(),
                       timeout=30, what="alertmanager ready")
        assert proc.alive(), proc.output()
        yield port
    finally:
        proc.stop()


@dataclass(frozen=True)
class Prometheus:
    port: int
    proc: procs.Proc

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": str(time)} if time is not None else {})}
        doc = procs.get_json(f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode(params)}")
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        doc = procs.get_json(f"http://127.0.0.1:{self.port}/api/v1/query_range?{urllib.parse.urlencode(params)}")
        assert doc["status"] == "success", doc
        return doc["data"]["result"]


@contextmanager
def prometheus(workdir: Path, collector_http: list[int], alertmanager_port: int, interval: str = "1s") -> Iterator[Prometheus]:
    """Prometheus scraping the collector replicas and evaluating the shipped rules every ``interval``."""
    binary = _binary("prometheus", "prometheus")
    port = procs.free_port()
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": "enoexec", "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in collector_http]}]}],
    }))
    proc = procs.Proc([
        binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], workdir / "prometheus.log").start()
    try:
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{port}/-/ready") or not proc.alive(),
                       timeout=30, what="prometheus ready")
        assert proc.alive(), proc.output()
        yield Prometheus(port, proc)
    finally:
        proc.stop()
