"""The collector against what an attacker or a broken agent sends, as a real
process over real gRPC and HTTP: numbers agents report about themselves,
malformed URLs and parameters, and more host ids than Prometheus should hold."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from enoexec.v1 import enoexec_pb2 as pb
from tests import fleet, procs
from tests.fleet import ScriptedAgent
from tests.registry import local_registry

AMD64 = "linux/amd64"


def strict_json(body: bytes) -> Any:
    """JSON as a strict parser reads it: NaN and Infinity are not JSON."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"not JSON: {name}")
    return json.loads(body, parse_constant=refuse)


def get(col: procs.Proc, path: str) -> tuple[int, str, bytes]:
    """Status, content type and body of GET ``path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{col.http}{path}", timeout=10) as res:  # type: ignore[attr-defined]
            return res.status, res.headers.get_content_type(), res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get_content_type(), e.read()


def test_numbers_an_agent_reports_about_itself_are_clamped_and_counted(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    facts = fleet.host("liar-1", AMD64, machine="x86_64", can_run_32bit=True)
    huge = 2**64 - 1
    hello = pb.Hello(
        agent_version="test", host=facts,
        spool=pb.SpoolStats(events=huge, dropped_total=huge, bytes=huge),
        resources=pb.AgentResources(resident_memory_bytes=huge, cpu_seconds=float("nan"),
                                    uptime_seconds=float("inf"), open_fds=3, spool_writable=True),
    )
    honest = fleet.host("honest-1", AMD64, machine="x86_64", can_run_32bit=True)
    with ScriptedAgent(col.grpc, facts, hello=hello) as liar, ScriptedAgent(col.grpc, honest) as other:  # type: ignore[attr-defined]
        # The liar's host row rides in the same group commit as others' events: it must not fail it.
        ack = other.send([fleet.event(honest, "h-1", cause="arch_mismatch", image="app:1", image_platform="linux/arm64",
                                      binary_platform="linux/arm64")])
        assert list(ack.stored_event_ids) == ["h-1"], ack
        status, _, body = get(col, "/api/v1/hosts")
        assert status == 200
        hosts = {h["host_id"]: h for h in strict_json(body)["hosts"]}
        res = hosts["liar-1"]["agent_resources"]
        assert res["cpu_seconds"] == 0 and res["uptime_seconds"] == 1e12, res
        assert res["resident_memory_bytes"] == 2**53 - 1 and hosts["liar-1"]["spool_events"] == 2**53 - 1, hosts["liar-1"]

        liar.heartbeat(0, 0, pb.AgentResources(cpu_seconds=-1e308, uptime_seconds=5))
        text = procs.wait_for(lambda: (t := procs.metrics(col.http)) and  # type: ignore[attr-defined]
                              procs.total(t, "enoexec_collector_clamped_values_total", field="resources.cpu_seconds") == 2 and t,
                              timeout=10, what="the heartbeat's negative CPU time counted")
        values = [s.value for f in text_string_to_metric_families(text) for s in f.samples]
        assert all(math.isfinite(v) for v in values), text
        assert procs.total(text, "enoexec_agent_cpu_seconds_total", host="liar-1") == 0
        for field in ("spool.events", "spool.dropped_total", "spool.bytes", "resources.resident_memory_bytes",
                      "resources.uptime_seconds"):
            assert procs.total(text, "enoexec_collector_clamped_values_total", field=field) == 1, field
    # The store kept the clamped row: it is still valid JSON once the agent is gone.
    procs.wait_for(lambda: get(col, "/api/v1/hosts")[0] == 200 and not any(
        h["connected"] for h in strict_json(get(col, "/api/v1/hosts")[2])["hosts"]), timeout=15, what="both disconnected")


def test_a_registry_sending_a_malformed_realm_gets_a_json_refusal_not_a_500(collector: Callable[..., procs.Proc]) -> None:
    """A realm whose port is no number raised ValueError in urlsplit().port: HTTP 500,
    text/plain "Server got itself in trouble", and a traceback in the log."""
    with local_registry(token_realm="http://127.0.0.1:+50317/t") as registry:
        col = collector(None, None, None, "--check-registries", registry)
        status, kind, body = get(col, "/api/v1/check?" + urllib.parse.urlencode({"image": f"{registry}/team/svc:1"}))
    assert (status, kind) == (403, "application/json"), (status, kind, body)
    assert "'http://127.0.0.1:+50317/t' is not a valid URL" in strict_json(body)["error"], body
    assert "Traceback" not in col.output(), col.output()[-3000:]


def test_errors_aiohttp_answers_itself_are_json_too(collector: Callable[..., procs.Proc]) -> None:
    """A 10 KB cursor passed aiohttp's request-line limit: its own text/plain 400."""
    col = collector()
    for path in ("/api/v1/hosts?cursor=" + "a" * 10_000, "/api/v1/hosts?cursor=" + "a" * 600):
        status, kind, body = get(col, path)
        assert (status, kind) == (400, "application/json"), (status, kind, body[:300])
        assert set(strict_json(body)) == {"error"}, body[:300]
    req = urllib.request.Request(f"http://127.0.0.1:{col.http}/api/v1/hosts", headers={"X-Big": "b" * 20_000})  # type: ignore[attr-defined]
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("a 20 KB header was accepted")
    except urllib.error.HTTPError as e:
        assert (e.code, e.headers.get_content_type()) == (400, "application/json"), (e.code, e.headers)
        assert set(strict_json(e.read())) == {"error"}
    assert "Traceback" not in col.output(), col.output()[-3000:]


def test_new_host_ids_past_max_hosts_are_refused_and_counted(collector: Callable[..., procs.Proc]) -> None:
    """Under --insecure, 1,500 Hellos made 1,503 last_seen series."""
    col = collector(None, None, None, "--max-hosts", "3")

    def facts(n: int) -> pb.HostFacts:
        return fleet.host(f"many-{n}", AMD64, machine="x86_64", can_run_32bit=True)

    for n in range(3):
        with ScriptedAgent(col.grpc, facts(n)):  # type: ignore[attr-defined]
            pass
    for n in range(3, 8):
        with pytest.raises(grpc.RpcError) as refused:
            ScriptedAgent(col.grpc, facts(n))  # type: ignore[attr-defined]
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        assert "--max-hosts" in (refused.value.details() or "")
    with ScriptedAgent(col.grpc, facts(1)):  # a known host always gets in  # type: ignore[attr-defined]
        pass
    text = procs.metrics(col.http)  # type: ignore[attr-defined]
    assert sorted(labels["host"] for labels, _ in procs.samples(text, "enoexec_agent_last_seen_timestamp_seconds")) == [
        "many-0", "many-1", "many-2"]
    assert procs.total(text, "enoexec_collector_events_rejected_total", reason="too_many_hosts") == 5
    assert col.output().count("new hosts refused") == 1, col.output()[-3000:]  # said once

    # Retiring a host makes room for a new one.
    # (at once: a host this replica has not written yet was answered 404, and forgotten all the same)
    assert get_method(col, "/api/v1/hosts/many-0", "DELETE")[0] == 200
    with ScriptedAgent(col.grpc, facts(9)):  # type: ignore[attr-defined]
        pass


def get_method(col: procs.Proc, path: str, method: str) -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{col.http}{path}", method=method)  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers.get_content_type(), res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get_content_type(), e.read()
