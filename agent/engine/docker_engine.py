"""The Docker Engine behind the engine boundary (``agent.engine.base.Engine``).

Ties together what lives beside it in ``agent.engine``: ``connect`` (client and
facts), ``watch`` (the event stream), ``reconcile`` (replayed die events, exited
and restarting containers) and, for diagnosis, ``images`` and ``binaries``. Any
Docker-compatible socket (Podman's, balena-engine's) is this engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis.diagnose import Diagnoser
from agent.engine.connect import docker_client, gather_facts
from agent.engine.exits import Exit
from agent.engine.images import DAEMON_WAIT, ImageInspector
from agent.engine.reconcile import InspectCache, replay_exits, state_exits
from agent.engine.watch import Watcher
from agent.errors import DockerUnavailable
from agent.model import Event, HostFacts

logger = logging.getLogger(__name__)


class DockerEngine:
    name = "docker"
    unavailable: tuple[type[BaseException], ...] = (
        docker.errors.DockerException, requests.exceptions.RequestException, DockerUnavailable,
    )

    def __init__(self, address: str, *, api: Any | None = None) -> None:
        self.address = address
        self.api = api or docker_client(address)
        self._inspected = InspectCache()
        self._diagnoser: Diagnoser | None = None
        # Inspecting a just-created container races ``--rm``: its own threads, no queue.
        self._quick = ThreadPoolExecutor(max_workers=4, thread_name_prefix="docker-create")

    def facts(self, host_id: str, proc_root: Path) -> HostFacts:
        return gather_facts(self.api, host_id, proc_root)

    def diagnoser(self, host: Callable[[], HostFacts], *, lookup_registry: bool, image_fallback: bool,
                  clock: Callable[[], datetime], daemon: bool = True) -> Diagnoser:
        images = ImageInspector(self.api, wait=DAEMON_WAIT) if daemon else ImageInspector(self.api)
        self._diagnoser = Diagnoser(self.api, host, lookup_registry=lookup_registry, images=images,
                                    image_fallback=image_fallback, clock=clock)
        return self._diagnoser

    def _on_create(self, container_id: str) -> None:
        # Straight from the event thread to its own threads: an --rm container
        # may be gone a few hundred milliseconds later.
        if self._diagnoser is not None:
            self._diagnoser.expect(container_id)
            self._quick.submit(self._diagnoser.remember, container_id)

    def watcher(self, on_exit: Callable[[Exit], None], on_connect: Callable[[], None], *,
                stop: threading.Event, clock: Callable[[], datetime],
                on_start: Callable[[str, datetime], None] | None = None) -> Watcher:
        return Watcher(self.api, on_exit, on_connect, stop=stop, on_create=self._on_create, on_start=on_start, clock=clock)

    def replay_exits(self, since: datetime, until: datetime) -> list[Exit]:
        return replay_exits(self.api, since, until)

    def state_exits(self, since: datetime, until: datetime) -> list[Exit]:
        return state_exits(self.api, since, until, self._inspected)

    def forget(self, container_id: str) -> None:
        self._inspected.forget(container_id)

    def reset(self) -> None:
        self._inspected.clear()  # what happened while disconnected is unknown

    def enrich(self, event: Event) -> Event:
        return event

    def close(self) -> None:
        self._quick.shutdown(wait=False, cancel_futures=True)
