"""The collector as a real process, fed by a scripted fleet over real gRPC streams.

No Docker here: ``tests.fleet.ScriptedAgent`` speaks enoexec.v1 the way the agent
does (Hello, Welcome, EventBatch, Ack, Heartbeat), so each test controls exactly
which hosts and exits the collector sees, and asserts what operators read:
/metrics, the JSON API and the ``enoexec-collector`` commands.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import fleet, images, procs
from tests.fleet import ScriptedAgent
from tests.pg import create_database
from tests.registry import local_registry, push_layer_index, push_multiplatform_index, tar_layer

AMD64, ARM64, ARMV7 = "linux/amd64", "linux/arm64", "linux/arm/v7"
API, AGENT, CRON = "shop/api:1.4", "edge/agent:2", "tools/cron:3"

X86 = fleet.host("x86-1", AMD64, machine="x86_64", can_run_32bit=True, emulators=["linux/riscv64"])
X86_2 = fleet.host("x86-2", AMD64, machine="x86_64", can_run_32bit=True)
GRAVITON = fleet.host("graviton-1", ARM64, machine="aarch64", can_run_32bit=False, kernel="6.1.0-graviton4")
PI = fleet.host("pi-1", ARMV7, machine="armv7l", can_run_32bit=True, kernel="6.6.31-v7+", docker_version="26.1.0")
HOSTS = (X86, X86_2, GRAVITON, PI)

EXIT_LABELS = ("cause", "host_platform", "image_platform", "binary_platform", "image")

_database_numbers = itertools.count(1)


def m(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


def fleet_events() -> dict[str, list[Any]]:
    """Per host id, the exits it reports: 7 exits, 4 hosts, 3 images, 3 causes."""
    both = [AMD64, ARM64]
    return {
        "x86-1": [
            fleet.event(X86, "e1", cause="arch_mismatch", image=API, image_platform=ARM64, binary_platform=ARM64, available=both, age=m(50)),
            fleet.event(X86, "e2", cause="arch_mismatch", image=API, image_platform=ARM64, binary_platform=ARM64, available=both, age=m(40)),
        ],
        "x86-2": [
            fleet.event(X86_2, "e7", cause="arch_mismatch", image=API, image_platform=ARM64, binary_platform=ARM64, available=both, age=m(45)),
        ],
        "pi-1": [
            fleet.event(PI, "e3", cause="arch_mismatch", image=API, image_platform=AMD64, binary_platform=AMD64, available=both, age=m(30)),
            fleet.event(PI, "e6", cause="missing_shebang", image=CRON, image_platform=ARMV7, kind="script", path="/entrypoint.sh", age=m(5)),
        ],
        "graviton-1": [
            fleet.event(GRAVITON, "e4", cause="no_32bit_support", image=AGENT, image_platform=ARMV7, binary_platform=ARMV7, age=m(20)),
            fleet.event(GRAVITON, "e5", cause="missing_shebang", image=CRON, image_platform=ARM64, kind="script", path="/entrypoint.sh", age=m(10)),
        ],
    }


NEWEST_FIRST = ["e6", "e5", "e4", "e3", "e2", "e7", "e1"]

EXPECTED_EXITS = sorted([
    (("arch_mismatch", AMD64, ARM64, ARM64, API), 3.0),
    (("arch_mismatch", ARMV7, AMD64, AMD64, API), 1.0),
    (("missing_shebang", ARM64, ARM64, "", CRON), 1.0),
    (("missing_shebang", ARMV7, ARMV7, "", CRON), 1.0),
    (("no_32bit_support", ARM64, ARMV7, ARMV7, AGENT), 1.0),
])

EXPECTED_HINTS = sorted([
    ((AGENT, "no_32bit_support", ARM64, "rebuild_64bit"), 1.0),
    ((API, "arch_mismatch", AMD64, "pull_platform"), 1.0),
    ((API, "arch_mismatch", ARMV7, "rebuild_multiplatform"), 1.0),
    ((CRON, "missing_shebang", ARM64, "add_shebang"), 1.0),
    ((CRON, "missing_shebang", ARMV7, "add_shebang"), 1.0),
])


def populate(grpc_port: int) -> None:
    """Every host connects, reports its exits (all acknowledged as stored) and leaves."""
    for facts in HOSTS:
        evs = fleet_events()[facts.host_id]
        with ScriptedAgent(grpc_port, facts) as a:
            ack = a.send(evs)
            assert sorted(ack.stored_event_ids) == sorted(e.event_id for e in evs) and not ack.rejected, ack


def metric_text(col: procs.Proc) -> str:
    return procs.metrics(col.http)  # type: ignore[attr-defined]


def url(col: procs.Proc, path: str, **params: Any) -> str:
    query = urllib.parse.urlencode(params, doseq=True)
    return f"http://127.0.0.1:{col.http}{path}" + (f"?{query}" if query else "")  # type: ignore[attr-defined]


def event_ids(col: procs.Proc, **params: Any) -> list[str]:
    return [e["event_id"] for e in procs.get_json(url(col, "/api/v1/events", **params))["events"]]


def metrics_when(col: procs.Proc, condition: Callable[[str], bool], what: str) -> str:
    """/metrics once ``condition`` holds for it."""
    return procs.wait_for(lambda: (lambda t: t if condition(t) else "")(metric_text(col)), timeout=10, what=what)


def gauge(text: str, name: str, **match: str) -> float | None:
    values = [v for labels, v in procs.samples(text, name) if all(labels.get(k) == x for k, x in match.items())]
    return values[0] if len(values) == 1 else None


# -- metrics --------------------------------------------------------------------


def test_scripted_fleet_exposes_every_contract_metric_with_its_values(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    started = time.time()
    evs = fleet_events()
    spools = {"x86-1": (3, 0), "x86-2": (0, 0), "graviton-1": (1, 4), "pi-1": (0, 0)}
    agents = {f.host_id: ScriptedAgent(col.grpc, f, spool_events=spools[f.host_id][0], dropped_total=spools[f.host_id][1]) for f in HOSTS}  # type: ignore[attr-defined]
    try:
        assert all(a.welcome.max_batch_events == 500 for a in agents.values())
        for host_id, a in agents.items():
            ack = a.send(evs[host_id])
            assert sorted(ack.stored_event_ids) == sorted(e.event_id for e in evs[host_id]) and not ack.rejected

        text = metric_text(col)
        assert procs.total(text, "enoexec_agents_connected") == 4.0
        assert procs.label_sets(text, "enoexec_exits_total", EXIT_LABELS) == EXPECTED_EXITS
        assert procs.label_sets(text, "enoexec_host_exits_total", ("host", "host_platform")) == [
            (("graviton-1", ARM64), 2.0), (("pi-1", ARMV7), 2.0), (("x86-1", AMD64), 2.0), (("x86-2", AMD64), 1.0),
        ]
        assert procs.label_sets(text, "enoexec_hosts", ("platform",)) == sorted([((AMD64,), 2.0), ((ARM64,), 1.0), ((ARMV7,), 1.0)])
        assert procs.label_sets(text, "enoexec_hint_info", ("image", "cause", "host_platform", "hint")) == EXPECTED_HINTS
        # Spool stats as the Hello reported them.
        assert procs.label_sets(text, "enoexec_agent_spool_events", ("host",)) == [
            (("graviton-1",), 1.0), (("pi-1",), 0.0), (("x86-1",), 3.0), (("x86-2",), 0.0),
        ]
        assert procs.label_sets(text, "enoexec_agent_dropped_events_total", ("host",)) == [
            (("graviton-1",), 4.0), (("pi-1",), 0.0), (("x86-1",), 0.0), (("x86-2",), 0.0),
        ]
        for f in HOSTS:
            seen = gauge(text, "enoexec_agent_last_seen_timestamp_seconds", host=f.host_id, platform=f.platform)
            assert seen is not None and started - 1 <= seen <= time.time() + 1, (f.host_id, seen)
        assert procs.total(text, "enoexec_collector_events_received_total") == 7.0
        assert procs.total(text, "enoexec_collector_events_duplicate_total") == 0.0

        # A replay is acknowledged again but counted once.
        ack = agents["x86-1"].send([evs["x86-1"][0]])
        assert list(ack.stored_event_ids) == ["e1"] and not ack.rejected
        # Bad events are refused with a reason, and the good one in the same batch is kept.
        bad_cause = fleet.event(GRAVITON, "bad-1", cause="nope", image=AGENT, image_platform=ARMV7, binary_platform=ARMV7)
        impostor = fleet.event(X86, "bad-2", cause="arch_mismatch", image=API, image_platform=ARM64, binary_platform=ARM64)
        good = fleet.event(GRAVITON, "e8", cause="no_32bit_support", image=AGENT, image_platform=ARMV7, binary_platform=ARMV7, age=m(1))
        ack = agents["graviton-1"].send([bad_cause, impostor, good])
        assert list(ack.stored_event_ids) == ["e8"]
        assert sorted((r.event_id, r.reason) for r in ack.rejected) == [("bad-1", "bad_cause"), ("bad-2", "host_mismatch")]

        # A heartbeat updates the spool stats.
        agents["graviton-1"].heartbeat(spool_events=2, dropped_total=6)
        text = metrics_when(col, lambda t: gauge(t, "enoexec_agent_spool_events", host="graviton-1") == 2.0, "heartbeat spool stats in /metrics")
        assert gauge(text, "enoexec_agent_dropped_events_total", host="graviton-1") == 6.0
        assert procs.total(text, "enoexec_collector_events_received_total") == 8.0
        assert procs.total(text, "enoexec_collector_events_duplicate_total") == 1.0
        assert procs.label_sets(text, "enoexec_collector_events_rejected_total", ("reason",)) == [
            (("bad_cause",), 1.0), (("host_mismatch",), 1.0),
        ]
        assert procs.total(text, "enoexec_exits_total", cause="no_32bit_support") == 2.0
        assert procs.total(text, "enoexec_exits_total") == 8.0
        assert procs.total(text, "enoexec_host_exits_total", host="x86-1") == 2.0  # the replay did not count
    finally:
        for a in agents.values():
            a.close()

    text = metrics_when(col, lambda t: procs.total(t, "enoexec_agents_connected") == 0.0, "enoexec_agents_connected back to 0")
    assert procs.total(text, "enoexec_hosts") == 4.0  # known hosts stay known
    assert col.stop() == 0, col.output()[-2000:]


def test_counters_survive_a_collector_restart(collector: Callable[..., procs.Proc], tmp_path) -> None:
    db = str(tmp_path / "restart.db")
    col = collector(db)
    populate(col.grpc)  # type: ignore[attr-defined]
    before = metric_text(col)
    assert procs.label_sets(before, "enoexec_exits_total", EXIT_LABELS) == EXPECTED_EXITS
    assert col.stop() == 0, col.output()[-2000:]

    again = collector(db)
    after = metric_text(again)
    for name, keys in (
        ("enoexec_exits_total", EXIT_LABELS),
        ("enoexec_host_exits_total", ("host", "host_platform")),
        ("enoexec_hosts", ("platform",)),
        ("enoexec_hint_info", ("image", "cause", "host_platform", "hint")),
    ):
        assert procs.label_sets(after, name, keys) == procs.label_sets(before, name, keys), name
    assert procs.total(after, "enoexec_agents_connected") == 0.0
    # The replayed exits after the restart are still duplicates: nothing is counted twice.
    with ScriptedAgent(again.grpc, X86) as a:  # type: ignore[attr-defined]
        assert sorted(a.send(fleet_events()["x86-1"]).stored_event_ids) == ["e1", "e2"]
    after = metric_text(again)
    assert procs.label_sets(after, "enoexec_exits_total", EXIT_LABELS) == EXPECTED_EXITS
    assert procs.total(after, "enoexec_collector_events_duplicate_total") == 2.0
    assert procs.total(after, "enoexec_collector_events_received_total") == 0.0


def test_image_labels_are_capped_and_the_rest_fold_into_other(collector: Callable[..., procs.Proc]) -> None:
    col = collector(None, None, None, "--max-image-labels", "2")
    images = ["team/a:1", "team/b:1", "team/c:1", "team/d:1"]
    with ScriptedAgent(col.grpc, GRAVITON) as a:  # type: ignore[attr-defined]
        # Oldest first: a and b are seen first and keep their names.
        evs = [
            fleet.event(GRAVITON, f"cap-{i}", cause="no_32bit_support", image=img, image_platform=ARMV7,
                        binary_platform=ARMV7, age=m(40 - 10 * i))
            for i, img in enumerate(images)
        ]
        evs.append(fleet.event(GRAVITON, "cap-4", cause="no_32bit_support", image="team/d:1@sha256:" + "cd" * 32,
                               image_platform=ARMV7, binary_platform=ARMV7, age=m(1)))
        assert len(a.send(evs).stored_event_ids) == 5
    text = metric_text(col)
    by_image = {labels["image"]: v for labels, v in procs.samples(text, "enoexec_exits_total")}
    assert by_image == {"team/a:1": 1.0, "team/b:1": 1.0, "_other": 3.0}
    assert procs.total(text, "enoexec_exits_total") == 5.0
    hint_images = sorted(labels["image"] for labels, _ in procs.samples(text, "enoexec_hint_info"))
    assert hint_images == ["_other", "team/a:1", "team/b:1"]  # c and d share one folded series
    # The JSON API is not capped: it names every image (without the digest).
    assert sorted({e["image"] for e in procs.get_json(url(col, "/api/v1/hints"))["hints"]}) == images


# -- JSON API -------------------------------------------------------------------


def test_events_api_filters_newest_first_and_rejects_bad_parameters(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    populate(col.grpc)  # type: ignore[attr-defined]
    now = datetime.now(UTC)

    assert event_ids(col) == NEWEST_FIRST
    assert event_ids(col, host="pi-1") == ["e6", "e3"]
    assert event_ids(col, image=CRON) == ["e6", "e5"]
    assert event_ids(col, cause="no_32bit_support") == ["e4"]
    assert event_ids(col, limit=2) == ["e6", "e5"]
    assert event_ids(col, host="x86-1", cause="arch_mismatch") == ["e2", "e1"]
    assert event_ids(col, image=API, limit=3) == ["e3", "e2", "e7"]
    since = now - m(25)
    assert event_ids(col, since=since.isoformat().replace("+00:00", "Z")) == ["e6", "e5", "e4"]
    assert event_ids(col, since=str(int(since.timestamp()))) == ["e6", "e5", "e4"]
    assert event_ids(col, host="nobody") == []

    full = procs.get_json(url(col, "/api/v1/events", limit=1))["events"][0]
    assert full["event_id"] == "e6" and full["cause"] == "missing_shebang"
    assert full["host"]["host_id"] == "pi-1" and full["host"]["platform"] == ARMV7
    assert full["image"]["ref"] == CRON and full["binary"]["kind"] == "script"
    assert full["hint"]["id"] == "add_shebang" and full["hint"]["commands"]

    for params, word in (
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"limit": "\u00b2"}, "limit"),  # isdigit() but not int(): was a 500
        ({"cause": "nope"}, "cause"),
        ({"since": "garbage"}, "since"),
        ({"colour": "blue"}, "colour"),
    ):
        status, body = procs.http_get(url(col, "/api/v1/events", **params))
        assert status == 400, (params, status, body)
        error = json.loads(body)["error"]
        assert isinstance(error, str) and word in error, (params, error)

    status, body = procs.http_get(url(col, "/readyz"))
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_hosts_and_hints_api(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    populate(col.grpc)  # type: ignore[attr-defined]
    with ScriptedAgent(col.grpc, PI):  # type: ignore[attr-defined]
        hosts = {h["host_id"]: h for h in procs.get_json(url(col, "/api/v1/hosts"))["hosts"]}
    assert sorted(hosts) == ["graviton-1", "pi-1", "x86-1", "x86-2"]
    pi, graviton, x86 = hosts["pi-1"], hosts["graviton-1"], hosts["x86-1"]
    for h in hosts.values():
        assert {"host_id", "platform", "kernel", "docker_version", "emulated_platforms", "can_run_32bit", "last_seen", "connected"} <= set(h)
        datetime.fromisoformat(h["last_seen"].replace("Z", "+00:00"))
    assert (pi["platform"], pi["kernel"], pi["docker_version"], pi["can_run_32bit"], pi["connected"]) == (ARMV7, "6.6.31-v7+", "26.1.0", True, True)
    assert (graviton["platform"], graviton["kernel"], graviton["can_run_32bit"], graviton["connected"]) == (ARM64, "6.1.0-graviton4", False, False)
    assert (x86["platform"], x86["docker_version"], x86["emulated_platforms"], x86["connected"]) == (AMD64, "27.3.1", ["linux/riscv64"], False)
    assert graviton["emulated_platforms"] == []

    hints = procs.get_json(url(col, "/api/v1/hints"))["hints"]
    groups = {(g["image"], g["cause"], g["host_platform"]): g for g in hints}
    assert sorted((k, g["hint"], g["hosts"], g["exits"]) for k, g in groups.items()) == sorted([
        ((AGENT, "no_32bit_support", ARM64), "rebuild_64bit", 1, 1),
        ((API, "arch_mismatch", AMD64), "pull_platform", 2, 3),
        ((API, "arch_mismatch", ARMV7), "rebuild_multiplatform", 1, 1),
        ((CRON, "missing_shebang", ARM64), "add_shebang", 1, 1),
        ((CRON, "missing_shebang", ARMV7), "add_shebang", 1, 1),
    ])
    assert [g["image"] for g in hints][:2] == [CRON, CRON]  # most recently hit first
    pull = groups[(API, "arch_mismatch", AMD64)]
    assert f"docker pull --platform {AMD64} {API}" in pull["commands"]
    assert sorted(pull["example_hosts"]) == ["x86-1", "x86-2"]
    rebuild = groups[(API, "arch_mismatch", ARMV7)]
    assert any(c.startswith("docker buildx build --platform ") and ARMV7 in c and API in c for c in rebuild["commands"]), rebuild
    assert any(f"--platform {ARM64}" in c and AGENT in c for c in groups[(AGENT, "no_32bit_support", ARM64)]["commands"])
    assert any("/entrypoint.sh" in c for c in groups[(CRON, "missing_shebang", ARM64)]["commands"])


# -- the enoexec-collector commands ----------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], capture_output=True, text=True, timeout=60)


def test_hints_and_check_commands(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    populate(col.grpc)  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{col.http}"  # type: ignore[attr-defined]

    out = cli("hints", "--url", base)
    assert out.returncode == 0, out.stderr
    assert f"$ docker pull --platform {AMD64} {API}" in out.stdout
    assert "[rebuild_64bit]" in out.stdout and "[add_shebang]" in out.stdout
    assert f"{API}  cause=arch_mismatch  host_platform={AMD64}  hosts=2 exits=3" in out.stdout
    out = cli("hints", "--url", base, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == procs.get_json(base + "/api/v1/hints")

    # A label alone: an image the fleet has no exits of.
    out = cli("check", "shop/new:1", "--platform", AMD64, "--url", base)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = {line.split()[1]: line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")}
    assert lines == {"x86-1": "ok", "x86-2": "ok", "graviton-1": "FAIL", "pi-1": "FAIL"}, out.stdout
    assert "2 host(s) could not run it" in out.stdout

    out = cli("check", "shop/new:1", "--platform", ARM64, "--platform", ARMV7, "--platform", AMD64, "--url", base)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every known host can run it" in out.stdout

    # The fleet saw API die on both x86 hosts and the Pi: its exits override a label saying it runs there.
    out = cli("check", API, "--platform", ARM64, "--platform", ARMV7, "--platform", AMD64, "--url", base)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the fleet saw it fail 4 time(s) on 3 host(s)" in out.stdout, out.stdout
    out = cli("check", API, "--platform", AMD64, "--url", base, "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["platforms"] == [AMD64] and doc["platforms_from"] == "query"
    assert {v["host_id"]: v["reason"] for v in doc["cannot_run"]} == {
        "graviton-1": "no_such_platform", "pi-1": "no_such_platform", "x86-1": "seen", "x86-2": "seen"}
    assert doc["seen"]["hosts"] == ["pi-1", "x86-1", "x86-2"] and doc["seen"]["causes"] == ["arch_mismatch"]
    x86 = next(v for v in doc["cannot_run"] if v["host_id"] == "x86-1")
    assert x86["cause"] == "arch_mismatch" and x86["detail"].startswith("seen failing on 1 host(s) since "), x86

    # A 32-bit image on a 64-bit host without 32-bit support.
    doc = json.loads(cli("check", AGENT, "--platform", ARMV7, "--url", base, "--json").stdout)
    assert {v["host_id"]: v["reason"] for v in doc["cannot_run"]} == {
        "graviton-1": "no_32bit_support", "x86-1": "no_such_platform", "x86-2": "no_such_platform",
    }

    # Platforms are normalized (x86_64 is linux/amd64); a malformed one is an error, not a verdict.
    doc = json.loads(cli("check", "shop/new:1", "--platform", "x86_64", "--url", base, "--json").stdout)
    assert doc["platforms"] == [AMD64] and len(doc["cannot_run"]) == 2
    out = cli("check", API, "--platform", "linux/arm/v7/extra", "--url", base)
    assert out.returncode == 2 and "--platform 'linux/arm/v7/extra'" in out.stderr and "Traceback" not in out.stderr, out.stderr
    out = cli("hints", "--url", f"http://127.0.0.1:{procs.free_port()}")
    assert out.returncode == 3 and "cannot reach the collector" in out.stderr and "Traceback" not in out.stderr


def test_check_asks_a_real_registry_for_the_platforms(collector: Callable[..., procs.Proc]) -> None:
    with local_registry() as registry:
        col = collector(None, None, None, "--check-registries", registry)
        populate(col.grpc)  # type: ignore[attr-defined]
        base = f"http://127.0.0.1:{col.http}"  # type: ignore[attr-defined]
        push_multiplatform_index(registry, "team/svc", "1.0", [AMD64, ARM64], attestation=True)
        ref = f"{registry}/team/svc:1.0"
        out = cli("check", ref, "--url", base, "--json")
        assert out.returncode == 1, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        assert sorted(doc["platforms"]) == [AMD64, ARM64] and doc["platforms_from"] == "registry"
        verdicts = {v["host_id"]: (v["runnable"], v["reason"]) for v in doc["hosts"]}
        # The Pi's 32-bit arm/v7 kernel runs neither amd64 nor arm64.
        assert verdicts == {
            "x86-1": (True, "native"), "x86-2": (True, "native"),
            "graviton-1": (True, "native"), "pi-1": (False, "no_such_platform"),
        }
        out = cli("check", ref, "--url", base)
        assert out.returncode == 1 and "(from registry)" in out.stdout and "1 host(s) could not run it" in out.stdout

        # An index whose arm64 manifest carries an amd64 binary: the collector reads both entrypoints.
        amd = images.elf(images.EM_X86_64)
        push_layer_index(registry, "team/mislabeled", "1", [(AMD64, [tar_layer([("app", amd)])]),
                                                           (ARM64, [tar_layer([("app", amd)])])], ["/app"])
        out = cli("check", f"{registry}/team/mislabeled:1", "--url", base, "--json")
        assert out.returncode == 1, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        by_host = {v["host_id"]: v for v in doc["hosts"]}
        assert by_host["graviton-1"]["status"] == "fails" and by_host["graviton-1"]["cause"] == "mislabeled_image"
        assert "binary is linux/amd64" in by_host["graviton-1"]["detail"]
        assert by_host["x86-1"]["status"] == "runs" and by_host["x86-1"]["binary_platform"] == AMD64
        assert [e["binary_platform"] for e in doc["entrypoints"]] == [AMD64, AMD64] and doc["bytes_read"] > 0
        again = json.loads(cli("check", f"{registry}/team/mislabeled:1", "--url", base, "--json").stdout)
        assert again["cached"] and again["bytes_read"] == 0 and again["cannot_run"] == doc["cannot_run"]
        text = cli("check", f"{registry}/team/mislabeled:1", "--url", base).stdout
        assert "FAIL graviton-1" in text and "mislabeled_image" in text and "linux/arm64: /app is linux/amd64" in text, text

        missing = cli("check", f"{registry}/team/nothing:1", "--url", base)
        assert missing.returncode in (2, 3) and "no manifest" in missing.stderr, missing.stderr  # 4xx: 2; 5xx: 3


# -- replicas on one PostgreSQL database ----------------------------------------


@pytest.mark.postgres
def test_two_replicas_share_one_postgres_database(collector: Callable[..., procs.Proc], postgres_server: str) -> None:
    db = create_database(postgres_server, f"collector_{next(_database_numbers)}_{int(time.time())}")
    r1 = collector(db, None, None, "--replica-id", "r1")
    r2 = collector(db, None, None, "--replica-id", "r2")
    evs = fleet_events()

    with ScriptedAgent(r1.grpc, X86) as a:  # type: ignore[attr-defined]
        assert len(a.send(evs["x86-1"]).stored_event_ids) == 2
    with ScriptedAgent(r2.grpc, GRAVITON) as a:  # type: ignore[attr-defined]
        assert len(a.send(evs["graviton-1"]).stored_event_ids) == 2
    # The Pi reports e3 to r1, reconnects to r2 and replays e3 with e6.
    with ScriptedAgent(r1.grpc, PI) as a:  # type: ignore[attr-defined]
        assert list(a.send(evs["pi-1"][:1]).stored_event_ids) == ["e3"]
    with ScriptedAgent(r2.grpc, PI) as a:  # type: ignore[attr-defined]
        assert sorted(a.send(evs["pi-1"]).stored_event_ids) == ["e3", "e6"]

    expected = ["e6", "e5", "e4", "e3", "e2", "e1"]
    assert event_ids(r1) == expected
    assert event_ids(r2) == expected
    assert sorted(h["host_id"] for h in procs.get_json(url(r1, "/api/v1/hosts"))["hosts"]) == ["graviton-1", "pi-1", "x86-1"]

    t1, t2 = metric_text(r1), metric_text(r2)
    assert procs.total(t1, "enoexec_exits_total") == 3.0  # e1, e2, e3
    assert procs.total(t2, "enoexec_exits_total") == 3.0  # e4, e5, e6 (e3 was a duplicate)
    assert procs.total(t1, "enoexec_exits_total") + procs.total(t2, "enoexec_exits_total") == len(expected)
    assert procs.total(t1, "enoexec_host_exits_total", host="pi-1") + procs.total(t2, "enoexec_host_exits_total", host="pi-1") == 2.0
    assert procs.total(t2, "enoexec_collector_events_duplicate_total") == 1.0
    # Every replica sees the whole fleet's hosts and hints.
    assert procs.total(t1, "enoexec_hosts") == procs.total(t2, "enoexec_hosts") == 3.0
    assert procs.label_sets(t1, "enoexec_hint_info", ("image", "cause", "host_platform", "hint")) == \
        procs.label_sets(t2, "enoexec_hint_info", ("image", "cause", "host_platform", "hint"))


# -- bad configuration ----------------------------------------------------------


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", "serve", *args], capture_output=True, text=True, timeout=60)


def error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line: the one-line error (logs may come before it)."""
    lines = out.stderr.strip().splitlines()
    assert lines and "Traceback" not in out.stderr, out.stderr
    return lines[-1]


def test_bad_configuration_exits_2_with_a_one_line_error(tmp_path) -> None:
    db = str(tmp_path / "c.db")
    free = f"127.0.0.1:{procs.free_port()}"

    out = serve("--db", "ftp://x", "--insecure", "--grpc-listen", free, "--http-listen", free)
    assert out.returncode == 2 and "ftp" in error_line(out) and "--db" in error_line(out), out.stderr
    out = serve("--db", db, "--insecure", "--grpc-listen", "nope")
    assert out.returncode == 2 and "--grpc-listen" in error_line(out), out.stderr
    out = serve("--db", db, "--grpc-listen", free)
    assert out.returncode == 2 and "--insecure" in error_line(out) and "TLS" in error_line(out), out.stderr
    out = serve("--db", db, "--insecure", "--max-image-labels", "0")
    assert out.returncode == 2 and "--max-image-labels" in error_line(out), out.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        out = serve("--db", db, "--insecure", "--grpc-listen", f"127.0.0.1:{procs.free_port()}", "--http-listen", taken)
        assert out.returncode == 2, out.stderr
        assert error_line(out).startswith("enoexec-collector: error: --http-listen") and "in use" in error_line(out)
        out = serve("--db", db, "--insecure", "--grpc-listen", taken, "--http-listen", f"127.0.0.1:{procs.free_port()}")
        assert out.returncode == 2, out.stderr
        assert error_line(out).startswith("enoexec-collector: error: --grpc-listen") and "in use" in error_line(out)


def test_shutdown_drains_readiness_first_and_exits_cleanly(collector: Callable[..., procs.Proc]) -> None:
    """On SIGTERM /readyz turns 503 while open streams get their grace period."""
    import signal

    col = collector()
    ready = f"http://127.0.0.1:{col.http}/readyz"  # type: ignore[attr-defined]
    assert procs.http_get(ready)[0] == 200
    with ScriptedAgent(col.grpc, X86):  # type: ignore[attr-defined]
        col.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        procs.wait_for(lambda: _status(ready) == 503, timeout=10, what="readyz 503 while draining")
    assert col.stop() == 0, col.output()[-2000:]
    assert "collector stopped" in col.output()


def _status(url: str) -> int | None:
    try:
        return procs.http_get(url, timeout=2)[0]
    except OSError:
        return None
