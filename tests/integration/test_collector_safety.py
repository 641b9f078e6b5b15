"""The collector's safety edges, as a real process: ports it may not share,
what `check` may contact, readiness that means "can take writes", retiring hosts,
and an API whose every error is JSON."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator

from tests import procs
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


def test_check_contacts_only_allowed_registries_and_realms(collector: Callable[..., procs.Proc]) -> None:
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
        allowed = collector(None, None, None, "--check-registries", f"default,{registry}")
        status, doc = check_api(allowed, f"{registry}/team/svc:1.0")
        assert status == 200 and sorted(doc["platforms"]) == ["linux/amd64", "linux/arm64"], doc

    # A registry whose Bearer realm points at another host: the realm is never fetched.
    with listener() as (realm_port, realm_contacted):
        with local_registry(token_realm=f"http://127.0.0.1:{realm_port}/token") as registry:
            col = collector(None, None, None, "--check-registries", registry)
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
