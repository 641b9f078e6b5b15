"""Every exit counted exactly once, the ways containers really die (issue #10).

Real private dockerd, real agent and collector processes; counts are the
collector's against Docker's own. The counting tests start many containers at
once, so the races they guard against show.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Callable
from typing import Any

from tests import images, procs
from tests.images import File
from tests.integration.test_diagnose import native_exit

ON_FAILURE_5 = {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5}}


def _exits(col: Any) -> float:
    return procs.total(procs.metrics(col.http), "enoexec_exits_total")


def _events(col: Any) -> list[dict[str, Any]]:
    return procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/events?limit=1000")["events"]  # type: ignore[no-any-return]


def _all_at_once(n: int, start: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def _stays(col: Any, value: float, ag: Any) -> None:
    """Still exactly ``value`` once a reconciliation pass covering every exit so far had its
    chance to count something twice."""
    procs.wait_reconciled(ag)
    assert _exits(col) == value, ag.output()[-3000:]


def test_crash_loops_under_load_count_every_exit_once(dock, collector, agent) -> None:
    """Item 2: 6 containers x --restart on-failure:5 started together = 36 die events = 36 events."""
    tag = dock.load("loop", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc)
    ids: list[str] = []
    _all_at_once(6, lambda i: ids.append(dock.run(tag, wait=False, host_config={"restart_policy": ON_FAILURE_5["RestartPolicy"]})))

    def done() -> bool:
        states = [dock.api.inspect_container(c) for c in ids]
        return all(s["State"]["Status"] == "exited" and s["RestartCount"] == 5 for s in states)

    procs.wait_for(done, timeout=180, interval=0.5, what="six crash loops to end")
    died = sum(dock.api.inspect_container(c)["RestartCount"] + 1 for c in ids)
    assert died == 36
    procs.wait_for(lambda: _exits(col) >= 36, timeout=90, what="36 exits counted")
    _stays(col, 36, ag)
    evs = _events(col)
    assert len(evs) == 36 and len({e["event_id"] for e in evs}) == 36
    assert {e["container"]["id"] for e in evs} == set(ids)
    assert all(e["cause"] == "arch_mismatch" and e["evidence"] == "runtime_message" for e in evs)


def test_thirty_concurrent_rm_runs_are_thirty_events(dock, collector, agent) -> None:
    """Item 1: --rm containers are gone (logs 409/404) before or while they are read."""
    tag = dock.load("rm", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc)
    _all_at_once(30, lambda i: dock.run(tag, wait=False, host_config={"auto_remove": True}))
    procs.wait_for(lambda: _exits(col) >= 30, timeout=120, what="30 --rm exits counted")
    _stays(col, 30, ag)
    evs = _events(col)
    assert all(e["container"]["removed"] and e["binary"]["path"] == "/app" and e["cause"] == "arch_mismatch" for e in evs)
    assert {e["evidence"] for e in evs} == {"file_only"}


def test_rm_with_entrypoint_override_is_judged_on_its_own_argv(dock, collector, agent) -> None:
    """Item 5: --rm --entrypoint /native exiting 1 is not the image's foreign /app."""
    tag = dock.load(
        "rm-override",
        [File("/app", images.elf(images.EM_AARCH64)), File("/native", native_exit(1)), File("/arm", images.elf(images.EM_AARCH64))],
        architecture="amd64", entrypoint=["/app"],
    )
    col = collector()
    ag = agent(col.grpc)
    _all_at_once(10, lambda i: dock.run(tag, wait=False, entrypoint=["/native"], host_config={"auto_remove": True}))
    _all_at_once(4, lambda i: dock.run(tag, wait=False, entrypoint=["/arm"], host_config={"auto_remove": True}))
    procs.wait_for(lambda: _exits(col) >= 4, timeout=90, what="the 4 foreign --rm runs counted")
    _stays(col, 4, ag)
    evs = _events(col)
    assert sorted(e["binary"]["path"] for e in evs) == ["/arm"] * 4, json.dumps(evs[:1])[:2000]
    assert all(e["container"]["entrypoint"] == ["/arm"] for e in evs)


def test_a_70kb_cmd_still_reaches_the_collector_cut_to_fit(dock, collector, agent) -> None:
    """Item 6: the event is cut to fit MAX_EVENT_BYTES, with a marker, not dropped."""
    tag = dock.load("big", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc)
    dock.run(tag, command=["x" * 70_000])
    procs.wait_for(lambda: _exits(col) >= 1, timeout=60, what="the big event counted")
    (ev,) = _events(col)
    assert ev["container"]["cmd"][0].startswith("xxxx") and "…[+" in ev["container"]["cmd"][0]
    assert "too_large" not in col.output() and "rejected" not in ag.output()


def _put(dock: Any, cid: str, path: str, data: bytes) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    dock.api.put_archive(cid, "/", buf.getvalue())


def test_runtime_message_blind_spots_fall_back_to_the_file(dock, collector, agent) -> None:
    """Item 7: --log-driver none (501), --init (tini's wording) and output glued onto the runtime line."""
    tag = dock.load("blind", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    native = dock.load("glue", [File("/app", native_exit(3, b"previous run, no newline"))], architecture="amd64", entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc)
    none = dock.run(tag, host_config={"log_config": {"Type": "none", "Config": {}}})
    init = dock.run(tag, host_config={"init": True})
    glued = dock.run(native)
    _put(dock, glued, "/app", images.elf(images.EM_AARCH64))
    dock.api.start(glued)
    dock.api.wait(glued, timeout=60)
    assert dock.api.logs(glued).decode().endswith("no newlineexec /app: exec format error\n")
    procs.wait_for(lambda: _exits(col) >= 3, timeout=60, what="three blind-spot exits counted")
    _stays(col, 3, ag)
    by_id = {e["container"]["id"]: e for e in _events(col)}
    assert by_id[none]["evidence"] == "file_only" and by_id[none]["cause"] == "arch_mismatch"
    assert by_id[init]["evidence"] == "file_only" and "tini" in by_id[init]["container"]["runtime_message"]
    assert by_id[glued]["evidence"] == "runtime_message" and by_id[glued]["container"]["runtime_message"] == "exec /app: exec format error"


def test_a_fresh_agent_backfills_old_exits_marked_and_uncounted(dock, collector, agent) -> None:
    """Item 8: old failures are stored, marked back-filled, and kept out of enoexec_exits_total."""
    tag = dock.load("old", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    old = [dock.run(tag) for _ in range(3)]
    col = collector()
    ag = agent(col.grpc, "fresh-host")
    procs.wait_for(lambda: len(_events(col)) >= 3, timeout=60, what="the old exits stored")
    text = procs.metrics(col.http)
    assert procs.total(text, "enoexec_exits_total") == 0
    assert procs.total(text, "enoexec_host_exits_total") == 0
    assert procs.total(text, "enoexec_backfilled_exits_total", host="fresh-host") == 3
    assert {e["container"]["id"] for e in _events(col) if e["backfilled"]} == set(old)
    new = dock.run(tag)
    procs.wait_for(lambda: _exits(col) >= 1, timeout=60, what="the new exit counted")
    _stays(col, 1, ag)
    assert [e["backfilled"] for e in _events(col) if e["container"]["id"] == new] == [False]


def test_a_host_id_change_with_spooled_events_is_refused_in_one_line(dock, tmp_path, engine) -> None:
    """Item 12: events spooled as one host are not silently dropped under another id."""
    tag = dock.load("hostid", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    state = tmp_path / "state-hostid"
    unreachable = f"127.0.0.1:{procs.free_port()}"  # no collector: the event stays spooled
    first = procs.Proc(procs.agent_argv(unreachable, engine.url, state, "old-id"), tmp_path / "first.log").start()
    try:
        procs.wait_for(lambda: "docker event stream connected" in first.output(), timeout=30, what="agent connected")
        dock.run(tag)
        procs.wait_for(lambda: "\"msg\": \"exec format error\", \"event_id\"" in first.output(), timeout=30, what="the event spooled")
    finally:
        assert first.stop() == 0
    second = procs.Proc(procs.agent_argv(unreachable, engine.url, state, "new-id"), tmp_path / "second.log").start()
    assert second.popen is not None
    assert second.popen.wait(timeout=30) == 2
    lines = [line for line in second.output().splitlines() if "old-id" in line]
    assert len(lines) == 1 and "--host-id old-id" in lines[0] and "Traceback" not in second.output(), second.output()


def test_the_spool_wal_is_truncated_while_the_agent_runs(dock, collector, agent, tmp_path) -> None:
    """Item 12: the agent's SQLite WAL is checkpointed while it runs, not only at exit."""
    tag = dock.load("wal", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc, "wal-host")
    wal = tmp_path / "state-wal-host" / "spool.db-wal"
    for _ in range(3):
        dock.run(tag)
    procs.wait_for(lambda: _exits(col) >= 3, timeout=60, what="three exits counted")
    procs.wait_for(lambda: wal.exists() and wal.stat().st_size == 0, timeout=30, what="the WAL truncated after the acks")
    assert ag.alive()
