"""Exits while the agent's Docker event stream is down are still counted once (issue #10 item 3).

Its own private dockerd, killed with SIGKILL and started again in the middle of crash loops: the agent
resubscribes with ``since=`` and reconciles restarting containers too.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from agent.engine.exits import docker_since, event_time, parse_docker_time
from tests import dockerd, images, procs, require
from tests.images import File


@pytest.fixture
def own_engine() -> Iterator[dockerd.Engine]:
    if shutil.which("dockerd") is None:
        require.missing("dockerd is not installed (apt-get install docker.io)")
    root = Path(tempfile.mkdtemp(prefix="enoexec-dockerd-", dir="/tmp"))
    eng = dockerd.Engine(f"unix://{root}/docker.sock", private=True, root=root)
    try:
        eng.start()
        yield eng
    finally:
        try:
            c = eng.client()
            for x in c.containers(all=True):
                c.remove_container(x["Id"], force=True)
        except Exception:  # noqa: BLE001 - best effort before the daemon goes
            pass
        eng.stop()
        _end_leftovers(root)
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def kill_and_restart(eng: dockerd.Engine) -> None:
    """``kill -9`` the daemon (its containers' shims live on), then start it again."""
    assert eng.proc is not None and eng.root is not None
    eng.proc.send_signal(signal.SIGKILL)
    eng.proc.wait(timeout=30)
    eng.proc = None
    for stale in ("docker.pid", "exec/containerd/containerd.pid"):
        (eng.root / stale).unlink(missing_ok=True)
    time.sleep(1)  # exits happen while no daemon answers
    eng.start()


def _end_leftovers(root: Path) -> None:
    """Shims of the killed daemon's containers outlive it: end those of this engine only."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and str(root).encode() in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


class DieCounter:
    """Docker's own record of failed exits, followed across daemon restarts."""

    def __init__(self, url: str, ids: set[str]) -> None:
        self.url, self.ids, self.keys = url, ids, set()
        self.stop = threading.Event()
        self.last = time.time()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                api = dockerd.Engine(self.url, private=False).client()
                for ev in api.events(decode=True, since=self.last - 1, filters={"type": "container", "event": "die"}):
                    when = event_time(ev)
                    self.last = max(self.last, when.timestamp())
                    if ev["id"] in self.ids and ev["Actor"]["Attributes"].get("exitCode") == "1":
                        self.keys.add((ev["id"], docker_since(when)))
            except Exception:  # noqa: BLE001 - the daemon is restarting
                time.sleep(0.1)


def test_exits_across_a_docker_restart_are_counted_once(own_engine, collector, tmp_path) -> None:
    api: Any = own_engine.client()
    tag = "enoexec-test/reconnect:1"
    for _ in api.load_image(io.BytesIO(images.archive(tag, [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"]))):
        pass
    col = collector()
    ag = procs.Proc(procs.agent_argv(f"127.0.0.1:{col.grpc}", own_engine.url, tmp_path / "state", "reconnect-host"), tmp_path / "agent.log")
    ag.start()
    try:
        procs.wait_for(lambda: "docker event stream connected" in ag.output(), timeout=30, what="agent connected")
        ids = [api.create_container(tag, host_config=api.create_host_config(network_mode="none", restart_policy={"Name": "always"}))["Id"] for _ in range(3)]
        dies = DieCounter(own_engine.url, set(ids))
        for c in ids:
            api.start(c)
        procs.wait_for(lambda: len(dies.keys) >= 6, timeout=30, what="a few exits before the restart")
        kill_and_restart(own_engine)  # the loops go on failing while the agent reconnects
        api = own_engine.client()
        procs.wait_for(lambda: "reconnecting" in ag.output() or "docker unavailable" in ag.output(), timeout=30, what="the agent noticed")
        # let the loops run on across the reconnect: every container fails again under the new daemon
        noticed = len(dies.keys)
        procs.wait_for(lambda: len(dies.keys) >= noticed + len(ids), timeout=60, what="exits after the restart")
        def no_restart(cid: str) -> bool:
            try:  # refused while the container changes state; ask again
                api.update_container(cid, restart_policy={"Name": "no"})
                return True
            except docker.errors.APIError:
                return False

        for c in ids:
            procs.wait_for(lambda c=c: no_restart(c), timeout=30, interval=0.05, what="restart policy updated")
        procs.wait_for(lambda: all(api.inspect_container(c)["State"]["Status"] == "exited" for c in ids), timeout=90, what="loops ended")
        # the die event of each container's last exit follows its FinishedAt: wait until the counter has it
        finished = [parse_docker_time(api.inspect_container(c)["State"]["FinishedAt"]) for c in ids]
        last_finish = max(f.timestamp() for f in finished if f is not None)
        procs.wait_for(lambda: dies.last >= last_finish, timeout=30, what="the last die event")
        dies.stop.set()
        expected = len(dies.keys)
        assert expected >= 9
        procs.wait_for(lambda: procs.total(procs.metrics(col.http), "enoexec_exits_total") >= expected, timeout=60,
                       what=f"{expected} exits counted")
        procs.wait_reconciled(ag)  # a reconciliation pass covering every exit: nothing counted twice
        evs = procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/events?limit=1000")["events"]
        counted = {(e["container"]["id"], docker_since(_when(e["time"]))): e for e in evs}
        assert procs.total(procs.metrics(col.http), "enoexec_exits_total") == len(evs) == len(counted)
        # Every exit Docker recorded as a die event is counted...
        assert dies.keys <= set(counted), sorted(dies.keys - set(counted))
        # ...and the rest are exits while no daemon ran, which Docker never sent as
        # die events: found in the containers' state (named by FinishedAt), at most
        # one per container, and none is a die event counted a second time.
        extra = [e for k, e in counted.items() if k not in dies.keys]
        assert len(extra) <= len(ids), extra
        for e in extra:
            assert e["time"] == e["container"]["finished_at"]
            near = [t for c, t in dies.keys if c == e["container"]["id"] and 0 <= float(t) - _when(e["time"]).timestamp() < 0.25]
            assert not near, (e, near)
    finally:
        ag.stop()
