"""One slow Docker call holds up only its own container's exits (issue #12 item 5)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.service import Agent
from enoexec.v1 import enoexec_pb2 as pb
from tests import images
from tests.images import File


class Stalling:
    """The real client; inspecting one container waits until released."""

    def __init__(self, inner: Any, slow_id: str) -> None:
        self.inner, self.slow_id = inner, slow_id
        self.release, self.stalled = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def inspect_container(self, cid: str, *a: Any, **kw: Any) -> Any:
        if cid == self.slow_id:
            self.stalled.set()
            self.release.wait(timeout=60)
        return self.inner.inspect_container(cid, *a, **kw)


def _config(url: str, state: Path) -> AgentConfig:
    return AgentConfig(
        collector="127.0.0.1:1", docker_host=url, state_dir=state, host_id="parallel-host", log_level="info", log_format="auto",
        spool_max_events=1000, spool_max_bytes=1 << 24, batch_size=100, heartbeat_interval=15.0,
        reconcile_interval=60.0, lookup_registry=False, image_fallback=True, proc_root=Path("/proc"),
        insecure=True, tls_ca=None, tls_cert=None, tls_key=None, token_file=None,
    )


def test_a_stalled_inspect_does_not_hold_up_other_containers(dock, api, engine, tmp_path) -> None:
    tag = dock.load("par", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    slow = dock.run(tag)
    fast = [dock.run(tag) for _ in range(3)]
    stalling = Stalling(api, slow)
    agent = Agent(_config(engine.url, tmp_path / "state"), api=stalling)

    def spooled() -> set[str]:
        """The containers whose exits are in the agent's spool, read from the events themselves."""
        return {pb.Event.FromString(e.payload).container.id for e in agent.spool.peek(100)}

    async def main() -> set[str]:
        task = asyncio.create_task(agent.reconcile())
        while not stalling.stalled.is_set():
            await asyncio.sleep(0.05)
        for _ in range(600):  # the other containers' exits arrive while the slow one waits
            if agent.spool.stats().events >= 3:
                break
            await asyncio.sleep(0.05)
        while_stalled = spooled()
        assert not task.done()
        stalling.release.set()
        await asyncio.wait_for(task, timeout=60)
        return while_stalled

    try:
        while_stalled = asyncio.run(main())
        assert while_stalled == set(fast), "the fast containers' exits were spooled while the slow one's inspect stalled"
        assert spooled() == {slow, *fast}  # and the slow one's once released
    finally:
        stalling.release.set()
        agent.spool.close()
