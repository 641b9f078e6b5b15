"""Issue 6: the collector against hostile and unauthenticated clients, with real
processes: mTLS and token identity, --insecure, fuzzed events and raw bytes,
per-agent rate limits, the HTTP API's input handling, authentication and TLS,
and slow-loris connections."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enoexec import platforms
from enoexec.causes import CAUSES
from enoexec.v1 import enoexec_pb2 as pb
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc
from tests import fleet, images, procs
from tests.fleet import ScriptedAgent
from tests.images import File
from tests.unit.test_ingest_fuzz import events as fuzzed_events

MAKE_CERTS = Path(__file__).resolve().parents[2] / "deploy" / "tls" / "make-certs.sh"
REJECTED = "enoexec_collector_events_rejected_total"

CA_CONF = """\
[ ca ]
default_ca = d
[ d ]
database = index.txt
new_certs_dir = .
serial = serial.txt
default_md = sha256
policy = p
unique_subject = no
[ p ]
commonName = supplied
organizationName = optional
[ ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:enoexec://host/host-a,DNS:host-a
"""


# -- PKI ----------------------------------------------------------------------

def _run(*argv: Any, cwd: Path | None = None) -> str:
    out = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (argv, out.stdout, out.stderr)
    return out.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt + collector-localhost + agent-host-a/-host-b; expired-host-a; other/ (another CA)."""
    d = tmp_path_factory.mktemp("pki")
    _run("bash", MAKE_CERTS, "ca", d)
    _run("bash", MAKE_CERTS, "collector", d, "localhost", "127.0.0.1")
    _run("bash", MAKE_CERTS, "agent", d, "host-a")
    _run("bash", MAKE_CERTS, "agent", d, "host-b")
    _run("bash", MAKE_CERTS, "ca", d / "other")
    _run("bash", MAKE_CERTS, "agent", d / "other", "host-a")
    # An agent certificate for host-a from the right CA that expired in 2020 (OpenSSL 3.0's
    # 'x509 -req' cannot backdate; 'ca -startdate/-enddate' can).
    work = d / "expired"
    work.mkdir()
    (work / "ca.cnf").write_text(CA_CONF)
    (work / "index.txt").write_text("")
    (work / "serial.txt").write_text("01\n")
    _run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", work / "agent.key")
    _run("openssl", "req", "-new", "-key", work / "agent.key", "-subj", "/O=enoexec/CN=host-a", "-out", work / "agent.csr")
    _run("openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", d / "ca.crt", "-keyfile", d / "ca.key",
         "-in", "agent.csr", "-out", "agent.crt", "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
         "-extensions", "ext", "-notext", cwd=work)
    assert "notAfter=Feb  1 00:00:00 2020 GMT" in _run("openssl", "x509", "-in", work / "agent.crt", "-noout", "-enddate")
    return d


def new_token(name: str) -> tuple[str, str]:
    """(token, tokens-file line) from ``enoexec-collector token``."""
    out = _run(sys.executable, "-m", "collector.cli", "token", name)
    token = out.splitlines()[0].rsplit(" ", 1)[1]
    line = out.splitlines()[1].split(": ", 1)[1]
    assert line.split() == [name, line.split()[1]] and len(token) >= 32
    return token, line


# -- processes ----------------------------------------------------------------

def https_get(url: str, cafile: Path, token: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get(port: int, path: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``path`` exactly as given (http.client does not normalise ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., procs.Proc]]:
    """``serve(*flags, https_ca=None)``: a collector with exactly these security flags (no implicit --insecure)."""
    started: list[procs.Proc] = []

    def start(*flags: Any, https_ca: Path | None = None) -> procs.Proc:
        g, h = procs.free_port(), procs.free_port()
        argv = [sys.executable, "-m", "collector.cli", "serve", "--db", str(tmp_path / f"c{g}.db"),
                "--grpc-listen", f"127.0.0.1:{g}", "--http-listen", f"127.0.0.1:{h}", *map(str, flags)]
        p = procs.Proc(argv, tmp_path / f"collector-{g}.log").start()
        p.grpc, p.http = g, h  # type: ignore[attr-defined]
        started.append(p)

        def up() -> bool:
            try:
                if https_ca is not None:
                    return https_get(f"https://127.0.0.1:{h}/healthz", https_ca, timeout=2)[0] == 200
                return procs.answering(f"http://127.0.0.1:{h}/healthz")
            except OSError:
                return False

        procs.wait_for(lambda: up() or not p.alive(), timeout=30, what="collector /healthz")
        assert p.alive(), p.output()
        return p

    yield start
    for p in started:
        assert p.stop() == 0, p.output()[-3000:]
        assert "Traceback" not in p.output(), p.output()[-3000:]


@pytest.fixture
def secure_agent(tmp_path: Path, engine: Any) -> Iterator[Callable[..., procs.Proc]]:
    """The real agent process with the given TLS/token flags (no --insecure)."""
    started: list[procs.Proc] = []

    def start(grpc_port: int, host_id: str, *flags: Any) -> procs.Proc:
        argv = procs.agent_argv(f"127.0.0.1:{grpc_port}", engine.url, tmp_path / f"state-{host_id}", host_id, *map(str, flags))
        argv.remove("--insecure")
        p = procs.Proc(argv, tmp_path / f"agent-{host_id}.log").start()
        started.append(p)
        return p

    yield start
    for p in started:
        assert p.stop() == 0, p.output()[-3000:]


class SecureAgent(ScriptedAgent):
    """A ScriptedAgent over TLS, with an optional client certificate and bearer token."""

    def __init__(self, grpc_port: int, facts: pb.HostFacts, *, ca: Path, cert: Path | None = None,
                 key: Path | None = None, token: str | None = None) -> None:
        self.facts = facts
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca.read_bytes(),
            private_key=key.read_bytes() if key else None,
            certificate_chain=cert.read_bytes() if cert else None,
        )
        # The server certificate names localhost and 127.0.0.1.
        self._channel = grpc.secure_channel(f"127.0.0.1:{grpc_port}", creds)
        self._outbox: queue.Queue[Any] = queue.Queue()
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._replies = pb_grpc.CollectorStub(self._channel).Stream(iter(self._outbox.get, fleet._CLOSE), timeout=30, metadata=metadata)
        self._outbox.put(pb.AgentMessage(hello=pb.Hello(agent_version="test", host=facts)))
        self.closed = False
        try:
            first = next(self._replies)
        except BaseException:
            self._outbox.put(fleet._CLOSE)
            self._channel.close()
            raise
        assert first.HasField("welcome"), first
        self.welcome = first.welcome


def facts(host_id: str, platform: str = "linux/amd64") -> pb.HostFacts:
    return fleet.host(host_id, platform, machine="x86_64" if platform == "linux/amd64" else "aarch64", can_run_32bit=True)


def arm_event(f: pb.HostFacts, event_id: str) -> pb.Event:
    return fleet.event(f, event_id, cause="arch_mismatch", image="example/app:1", image_platform="linux/arm64", binary_platform="linux/arm64")


def refused(make: Callable[[], ScriptedAgent]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        with make() as a:
            a.send([])
    return info.value.code()  # type: ignore[attr-defined]


def metric(port: int, name: str, **labels: str) -> float:
    return procs.total(procs.metrics(port), name, **labels)


def stored_ids(port: int, host: str, token: str | None = None) -> list[str]:
    status, body = get(port, f"/api/v1/events?limit=1000&host={host}", token)
    assert status == 200, body
    return [e["event_id"] for e in json.loads(body)["events"]]


# -- mTLS -----------------------------------------------------------------------

def test_mtls_accepts_a_host_certificate_and_refuses_every_other_client(pki: Path, serve) -> None:
    col = serve("--tls-ca", pki / "ca.crt", "--tls-cert", pki / "collector-localhost.crt", "--tls-key", pki / "collector-localhost.key")
    ca, a = pki / "ca.crt", facts("host-a")

    with SecureAgent(col.grpc, a, ca=ca, cert=pki / "agent-host-a.crt", key=pki / "agent-host-a.key") as ok:
        ack = ok.send([arm_event(a, "mtls-1")])
    assert list(ack.stored_event_ids) == ["mtls-1"] and not ack.rejected

    # Refused in the TLS handshake: the stream never starts.
    assert refused(lambda: SecureAgent(col.grpc, a, ca=ca)) == grpc.StatusCode.UNAVAILABLE
    expired = pki / "expired"
    assert refused(lambda: SecureAgent(col.grpc, a, ca=ca, cert=expired / "agent.crt", key=expired / "agent.key")) == grpc.StatusCode.UNAVAILABLE
    other = pki / "other"
    assert refused(lambda: SecureAgent(col.grpc, a, ca=ca, cert=other / "agent-host-a.crt", key=other / "agent-host-a.key")) == grpc.StatusCode.UNAVAILABLE
    # A plaintext client cannot talk to the TLS port at all.
    assert refused(lambda: ScriptedAgent(col.grpc, a)) == grpc.StatusCode.UNAVAILABLE

    # A valid certificate for host-a claiming to be host-b: refused after the handshake, and counted.
    b = facts("host-b")
    assert refused(lambda: SecureAgent(col.grpc, b, ca=ca, cert=pki / "agent-host-a.crt", key=pki / "agent-host-a.key")) == grpc.StatusCode.PERMISSION_DENIED
    assert metric(col.http, REJECTED, reason="identity_mismatch") == 1.0
    assert metric(col.http, "enoexec_collector_events_received_total") == 1.0
    assert stored_ids(col.http, "host-a") == ["mtls-1"] and stored_ids(col.http, "host-b") == []
    assert '"msg": "agent refused", "host_id": "host-b", "reason": "identity_mismatch"' in col.output()


def test_the_real_agent_delivers_over_mtls(pki: Path, serve, secure_agent, dock) -> None:
    image = dock.load("arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    col = serve("--tls-ca", pki / "ca.crt", "--tls-cert", pki / "collector-localhost.crt", "--tls-key", pki / "collector-localhost.key")
    ag = secure_agent(col.grpc, "host-a", "--tls-ca", pki / "ca.crt", "--tls-cert", pki / "agent-host-a.crt", "--tls-key", pki / "agent-host-a.key")
    procs.wait_for(lambda: "collector connected" in ag.output() or not ag.alive(), timeout=30, what="agent connected over mTLS")
    assert ag.alive(), ag.output()
    dock.run(image)
    procs.wait_for(lambda: metric(col.http, "enoexec_host_exits_total", host="host-a") == 1.0, timeout=30, what="the exit counted for host-a")


# -- tokens ---------------------------------------------------------------------

def test_tokens_bind_agents_to_their_host_and_never_reach_a_log(pki: Path, serve, secure_agent, engine, tmp_path: Path) -> None:
    token_a, line_a = new_token("host-a")
    token_b, line_b = new_token("host-b")
    tokens = tmp_path / "agent-tokens"
    tokens.write_text(f"# agents\n{line_a}\n{line_b}\n")
    col = serve("--tls-cert", pki / "collector-localhost.crt", "--tls-key", pki / "collector-localhost.key",
                "--tokens-file", tokens, "--log-level", "debug")
    ca, a = pki / "ca.crt", facts("host-a")

    with SecureAgent(col.grpc, a, ca=ca, token=token_a) as ok:
        assert list(ok.send([arm_event(a, "tok-1")]).stored_event_ids) == ["tok-1"]

    assert refused(lambda: SecureAgent(col.grpc, a, ca=ca)) == grpc.StatusCode.UNAUTHENTICATED
    assert refused(lambda: SecureAgent(col.grpc, a, ca=ca, token=token_a[::-1])) == grpc.StatusCode.UNAUTHENTICATED
    assert refused(lambda: SecureAgent(col.grpc, facts("host-b"), ca=ca, token=token_a)) == grpc.StatusCode.PERMISSION_DENIED
    text = procs.metrics(col.http)
    assert procs.total(text, REJECTED, reason="unauthenticated") == 2.0
    assert procs.total(text, REJECTED, reason="identity_mismatch") == 1.0
    assert stored_ids(col.http, "host-b") == []

    # The real agent with --token-file, logging at debug level.
    token_file = tmp_path / "host-b.token"
    token_file.write_text(token_b + "\n")
    token_file.chmod(0o600)
    ag = secure_agent(col.grpc, "host-b", "--tls-ca", ca, "--token-file", token_file, "--log-level", "debug")
    procs.wait_for(lambda: "collector connected" in ag.output() or not ag.alive(), timeout=30, what="agent connected with a token")
    procs.wait_for(lambda: metric(col.http, "enoexec_agents_connected") == 1.0, timeout=10, what="agent counted as connected")
    ag.stop()
    for log in (col.output(), ag.output()):
        assert token_a not in log and token_b not in log
    assert '"msg": "agent refused", "host_id": "host-b", "reason": "identity_mismatch"' in col.output()


# -- --insecure -------------------------------------------------------------------

def test_insecure_is_explicit_and_warned_about(serve, tmp_path: Path) -> None:
    col = serve("--insecure")
    assert "TLS disabled by --insecure" in col.output()
    with ScriptedAgent(col.grpc, facts("plain")) as a:
        assert list(a.send([arm_event(a.facts, "plain-1")]).stored_event_ids) == ["plain-1"]

    out = subprocess.run(
        [sys.executable, "-m", "collector.cli", "serve", "--db", str(tmp_path / "x.db"),
         "--grpc-listen", f"127.0.0.1:{procs.free_port()}", "--http-listen", f"127.0.0.1:{procs.free_port()}"],
        capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("ENOEXEC_")},
    )
    assert out.returncode == 2, out
    assert "--insecure" in out.stderr and "--tls-cert" in out.stderr and len(out.stderr.strip().splitlines()) == 1


# -- fuzzing ----------------------------------------------------------------------

HUGE = st.sampled_from([3 * 1024 * 1024, 5 * 1024 * 1024])  # just under and over the 4 MiB message limit


def test_fuzzed_events_and_raw_bytes_do_not_disturb_a_well_behaved_agent(serve) -> None:
    col = serve("--insecure")
    good_facts = facts("good-host")
    sent_good: list[str] = []
    reasons: Counter[str] = Counter()
    state: dict[str, Any] = {"fuzzer": ScriptedAgent(col.grpc, facts("fuzz-host")), "broken": 0}

    def fuzz_send(batch: list[pb.Event]) -> None:
        try:
            ack = state["fuzzer"].send(batch)
        except grpc.RpcError as e:
            # Only a message over the 4 MiB limit may end the stream.
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e  # type: ignore[attr-defined]
            assert pb.AgentMessage(batch=pb.EventBatch(events=batch)).ByteSize() > 4 * 1024 * 1024
            state["broken"] += 1
            state["fuzzer"]._channel.close()
            state["fuzzer"] = ScriptedAgent(col.grpc, facts("fuzz-host"))
            return
        reasons.update(r.reason for r in ack.rejected)
        assert len(ack.stored_event_ids) + len(ack.rejected) <= len(batch)

    def raw(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", col.grpc), timeout=5) as s:
            with contextlib.suppress(OSError):
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                s.recv(4096)

    with ScriptedAgent(col.grpc, good_facts) as good:

        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
        @given(
            batch=st.lists(fuzzed_events("fuzz-host"), min_size=1, max_size=5),
            huge=st.one_of(st.none(), st.none(), st.none(), HUGE),
            garbage=st.binary(max_size=2048),
            preface=st.booleans(),
        )
        def fuzz(batch: list[pb.Event], huge: int | None, garbage: bytes, preface: bool) -> None:
            if huge:
                batch[0].explanation = "x" * huge
            fuzz_send(batch)
            raw((b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" if preface else b"") + garbage)
            event_id = f"good-{len(sent_good)}"
            ack = good.send([arm_event(good_facts, event_id)])
            assert list(ack.stored_event_ids) == [event_id] and not ack.rejected
            sent_good.append(event_id)
            assert procs.http_get(f"http://127.0.0.1:{col.http}/healthz", timeout=2)[0] == 200

        fuzz()
        # Deterministically too: a message over 4 MiB ends only the sender's stream; one under is answered.
        broken, too_large = state["broken"], reasons["too_large"]
        big = arm_event(facts("fuzz-host"), "big-1")
        big.explanation = "x" * (4 * 1024 * 1024)
        fuzz_send([big])
        assert state["broken"] == broken + 1
        big.explanation = "x" * (3 * 1024 * 1024)
        fuzz_send([big])
        assert reasons["too_large"] == too_large + 1
        ack = good.send([arm_event(good_facts, "good-after")])
        assert list(ack.stored_event_ids) == ["good-after"]
        sent_good.append("good-after")
        state["fuzzer"].close()

    assert set(stored_ids(col.http, "good-host")) == set(sent_good)
    text = procs.metrics(col.http)
    assert procs.total(text, "enoexec_host_exits_total", host="good-host") == len(sent_good)
    # Every rejection the fuzzer was told about is counted under its reason, and nothing else was.
    assert {labels["reason"]: v for labels, v in procs.samples(text, REJECTED)} == dict(reasons)
    # Nothing absurd was stored.
    status, body = get(col.http, "/api/v1/events?limit=1000")
    assert status == 200
    for e in json.loads(body)["events"]:
        assert e["cause"] in CAUSES
        assert e["host"]["host_id"] in ("good-host", "fuzz-host")
        for p in (e["host"]["platform"], e["image"]["declared_platform"], e["binary"]["platform"]):
            assert p == "" or platforms.is_valid(p), e["event_id"]
    for labels, _ in procs.samples(text, "enoexec_exits_total"):
        assert labels["cause"] in CAUSES and all(len(v) <= 200 and v.isprintable() for v in labels.values()), labels


# -- rate limit -----------------------------------------------------------------

def test_a_flooding_agent_is_slowed_without_delaying_another(serve) -> None:
    col = serve("--insecure", "--agent-rate", "5", "--agent-burst", "10")
    flood_facts, calm_facts = facts("flood"), facts("calm")
    flooder = ScriptedAgent(col.grpc, flood_facts)
    acked: list[int] = []
    errors: list[BaseException] = []

    def flood() -> None:
        try:
            for n in range(4):  # 200 events in batches of 50: the bucket holds 10, refills 5/s
                flooder.send([arm_event(flood_facts, f"flood-{n}-{i}") for i in range(50)])
                acked.append(n)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                errors.append(e)

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        procs.wait_for(lambda: metric(col.http, "enoexec_collector_throttled_seconds_total") > 0, timeout=10, what="the flood throttled")
        # Not delayed behind the flood: all five of the calm agent's batches are acknowledged while the
        # flooder's first batch of 50 is still held back (8 s at 5/s). An order, not a wall-clock bound.
        with ScriptedAgent(col.grpc, calm_facts) as calm:
            for i in range(5):
                ack = calm.send([arm_event(calm_facts, f"calm-{i}")])
                assert list(ack.stored_event_ids) == [f"calm-{i}"]
        assert not acked, "the calm agent waited behind the flood: the flooder's first batch was acknowledged first"
    finally:
        flooder._channel.close()
        thread.join(timeout=10)
    assert not thread.is_alive() and not errors, errors
    assert metric(col.http, "enoexec_collector_throttled_seconds_total") >= 7.0
    assert stored_ids(col.http, "calm") and len(stored_ids(col.http, "calm")) == 5


# -- HTTP API -------------------------------------------------------------------

def test_http_api_rejects_bad_input_and_needs_its_token(serve, tmp_path: Path) -> None:
    token, line = new_token("grafana")
    token_file = tmp_path / "http-tokens"
    token_file.write_text(line + "\n")
    col = serve("--insecure", "--http-token-file", token_file)
    port = col.http

    for path in [
        "/api/v1/events?limit=abc", "/api/v1/events?limit=-1", "/api/v1/events?limit=0", "/api/v1/events?limit=99999999999999999999",
        "/api/v1/events?since=yesterday", "/api/v1/events?since=" + "9" * 400, "/api/v1/events?since=1e999",
        "/api/v1/events?cause=pwned", "/api/v1/events?bogus=1", "/api/v1/events?host=%00%1b", "/api/v1/events?image=" + "a" * 600,
        "/api/v1/check", "/api/v1/check?image=nginx&platform=../../x", "/api/v1/check?image=%0a",
        # These were answered as if the parameter were not there: a target ignored, the first of two filters kept.
        "/api/v1/check?image=nginx&target=linux/arm64", "/api/v1/hints?image=nginx",
        "/api/v1/events?failure=start_failure&failure=exec_format_error", "/api/v1/events?image=a&image=b",
        "/api/v1/images?limit=-1",
    ]:
        status, body = get(port, path, token)
        assert status == 400, (path, status, body)
        assert json.loads(body)["error"], path

    for path in ["/api/v1/../../etc/passwd", "/api/v1/%2e%2e/%2e%2e/etc/passwd", "/../../../../etc/passwd",
                 "/api/v1/..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e%2f%2e%2e%2fetc/passwd", "/etc/passwd"]:
        status, body = get(port, path, token)
        assert status == 404, (path, status, body)
        assert b"root:" not in body

    # Oversized requests are refused and the server keeps serving.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz", headers={"X-Big": "a" * 16 * 1024})
    assert 400 <= conn.getresponse().status < 500
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/events?host=" + "h" * 20_000)
    assert 400 <= conn.getresponse().status < 500
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/api/v1/events", body=b"x" * (256 * 1024), headers={"Authorization": f"Bearer {token}"})
    assert 400 <= conn.getresponse().status < 500
    conn.close()
    assert get(port, "/healthz") == (200, b'{"status": "ok"}')

    # The token guards /api/*; /metrics and health stay open without --protect-metrics.
    assert get(port, "/api/v1/events")[0] == 401
    assert get(port, "/api/v1/hosts", token[:-1])[0] == 401
    assert get(port, "/api/v1/events", token)[0] == 200
    assert get(port, "/metrics")[0] == 200 and get(port, "/readyz")[0] == 200
    assert token not in col.output()


def test_https_api_with_protected_metrics(pki: Path, serve, tmp_path: Path) -> None:
    token, line = new_token("ops")
    token_file = tmp_path / "http-tokens"
    token_file.write_text(line + "\n")
    client_token = tmp_path / "ops.token"
    client_token.write_text(token + "\n")
    ca = pki / "ca.crt"
    col = serve("--insecure", "--http-tls-cert", pki / "collector-localhost.crt", "--http-tls-key", pki / "collector-localhost.key",
                "--http-token-file", token_file, "--protect-metrics", https_ca=ca)
    base = f"https://127.0.0.1:{col.http}"
    assert https_get(f"{base}/healthz", ca)[0] == 200
    assert https_get(f"https://localhost:{col.http}/healthz", ca)[0] == 200
    assert https_get(f"{base}/metrics", ca)[0] == 401
    status, body = https_get(f"{base}/metrics", ca, token)
    assert status == 200 and b"enoexec_agents_connected" in body
    assert https_get(f"{base}/api/v1/hints", ca, token)[0] == 200
    # Plain HTTP on the HTTPS port gets nothing useful; an unknown CA is refused.
    with pytest.raises((OSError, http.client.HTTPException)):
        get(col.http, "/healthz", timeout=5)
    with pytest.raises(urllib.error.URLError):
        https_get(f"{base}/healthz", pki / "other" / "ca.crt")

    def hints(*extra: Any) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENOEXEC_")}
        return subprocess.run([sys.executable, "-m", "collector.cli", "hints", "--url", base, *map(str, extra)],
                              capture_output=True, text=True, timeout=60, env=env)

    out = hints("--cacert", ca, "--token-file", client_token)
    assert out.returncode == 0, out
    out = hints("--cacert", ca)
    assert out.returncode == 2 and "401" in out.stderr, out  # permanent: a token is missing
    out = hints("--token-file", client_token)
    assert out.returncode == 2 and "pass --cacert" in out.stderr, out
    assert token not in col.output()


# -- slow loris ------------------------------------------------------------------

def still_open(socks: list[socket.socket], *, may_send: bool = False) -> int:
    """How many of ``socks`` the collector has not closed (nor, unless ``may_send``, answered:
    an HTTP/2 server sends its SETTINGS before the client's preface is complete)."""
    n = 0
    for s in socks:
        s.setblocking(False)  # a socket with a timeout would wait for data first
        try:
            data = s.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            n += 1  # nothing to read: open, waiting for the rest of our request
            continue
        except OSError:
            continue  # reset
        n += bool(data) and may_send
    return n


def test_half_open_connections_do_not_starve_health_or_agents(serve) -> None:
    col = serve("--insecure")
    http_socks: list[socket.socket] = []
    grpc_socks: list[socket.socket] = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", col.http), timeout=5)
            s.sendall(b"GET /api/v1/events?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            http_socks.append(s)
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", col.grpc), timeout=5)
            s.sendall(b"PRI * HTTP/2.0\r\n")
            grpc_socks.append(s)

        # Answered while every half-open connection is still held open: the collector did not have to
        # time them out (or refuse them) to serve health and agents. An order, not a wall-clock bound.
        for _ in range(3):
            assert procs.http_get(f"http://127.0.0.1:{col.http}/healthz", timeout=30)[0] == 200
            assert (still_open(http_socks), still_open(grpc_socks, may_send=True)) == (len(http_socks), len(grpc_socks))
        with ScriptedAgent(col.grpc, facts("patient")) as a:
            assert list(a.send([arm_event(a.facts, "slow-1")]).stored_event_ids) == ["slow-1"]
        assert (still_open(http_socks), still_open(grpc_socks, may_send=True)) == (len(http_socks), len(grpc_socks))
        assert col.alive()
    finally:
        for s in http_socks + grpc_socks:
            s.close()
    assert procs.http_get(f"http://127.0.0.1:{col.http}/healthz", timeout=2)[0] == 200
