"""The agent against containerd's own CRI plugin (issue #18 item 7): pods run as the kubelet
runs them, through the CRI API (tests/cri.py: host-network sandboxes, a pause image built
here). Here containerd itself writes each attempt's CRI log, deletes the task at its exit
and keeps the exit in its own status record: the path a real node takes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enoexec import causes
from tests import containerd as ctrd
from tests import cri, elfs, images, procs
from tests.images import File
from tests.integration.test_containerd import ARM64_APP, TaskExits, _events, _exits, _load, containerd, ctrd_agent  # noqa: F401

EXITED = 2  # runtime.v1 ContainerState.CONTAINER_EXITED


@pytest.fixture
def kubelet(containerd: ctrd.Containerd) -> Iterator[cri.Kubelet]:  # noqa: F811
    containerd.load(cri.pause_archive())
    k = cri.Kubelet(containerd.socket, containerd.log_root)
    yield k
    k.close()


def _crash(k: cri.Kubelet, sb: cri.Sandbox, image: str, attempt: int) -> str:
    cid = k.attempt(sb, image, attempt)
    procs.wait_for(lambda: k.status(cid).state == EXITED, timeout=30, what=f"attempt {attempt} exited")
    return cid


def test_pods_run_by_the_cri_plugin_are_diagnosed_and_counted_exactly(containerd, kubelet, collector, ctrd_agent) -> None:  # noqa: F811
    col = collector()
    ctrd_agent(col.grpc)
    reference = TaskExits(containerd)
    cases = {
        "foreign": (_load(containerd, "cri-foreign", ARM64_APP, "arm64"), "arch_mismatch"),
        "noshebang": (_load(containerd, "cri-noshebang", [File("/app", b"echo hi\n")]), "missing_shebang"),
        "mislabeled": (_load(containerd, "cri-mislabeled", ARM64_APP, "amd64"), "mislabeled_image"),
    }
    ids: dict[str, list[str]] = {}
    for name, (image, _cause) in cases.items():
        sb = kubelet.pod(f"{name}-6b8c")
        ids[name] = [_crash(kubelet, sb, image, attempt) for attempt in range(3)]
    log = kubelet.status(ids["foreign"][2]).log_path
    assert Path(log).read_text().rstrip().endswith("stderr F exec /app: exec format error")  # containerd's own writing
    # The attempts' tasks are deleted, the sandboxes' stay (ctr lists them in no set order).
    procs.wait_for(lambda: sorted(containerd.ctr("tasks", "ls", "-q").stdout.split()) == sorted(sb.id for sb in kubelet.sandboxes),
                   timeout=30, what="only the sandboxes' tasks left")
    procs.wait_for(lambda: len(reference.exits) >= 9 and _exits(col) >= 9, timeout=60, what="9 exits")
    reference.close()
    assert _exits(col) == len(reference.exits) == 9
    for e in _events(col):
        name = e["container"]["kubernetes"]["pod"].split("-")[0]
        assert e["cause"] == cases[name][1], e
        assert (e["evidence"], e["container"]["runtime_message"]) == ("runtime_message", "exec /app: exec format error")
        k8s = e["container"]["kubernetes"]
        assert k8s["namespace"] == "shop" and k8s["container"] == "app"
        assert ids[name].index(e["container"]["id"]) == k8s.get("restart_count", 0)  # the attempt, from the CRI's metadata
    assert {e["container"]["id"] for e in _events(col)} == {cid for cids in ids.values() for cid in cids}


def test_a_restarted_agent_finds_pod_exits_in_the_cri_plugins_records(containerd, kubelet, collector, ctrd_agent, tmp_path) -> None:  # noqa: F811
    """The CRI plugin deletes a pod container's task at its exit: exits that happened while
    the agent was down are found only in the CRI plugin's status records."""
    image = _load(containerd, "cri-restart", ARM64_APP, "arm64")
    col = collector()
    state = tmp_path / "state-cri"
    sb = kubelet.pod("restart-9f1e")
    early = _crash(kubelet, sb, image, 0)  # before any agent ran: a fresh agent back-fills it
    ag = ctrd_agent(col.grpc, state)
    before = [_crash(kubelet, sb, image, a) for a in range(1, 3)]
    procs.wait_for(lambda: _exits(col) >= 2, timeout=60, what="2 exits")
    procs.wait_for(lambda: procs.total(procs.metrics(col.http), "enoexec_backfilled_exits_total") >= 1, timeout=60,
                   what="the exit from before the agent, back-filled")
    ag.stop()
    while_down = [_crash(kubelet, sb, image, a) for a in range(3, 6)]
    ag2 = ctrd_agent(col.grpc, state)
    procs.wait_for(lambda: _exits(col) >= 5, timeout=60, what="the exits from while it was down")
    procs.wait_reconciled(ag2)
    assert _exits(col) == 5  # back-fill is stored, not counted
    evs: list[dict[str, Any]] = _events(col)
    assert {e["container"]["id"] for e in evs} == {early, *before, *while_down}
    assert {e["container"]["id"] for e in evs if e.get("backfilled")} == {early}  # a checkpoint was there for the rest
    assert all(e["evidence"] == "runtime_message" for e in evs)  # the log files outlive the tasks


MUSL = "/lib/ld-musl-x86_64.so.1"
GLIBC = "/lib64/ld-linux-x86-64.so.2"
LOOKALIKES = {
    # name: (files, entrypoint, cause, failure)
    "loader": ([File("/app", elfs.program(0, interp=MUSL)), File(GLIBC, elfs.program(0))], "/app",
               causes.MISSING_LOADER, causes.START_FAILURE),
    "crlf": ([File("/entrypoint.sh", b"#!/bin/sh\r\necho hi\r\n"), File("/bin/sh", elfs.program(0))], "/entrypoint.sh",
             causes.CRLF_SHEBANG, causes.START_FAILURE),
    "nopython": ([File("/run.py", b"#!/usr/bin/python3\nprint(1)\n")], "/run.py", causes.MISSING_INTERPRETER,
                 causes.START_FAILURE),
    "trunc": ([File("/app", elfs.program(0)[:64])], "/app", causes.CORRUPT_FILE, causes.EXEC_FORMAT_ERROR),
    # Cut inside the code: it crashes at once (SIGSEGV), judged from how long it ran (the CRI record's StartedAt).
    "cut": ([File("/app", elfs.program(0, b"hello, this is more text\n")[:125])], "/app", causes.CORRUPT_FILE,
            causes.START_FAILURE),
}


def test_look_alikes_in_pods_get_the_causes_docker_gives(containerd, kubelet, collector, ctrd_agent) -> None:  # noqa: F811
    """The failures mistaken for exec format error (previous issue), on containerd through the
    CRI plugin: the same diagnosis, since it never learns which engine it judges."""
    col = collector()
    ctrd_agent(col.grpc)
    ids = {}
    for name, (files, entry, _cause, _failure) in LOOKALIKES.items():
        tag = f"enoexec-test/la-{name}:1"
        containerd.load(images.archive(tag, files, architecture="amd64", entrypoint=[entry]))
        ids[_crash(kubelet, kubelet.pod(f"la-{name}"), f"docker.io/{tag}", 0)] = name
    url = f"http://127.0.0.1:{col.http}/api/v1/events?limit=100"
    procs.wait_for(lambda: len(procs.get_json(url)["events"]) >= len(LOOKALIKES), timeout=60, what="every look-alike")
    got = {ids[e["container"]["id"]]: e for e in procs.get_json(url)["events"]}
    for name, (_files, _entry, cause, failure) in LOOKALIKES.items():
        e = got[name]
        assert (e["cause"], e["failure"]) == (cause, failure), e
        assert e["container"]["kubernetes"]["pod"] == f"la-{name}"
    assert got["cut"]["evidence"] == "exit_signal"
