"""containerd behind the engine boundary (``agent.engine.base.Engine``).

One client, the namespaces to watch (``k8s.io`` for the kubelet's pods,
``default`` for ``ctr`` and nerdctl; never ``moby``, Docker's own, which the
Docker engine already counts), and the paths on this node where containerd's
snapshotter directories, the CRI plugin's state and the pods' logs are read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from agent.diagnosis.diagnose import Diagnoser
from agent.engine.containerd import describe as d
from agent.engine.containerd import reconcile
from agent.engine.containerd.binaries import SnapshotBinaryReader
from agent.engine.containerd.client import ContainerdClient
from agent.engine.containerd.containers import ContainerdContainers
from agent.engine.containerd.images import ContainerdImages
from agent.engine.containerd.watch import ContainerdWatcher
from agent.engine.exits import Exit
from agent.errors import ContainerdUnavailable
from agent.host import hostfacts
from agent.model import Event, HostFacts, KubernetesPod

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
K3S_ADDRESS = "/run/k3s/containerd/containerd.sock"
DEFAULT_NAMESPACES = ("k8s.io", "default")
DEFAULT_ROOT = Path("/var/lib/containerd")
CRI_PLUGIN_DIR = "io.containerd.grpc.v1.cri"
DOCKER_NAMESPACE = "moby"


class ContainerdEngine:
    name = "containerd"
    unavailable: tuple[type[BaseException], ...] = (ContainerdUnavailable,)

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        namespaces: Sequence[str] = DEFAULT_NAMESPACES,
        root: Path = DEFAULT_ROOT,
        cri_log_root: Path = d.DEFAULT_CRI_LOG_ROOT,
        client: ContainerdClient | None = None,
    ) -> None:
        self.address = address
        self.namespaces = tuple(ns for ns in namespaces if ns != DOCKER_NAMESPACE)
        self._root = root
        self.client = client or ContainerdClient(address)
        self._host_platform = ""
        self.images = ContainerdImages(self.client, lambda: self._host_platform, self._image_namespace)
        self.containers = ContainerdContainers(self.client, self.namespaces, images=self.images,
                                               cri_log_root=cri_log_root, cri_root=root / CRI_PLUGIN_DIR)
        self._quick = ThreadPoolExecutor(max_workers=4, thread_name_prefix="containerd-create")

    def _image_namespace(self, ref: str) -> str:
        return self.containers.image_namespace(ref)

    def facts(self, host_id: str, proc_root: Path) -> HostFacts:
        host = hostfacts.gather(host_id=host_id or None, proc_root=proc_root, docker_info=None, docker_version=None)
        try:
            version = self.client.version()
        except ContainerdUnavailable:
            version = ""
        self._host_platform = host.platform
        return replace(host, engine=self.name, engine_version=version)

    def diagnoser(self, host: Callable[[], HostFacts], *, lookup_registry: bool, image_fallback: bool,
                  clock: Callable[[], datetime], daemon: bool = True) -> Diagnoser:
        if not self._host_platform:
            self._host_platform = host().platform
        return Diagnoser(self.containers, host, images=self.images,  # type: ignore[arg-type]
                         binaries=SnapshotBinaryReader(self.containers),  # type: ignore[arg-type]
                         lookup_registry=lookup_registry, image_fallback=image_fallback, clock=clock)

    def watcher(self, on_exit: Callable[[Exit], None], on_connect: Callable[[], None], *,
                stop: threading.Event, clock: Callable[[], datetime],
                on_start: Callable[[str, datetime], None] | None = None) -> ContainerdWatcher:
        # on_start (the emulation warning on start) is not wired on containerd yet.
        def on_create(namespace: str, container_id: str) -> None:
            # Off the event thread: a `ctr run --rm` container is gone moments after its exit.
            self._quick.submit(self.containers.created, namespace, container_id)

        return ContainerdWatcher(
            self.client, self.namespaces, on_exit, on_connect, stop=stop, on_create=on_create,
            on_task_create=self.containers.task_created,
            on_namespace=lambda cid, ns: self.containers.noted(cid, ns),
            on_task_start=self.containers.task_started,
        )

    def replay_exits(self, since: datetime, until: datetime) -> list[Exit]:
        """containerd keeps no event history, but its stopped tasks and the CRI plugin's exit
        records name each exit exactly as the live /tasks/exit did (container id, exited_at):
        they are its replay, up to now (no grace needed, unlike Docker's container state)."""
        found = reconcile.task_exits(self.client, self.namespaces, since, until)
        if "k8s.io" in self.namespaces:
            found += reconcile.cri_exits(self.client, self._root / CRI_PLUGIN_DIR, since, until)
        for ns, exit in found:
            self.containers.noted(exit.container_id, ns)
        return sorted({e.key: e for _, e in found}.values(), key=lambda e: e.time or since)

    def state_exits(self, since: datetime, until: datetime) -> list[Exit]:
        return []  # everything containerd keeps is read by replay_exits

    def forget(self, container_id: str) -> None:
        pass  # nothing cached about task state

    def reset(self) -> None:
        pass

    def enrich(self, event: Event) -> Event:
        identity = self.containers.kube(event.container.id)
        if identity is None:
            return event
        pod = KubernetesPod(pod=identity.pod, namespace=identity.namespace, container=identity.container,
                            pod_uid=identity.uid, restart_count=identity.restart_count)
        return replace(event, container=replace(event.container, kubernetes=pod))

    def close(self) -> None:
        self._quick.shutdown(wait=False, cancel_futures=True)
        self.client.close()
