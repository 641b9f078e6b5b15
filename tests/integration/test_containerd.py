"""The agent on containerd (issue #18): same causes as on Docker, exact counts.

A private containerd (tests/containerd.py: its own root, state, socket and
config), images imported from docker-archive tarballs, pods' containers run as
the kubelet has containerd run them (namespace k8s.io, the kubelet's labels,
one new container per attempt, a CRI-format log per attempt written by a shim
logging binary in place of the CRI plugin), a real agent process with
``--runtime containerd`` and a real collector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.engine.containerd.client import ContainerdClient, decode
from agent.engine.containerd.engine import ContainerdEngine
from agent.engine.exits import Exit
from tests import containerd as ctrd
from tests import images, procs, require
from tests.images import File
from tests.integration.test_diagnose import HTML, native_exit

ARM64_APP = [File("/app", images.elf(images.EM_AARCH64))]


@pytest.fixture(scope="module")
def containerd() -> Iterator[ctrd.Containerd]:
    why = ctrd.available()
    if why:
        require.missing(why)
    with ctrd.containerd() as c:
        yield c


@pytest.fixture
def kube(containerd: ctrd.Containerd) -> Iterator[ctrd.Containerd]:
    yield containerd
    containerd.cleanup()


def agent_argv(c: ctrd.Containerd, collector_port: int, state: Path, host_id: str = "node-1") -> list[str]:
    argv = procs.agent_argv(f"127.0.0.1:{collector_port}", "unix:///nonexistent/docker.sock", state, host_id)
    return argv + ["--runtime", "containerd", "--containerd-address", str(c.socket),
                   "--containerd-root", str(c.data_root), "--cri-log-root", str(c.log_root)]


@pytest.fixture
def ctrd_agent(tmp_path: Path, containerd: ctrd.Containerd) -> Iterator[Callable[..., procs.Proc]]:
    started: list[procs.Proc] = []

    def start(collector_port: int, state: Path | None = None) -> procs.Proc:
        p = procs.Proc(agent_argv(containerd, collector_port, state or tmp_path / "state"), tmp_path / f"agent-{len(started)}.log")
        p.start()
        started.append(p)
        procs.wait_for(lambda: "containerd event stream connected" in p.output() or not p.alive(), timeout=30,
                       what="agent connected to containerd")
        assert p.alive(), p.output()
        return p

    yield start
    for p in started:
        p.stop()


def _events(col: Any) -> list[dict[str, Any]]:
    return procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/events?limit=1000")["events"]  # type: ignore[no-any-return]


def _exits(col: Any) -> float:
    return procs.total(procs.metrics(col.http), "enoexec_exits_total")


def _load(c: ctrd.Containerd, name: str, files: list[File], arch: str = "amd64", **kw: Any) -> str:
    tag = f"enoexec-test/{name}:1"
    c.load(images.archive(tag, files, architecture=arch, entrypoint=["/app"], **kw))
    return f"docker.io/{tag}"


class TaskExits:
    """containerd's own count: every non-zero /tasks/exit of a container's init process in k8s.io."""

    def __init__(self, c: ctrd.Containerd) -> None:
        self.client = ContainerdClient(str(c.socket))
        self.stream = self.client.subscribe(['topic=="/tasks/exit",namespace=="k8s.io"'])
        self.exits: list[tuple[str, int]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.stream:
                e = decode(raw).event
                if e is not None and (not e.id or e.id == e.container_id) and e.exit_status:
                    self.exits.append((e.container_id, e.exited_at.ToNanoseconds()))
        except Exception:  # noqa: BLE001 - cancelled at the end
            pass

    def close(self) -> None:
        self.stream.cancel()
        self.thread.join(timeout=10)
        self.client.close()


SCENARIOS = [
    # (name, files, declared arch, cause, binary kind)
    ("foreign", ARM64_APP, "arm64", "arch_mismatch", "elf"),
    ("mislabeled", ARM64_APP, "amd64", "mislabeled_image", "elf"),
    ("noshebang", [File("/app", b"echo hello\nexec sleep 1\n")], "amd64", "missing_shebang", "text"),
    ("bom", [File("/app", b"\xef\xbb\xbf#!/bin/sh\necho hello\n")], "amd64", "bom_before_shebang", "bom_script"),
    ("empty", [File("/app", b"")], "amd64", "empty_file", "empty"),
    ("html", [File("/app", HTML)], "amd64", "not_a_binary", "html"),
]


def test_pods_exits_are_diagnosed_with_the_causes_docker_gives(kube, collector, ctrd_agent) -> None:
    col = collector()
    ctrd_agent(col.grpc)
    pods = {}
    for name, files, arch, _cause, _kind in SCENARIOS:
        image = _load(kube, name, files, arch)
        pods[name] = ctrd.Pod(f"{name}-7d9f", namespace="shop")
        kube.run_attempt(image, pods[name], 0)
        kube.run_attempt(image, pods[name], 1)
    native = _load(kube, "native", [File("/app", native_exit(1, b"exec /app: exec format error\n"))])
    kube.run_attempt(native, ctrd.Pod("native-1"), 0)
    assert "exec /app: exec format error" in kube.log_path(pods["foreign"], 1).read_text()
    procs.wait_for(lambda: _exits(col) >= 2 * len(SCENARIOS), timeout=60, what="every scenario counted")
    evs = _events(col)
    by_pod: dict[str, list[dict[str, Any]]] = {}
    for e in evs:
        by_pod.setdefault(e["container"]["kubernetes"]["pod"], []).append(e)
    assert "native-1" not in by_pod  # a native program printing the words is not an exec format error
    for name, _files, arch, cause, kind in SCENARIOS:
        got = by_pod[pods[name].name]
        assert len(got) == 2, got
        for e in got:
            assert (e["cause"], e["binary"]["kind"], e["binary"]["path"]) == (cause, kind, "/app"), e
            assert e["evidence"] == "runtime_message", e
            assert e["container"]["runtime_message"] == "exec /app: exec format error"
            assert e["image"]["declared_platform"] == f"linux/{arch}"
            assert e["host"]["engine"] == "containerd"
        k8s = sorted((e["container"]["kubernetes"] for e in got), key=lambda k: k.get("restart_count", 0))
        assert [(k["namespace"], k["container"], k["pod_uid"], k.get("restart_count", 0)) for k in k8s] == [
            ("shop", "app", pods[name].uid, 0), ("shop", "app", pods[name].uid, 1)]
    text = procs.metrics(col.http)
    for _name, _files, _arch, cause, _kind in SCENARIOS:  # a bounded label: the namespace, never the pod
        assert procs.total(text, "enoexec_kubernetes_exits_total", namespace="shop", cause=cause) == 2
    foreign = by_pod[pods["foreign"].name][0]
    assert foreign["binary"]["platform"] == "linux/arm64" and foreign["container"]["name"].startswith("shop/foreign-7d9f/app")


def test_ctr_run_rm_and_plain_tasks_are_judged_by_their_files(kube, collector, ctrd_agent) -> None:
    """Outside Kubernetes: ``ctr run --rm`` (container and snapshot gone at once) and a task
    whose output went to a ``file://`` log URI."""
    col = collector()
    ctrd_agent(col.grpc)
    image = _load(kube, "plain", ARM64_APP, "arm64")
    kube.load(images.archive("enoexec-test/plain:1", ARM64_APP, architecture="arm64", entrypoint=["/app"]), namespace="default")
    assert kube.run(image, "gone-1", namespace="default", rm=True) == 1
    log = kube.root / "plain.log"
    assert kube.run(image, "logged-1", namespace="default", log_uri=f"file://{log}") == 1
    procs.wait_for(lambda: _exits(col) >= 2, timeout=60, what="both exits counted")
    evs = {e["container"]["id"]: e for e in _events(col)}
    assert set(evs) == {"gone-1", "logged-1"}
    assert evs["gone-1"]["cause"] == evs["logged-1"]["cause"] == "arch_mismatch"
    assert evs["gone-1"]["evidence"] == "file_only"  # ctr printed the runtime's line on its own stdout
    assert evs["logged-1"]["evidence"] == "runtime_message"
    assert "kubernetes" not in evs["gone-1"]["container"]


def test_a_container_removed_before_its_exit_is_diagnosed_is_read_from_what_its_events_said(kube) -> None:
    """``ctr run --rm`` removes the container and its snapshot right after the exit; here the
    diagnosis starts only after that, so it must work from the /containers/create description
    and the /tasks/create root filesystem (the image's layers outlive the container)."""
    image = _load(kube, "rm-late", ARM64_APP, "arm64")
    kube.load(images.archive("enoexec-test/rm-late:1", ARM64_APP, architecture="arm64", entrypoint=["/app"]), namespace="default")
    engine = ContainerdEngine(str(kube.socket), root=kube.data_root, cri_log_root=kube.log_root)
    host = engine.facts("node-rm", Path("/proc"))
    diagnoser = engine.diagnoser(lambda: host, lookup_registry=False, image_fallback=True, clock=lambda: datetime.now(UTC))
    exits: list[Exit] = []
    stop = threading.Event()
    connected = threading.Event()
    watcher = engine.watcher(exits.append, connected.set, stop=stop, clock=lambda: datetime.now(UTC))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        procs.wait_for(connected.is_set, timeout=30, what="subscribed")
        assert kube.run(image, "rm-late-1", namespace="default", rm=True) == 1
        procs.wait_for(lambda: len(exits) == 1, timeout=30, what="the exit event")
        procs.wait_for(lambda: engine.containers.known_description("rm-late-1"), timeout=30, what="the create-time description")
        assert kube.ctr("containers", "ls", "-q", namespace="default").stdout.split().count("rm-late-1") == 0
        ev = diagnoser.diagnose(exits[0]).event
    finally:
        watcher.close()
        thread.join(timeout=10)
        engine.close()
    assert ev is not None
    assert (ev.cause, ev.evidence, ev.container.removed, ev.binary.platform) == ("arch_mismatch", "file_only", True, "linux/arm64")
    assert ev.container.entrypoint == ("/app",) and ev.image.declared_platform == "linux/arm64"


def test_a_crash_loop_storm_is_counted_exactly_as_containerd_counts_task_exits(kube, collector, ctrd_agent) -> None:
    """6 pods x 5 attempts at once, a new container per attempt, against containerd's own /tasks/exit."""
    image = _load(kube, "storm", ARM64_APP, "arm64")
    col = collector()
    ag = ctrd_agent(col.grpc)
    reference = TaskExits(kube)
    pods = [ctrd.Pod(f"storm-{i}") for i in range(6)]

    def loop(pod: ctrd.Pod) -> None:
        for attempt in range(5):
            kube.run_attempt(image, pod, attempt)

    threads = [threading.Thread(target=loop, args=(p,)) for p in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    procs.wait_for(lambda: len(reference.exits) >= 30, timeout=60, what="containerd's 30 task exits")
    procs.wait_for(lambda: _exits(col) >= 30, timeout=90, what="30 exits counted")
    procs.wait_reconciled(ag)
    reference.close()
    evs = _events(col)
    assert _exits(col) == len(reference.exits) == 30, ag.output()[-3000:]
    assert {e["container"]["id"] for e in evs} == {cid for cid, _ in reference.exits}
    assert all(e["cause"] == "arch_mismatch" for e in evs)


def test_containerd_killed_and_restarted_mid_loop_loses_and_doubles_nothing(kube, collector, ctrd_agent) -> None:
    """containerd kill -9 between attempts (tasks kept, as by a client that died) and restarted:
    the agent reconnects, reconciles from containerd's tasks, and counts each attempt once."""
    image = _load(kube, "killed", ARM64_APP, "arm64")
    col = collector()
    ag = ctrd_agent(col.grpc)
    pods = [ctrd.Pod(f"killed-{i}") for i in range(3)]
    ids = []
    for attempt in range(6):
        for pod in pods:
            ids.append(kube.run_attempt(image, pod, attempt, detach=True))
        if attempt == 2:
            kube.kill9()
            kube.start()
    procs.wait_for(lambda: _exits(col) >= 18, timeout=120, what="18 attempts counted")
    procs.wait_reconciled(ag)
    assert _exits(col) == 18, ag.output()[-3000:]
    assert {e["container"]["id"] for e in _events(col)} == set(ids)
    assert ag.output().count("containerd event stream connected") >= 2


def test_a_restarted_agent_reconciles_from_containerd_tasks_with_its_checkpoint(kube, collector, ctrd_agent, tmp_path) -> None:
    image = _load(kube, "restart", ARM64_APP, "arm64")
    col = collector()
    state = tmp_path / "state-restart"
    ag = ctrd_agent(col.grpc, state)
    pod = ctrd.Pod("restart-1")
    before = [kube.run_attempt(image, pod, a, detach=True) for a in range(2)]
    procs.wait_for(lambda: _exits(col) >= 2, timeout=60, what="2 exits counted")
    ag.stop()
    while_down = [kube.run_attempt(image, pod, a, detach=True) for a in range(2, 5)]
    ag2 = ctrd_agent(col.grpc, state)
    procs.wait_for(lambda: _exits(col) >= 5, timeout=60, what="the exits from while it was down")
    procs.wait_reconciled(ag2)
    assert _exits(col) == 5
    evs = _events(col)
    assert {e["container"]["id"] for e in evs} == set(before + while_down)
    assert not any(e.get("backfilled") for e in evs)  # a checkpoint was there: not back-fill


def test_diagnose_names_the_pod_and_its_attempt(kube) -> None:
    import json
    import subprocess
    import sys

    image = _load(kube, "cli", ARM64_APP, "arm64")
    pod = ctrd.Pod("cli-5c6d", namespace="payments")
    kube.run_attempt(image, pod, 0)
    cid = kube.run_attempt(image, pod, 1, detach=True)  # its task stays, with the exit status
    procs.wait_for(lambda: "STOPPED" in kube.ctr("tasks", "ls").stdout, timeout=30, what="the attempt stopped")
    base = [sys.executable, "-m", "agent.cli", "diagnose", "--runtime", "containerd", "--containerd-address", str(kube.socket),
            "--containerd-root", str(kube.data_root), "--cri-log-root", str(kube.log_root), "--host-id", "node-cli"]
    res = subprocess.run([*base, cid, "--json"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["cause"] == "arch_mismatch" and doc["evidence"] == "runtime_message"
    assert doc["container"]["kubernetes"] == {"pod": "cli-5c6d", "namespace": "payments", "container": "app",
                                              "pod_uid": pod.uid, "restart_count": 1, "has_restart_count": True}
    assert "nodeSelector" in doc["hint"]["text"]
    text = subprocess.run([*base, cid], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "pod        payments/cli-5c6d container app attempt 1" in text.stdout
    missing = subprocess.run([*base, "no-such-container"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 4 and missing.stderr.count("\n") == 1, missing.stderr
    facts = subprocess.run([sys.executable, "-m", "agent.cli", "facts", "--json", "--runtime", "containerd",
                            "--containerd-address", str(kube.socket)], capture_output=True, text=True, timeout=60)
    assert facts.returncode == 0 and json.loads(facts.stdout)["engine"] == "containerd"
    assert json.loads(facts.stdout)["engine_version"].startswith("1.")
