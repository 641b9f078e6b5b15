"""Fixtures against a real Docker Engine, and real collector/agent processes."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests import dockerd, images, procs, require


@pytest.fixture(scope="session")
def engine() -> Iterator[dockerd.Engine]:
    with dockerd.engine() as eng:
        if eng is None:
            require.missing("no Docker Engine: set DOCKER_HOST, or run as root with dockerd installed (apt-get install docker.io)")
        yield eng


@pytest.fixture(scope="session")
def api(engine: dockerd.Engine) -> Iterator[Any]:
    client = engine.client()
    yield client
    client.close()


class Docker:
    """Loads images and runs containers; removes everything it made."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.prefix = "enoexec-test-" + uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.images: list[str] = []

    def load(self, name: str, files: list[images.File], **kw: Any) -> str:
        tag = f"{self.prefix}/{name}:1"
        data = images.archive(tag, files, **kw)
        for _ in self.api.load_image(io.BytesIO(data)):
            pass
        self.images.append(tag)
        return tag

    def run(self, image: str, *, name: str = "", wait: bool = True, **kw: Any) -> str:
        """Create and start a container (network none); wait for it to exit."""
        host_config = self.api.create_host_config(network_mode="none", **kw.pop("host_config", {}))
        c = self.api.create_container(image, name=name or None, host_config=host_config, **kw)
        if not host_config.get("AutoRemove"):
            self.containers.append(c["Id"])
        self.api.start(c["Id"])
        if wait:
            try:
                self.api.wait(c["Id"], timeout=60)
            except docker.errors.NotFound:
                pass  # auto-removed
        return c["Id"]

    def cleanup(self) -> None:
        for cid in self.containers:
            try:
                self.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
        for tag in self.images:
            try:
                self.api.remove_image(tag, force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def dock(api: Any) -> Iterator[Docker]:
    d = Docker(api)
    yield d
    d.cleanup()
    leftovers = api.containers(all=True, filters={"label": "io.enoexec.helper"})
    assert not leftovers, f"helper containers left behind: {leftovers}"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Callable[..., procs.Proc]]:
    """Start collectors: ``collector()`` -> running Proc with .grpc/.http ports."""
    started: list[procs.Proc] = []

    def start(db: str | None = None, grpc_port: int | None = None, http_port: int | None = None, *extra: str) -> procs.Proc:
        g, h = grpc_port or procs.free_port(), http_port or procs.free_port()
        p = procs.Proc(procs.collector_argv(db or str(tmp_path / "collector.db"), g, h, *extra), tmp_path / f"collector-{g}.log")
        p.grpc, p.http = g, h  # type: ignore[attr-defined]
        p.start()
        started.append(p)
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz") or not p.alive(), timeout=30, what="collector /healthz")
        assert p.alive(), p.output()
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def agent(tmp_path: Path, engine: dockerd.Engine) -> Iterator[Callable[..., procs.Proc]]:
    started: list[procs.Proc] = []

    def start(collector_port: int, host_id: str = "test-host", state_dir: Path | None = None, *extra: str) -> procs.Proc:
        sd = state_dir or tmp_path / f"state-{host_id}"
        p = procs.Proc(procs.agent_argv(f"127.0.0.1:{collector_port}", engine.url, sd, host_id, *extra), tmp_path / f"agent-{host_id}.log")
        p.start()
        started.append(p)
        procs.wait_for(lambda: "docker event stream connected" in p.output() or not p.alive(), timeout=30, what="agent connected to docker")
        assert p.alive(), p.output()
        return p

    yield start
    for p in started:
        p.stop()
