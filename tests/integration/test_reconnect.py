"""Exits while the agent's Docker event stream is down are still counted once (issue #10 item 3).

Its own private dockerd, restarted in the middle of crash loops: the agent
resubscribes with ``since=`` and reconciles restarting containers too.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from agent.engine.exits import docker_since, event_time
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
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


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
        own_engine.restart()  # containers come back and keep failing while the agent reconnects
        api = own_engine.client()
        procs.wait_for(lambda: "reconnecting" in ag.output() or "docker unavailable" in ag.output(), timeout=30, what="the agent noticed")
        time.sleep(3)  # let the loops run on across the reconnect
        def no_restart(cid: str) -> bool:
            try:  # refused while the container changes state; ask again
                api.update_container(cid, restart_policy={"Name": "no"})
                return True
            except docker.errors.APIError:
                return False

        for c in ids:
            procs.wait_for(lambda c=c: no_restart(c), timeout=30, interval=0.05, what="restart policy updated")
        procs.wait_for(lambda: all(api.inspect_container(c)["State"]["Status"] == "exited" for c in ids), timeout=90, what="loops ended")
        time.sleep(1)
        dies.stop.set()
        expected = len(dies.keys)
        assert expected >= 9
        procs.wait_for(lambda: procs.total(procs.metrics(col.http), "enoexec_exits_total") >= expected, timeout=60,
                       what=f"{expected} exits counted")
        time.sleep(7)  # a reconciliation pass: nothing counted twice
        assert procs.total(procs.metrics(col.http), "enoexec_exits_total") == expected, ag.output()[-4000:]
    finally:
        ag.stop()
