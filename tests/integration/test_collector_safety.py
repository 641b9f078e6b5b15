"""The collector's safety edges, as a real process: ports it may not share,
what `check` may contact, readiness that means "can take writes", retiring hosts,
and an API whose every error is JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from tests import procs


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
