"""What diagnosis asks of containerd about one container: its description, its log, its files.

``ContainerdContainers`` answers the same questions as the Docker client does for
``agent.diagnosis.diagnose.Diagnoser`` (``inspect_container``, ``logs``), from
containerd's containers, tasks and snapshots and the files on this node:

- the description comes from the container record and its task
  (``agent.engine.containerd.describe``);
- the log is the pod attempt's CRI log file (read once the CRI plugin recorded the
  exit, when it made the container), else a plain task's ``file://`` log URI, else
  none (then the exit is judged by its file alone, as with Docker's
  ``--log-driver none``);
- files are read from the snapshot directories ``Snapshots.Mounts`` names, or,
  once the container and its snapshot are gone (``ctr run --rm``), from the
  image layers the ``/tasks/create`` event named (they outlive the container).

It remembers, for a bounded number of containers, what ``/containers/create``
and ``/tasks/create`` said (namespace, description, root filesystem, log URI),
so a removed container is still described and read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.engine.containerd import describe as d
from agent.engine.containerd import logs as cl
from agent.engine.containerd import reconcile
from agent.engine.containerd.rootfs import LayeredFiles, layer_dirs, lower_dirs
from agent.errors import ContainerdUnavailable

logger = logging.getLogger(__name__)

# The CRI plugin copies a container's output to its log file as it comes; the
# task's exit can be published before the last line lands. When the log holds no
# line yet, it is read again for up to this long.
LOG_SETTLE = 0.5
LOG_POLL = 0.05
# For a container of the CRI plugin, its exit record is written only after the output is
# copied to the log (its task is deleted, which waits for the copy, then the status is
# updated): the agent waits for that record, this long at most, then reads the log.
CRI_EXIT_WAIT = 3.0
STATUS = {0: "unknown", 1: "created", 2: "running", 3: "stopped", 4: "paused", 5: "pausing"}


@dataclass(frozen=True)
class Seen:
    """What the events said about one container while it lived."""

    namespace: str
    layers: tuple[Path, ...] = ()
    lower: tuple[Path, ...] = ()
    stdout: str = ""
    description: dict[str, Any] | None = None
    started: datetime | None = None  # the /tasks/start event's time


def _when(ts: Any) -> datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000)


class ContainerdContainers:
    def __init__(
        self,
        client: Any,
        namespaces: Sequence[str],
        *,
        images: Any,
        cri_log_root: Path = d.DEFAULT_CRI_LOG_ROOT,
        cri_root: Path | None = None,
        remember: int = 1024,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._namespaces = tuple(namespaces)
        self._images = images
        self._log_root = cri_log_root
        self._cri_root = cri_root
        self._sleep = sleep
        self._seen: OrderedDict[str, Seen] = OrderedDict()
        self._image_layers: OrderedDict[str, tuple[Path, ...]] = OrderedDict()
        self._size = remember
        self._lock = threading.Lock()

    # -- memory --------------------------------------------------------------------
    def namespace_of(self, container_id: str) -> str:
        with self._lock:
            seen = self._seen.get(container_id)
        if seen is not None:
            return seen.namespace
        for ns in self._namespaces:
            if self._client.container(ns, container_id) is not None:
                self._note(container_id, namespace=ns)
                return ns
        return self._namespaces[0]

    def image_namespace(self, ref: str) -> str:
        """The namespace to resolve an image in: that of the last container seen using it."""
        with self._lock:
            for seen in reversed(self._seen.values()):
                desc = seen.description or {}
                if ref in (desc.get("Image"), (desc.get("Config") or {}).get("Image")):
                    return seen.namespace
        return self._namespaces[0]

    def _note(self, container_id: str, **changes: Any) -> Seen:
        with self._lock:
            old = self._seen.pop(container_id, None)
            base = old or Seen(changes.get("namespace", self._namespaces[0]))
            seen = Seen(**{**base.__dict__, **changes})
            self._seen[container_id] = seen
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
            image_id = (seen.description or {}).get("Image")
            if image_id and seen.lower:
                # A container's lower directories are its image's layers: they outlive it.
                self._image_layers[image_id] = seen.lower
                self._image_layers.move_to_end(image_id)
                while len(self._image_layers) > self._size:
                    self._image_layers.popitem(last=False)
        return seen

    def noted(self, container_id: str, namespace: str) -> None:
        """The namespace an event or a listing named for this container."""
        with self._lock:
            seen = self._seen.get(container_id)
        if seen is None or seen.namespace != namespace:
            self._note(container_id, namespace=namespace)

    def created(self, namespace: str, container_id: str) -> None:
        """``/containers/create``: describe it now, for when it is gone (called off the event thread)."""
        try:
            desc = self._describe(namespace, container_id)
        except ContainerdUnavailable as e:
            logger.debug("created container not described container=%s error=%s", container_id[:12], e)
            return
        if desc is not None:
            self._note(container_id, namespace=namespace, description=desc)

    def task_created(self, namespace: str, container_id: str, mounts: Sequence[tuple[str, str, Sequence[str]]],
                     stdout: str) -> None:
        """``/tasks/create``: the root filesystem's directories and the log URI, from the event itself."""
        self._note(container_id, namespace=namespace, layers=layer_dirs(mounts), lower=lower_dirs(mounts), stdout=stdout)

    def known_description(self, container_id: str) -> bool:
        with self._lock:
            seen = self._seen.get(container_id)
        return seen is not None and seen.description is not None

    def task_started(self, namespace: str, container_id: str, when: datetime) -> None:
        """``/tasks/start``: when its process started (how long it ran tells a crash at start)."""
        self._note(container_id, namespace=namespace, started=when)

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._seen.pop(container_id, None)

    # -- the questions diagnosis asks ---------------------------------------------
    def _describe(self, namespace: str, container_id: str) -> dict[str, Any] | None:
        c = self._client.container(namespace, container_id)
        if c is None:
            return None
        spec = d.spec_json(c.spec.type_url, c.spec.value)
        labels = dict(c.labels)
        meta = d.cri_metadata({k: v.value for k, v in c.extensions.items()})
        identity = d.kube_identity(labels, (spec.get("annotations") or {}), meta)
        task = self._client.task(namespace, container_id)
        image = self._images.resolve(namespace, c.image) if c.image else None
        status, code, when = "stopped", 0, None
        with self._lock:
            seen = self._seen.get(container_id)
        started = seen.started if seen is not None else None
        if task is not None:
            status, code, when = STATUS.get(int(task.status), ""), int(task.exit_status), _when(task.exited_at)
        elif self._cri_root is not None and identity is not None:
            # The CRI plugin deletes a pod container's task at its exit and keeps the exit itself.
            record = reconcile.cri_record_of(self._cri_root, container_id)
            if record is not None:
                code, when, started = record[0], record[1], record[2] or started
        return d.describe(
            container_id, image_ref=c.image, image_id=(image or {}).get("Id", ""), spec=spec, labels=labels,
            identity=identity, status=status, exit_code=code, exited_at=when, started_at=started,
        ) | {"_snapshot": (c.snapshotter, c.snapshot_key), "_kube": identity}  # "_" keys: this engine's own

    def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        """The container's description; the one remembered from its creation once it is gone
        (then marked removed); ``None`` if containerd never told of it."""
        ns = self.namespace_of(container_id)
        desc = self._describe(ns, container_id)
        if desc is not None:
            self._note(container_id, namespace=ns, description=desc)
            return desc
        with self._lock:
            seen = self._seen.get(container_id)
        if seen is None or seen.description is None:
            return None
        return seen.description | {"HostConfig": {"AutoRemove": True}}

    def kube(self, container_id: str) -> d.KubeIdentity | None:
        with self._lock:
            seen = self._seen.get(container_id)
        return ((seen.description if seen else None) or {}).get("_kube")

    def logs(self, container_id: str, **_: Any) -> str:
        """The end of the container's output: its CRI log, or its task's file log; "" when neither."""
        with self._lock:
            seen = self._seen.get(container_id)
        desc = (seen.description if seen else None) or {}
        identity = desc.get("_kube")
        path = d.cri_log_path(identity, self._log_root) if identity is not None else None
        if path is not None:
            if identity is not None and identity.log_path and self._cri_root is not None:
                self._await_cri_exit(container_id)
            return self._settled(cl.cri_log, path)
        raw = cl.file_uri_path(seen.stdout) if seen else None
        return self._settled(cl.raw_log, raw) if raw is not None else ""

    def _await_cri_exit(self, container_id: str) -> None:
        """Until the CRI plugin recorded the exit (so the log is complete), at most CRI_EXIT_WAIT;
        at once when its record cannot be read here."""
        assert self._cri_root is not None
        if not (self._cri_root / "containers" / container_id / "status").exists():
            return
        waited = 0.0
        while reconcile.cri_status_of(self._cri_root, container_id) is None and waited < CRI_EXIT_WAIT:
            self._sleep(LOG_POLL)
            waited += LOG_POLL

    def _settled(self, read: Callable[[Path], str | None], path: Path) -> str:
        """``read(path)``, again for up to LOG_SETTLE while it holds nothing: the output is
        copied to the file as it comes, and the exit can be published first."""
        text = read(path)
        waited = 0.0
        while not (text or "").strip() and waited < LOG_SETTLE:
            self._sleep(LOG_POLL)
            waited += LOG_POLL
            text = read(path)
        return text or ""

    def files(self, container_id: str) -> LayeredFiles | None:
        """The container's root filesystem: its snapshot's directories, else those its task was created with."""
        with self._lock:
            seen = self._seen.get(container_id)
        snap = ((seen.description if seen else None) or {}).get("_snapshot")
        if seen is not None and snap and snap[1]:
            mounts = self._client.mounts(seen.namespace, snap[0], snap[1])
            if mounts:
                return LayeredFiles(layer_dirs(mounts))
        if seen is not None and seen.layers:
            files = LayeredFiles(seen.layers)
            if files.usable:
                return files
        return None

    def image_files(self, image_id: str) -> LayeredFiles | None:
        """An image's layers, as the snapshotter last mounted them under one of its containers."""
        with self._lock:
            layers = self._image_layers.get(image_id)
        if not layers:
            return None
        files = LayeredFiles(layers)
        return files if files.usable else None
