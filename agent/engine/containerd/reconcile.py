"""Find task exits the event stream missed: containerd keeps no event history.

Two sources, named exactly as the live ``/tasks/exit`` event names an exit
(container id and ``exited_at``), so an exit met twice is counted once:

1. stopped tasks (``Tasks.List``): a task stays until its client deletes it
   (``ctr run -d``, a client that died, a containerd restarted meanwhile);
2. for pods, the CRI plugin's own record of a container's last exit
   (``<containerd root>/io.containerd.grpc.v1.cri/containers/<id>/status``,
   ``{"Version": "v1", "Pid": 0, ..., "FinishedAt": <ns>, "ExitCode": n, ...}``: Go embeds the
   status in the versioned record, so its fields sit at the top; measured on containerd 1.6.20),
   since the CRI plugin deletes a pod container's task as soon as it exits. Its
   ``FinishedAt`` is the task exit's ``exited_at``.

An exit whose task was deleted by its client while the agent was not listening,
outside Kubernetes, leaves no trace to find.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.engine.containerd.watch import exited_at
from agent.engine.exits import EPOCH, Exit

logger = logging.getLogger(__name__)

STOPPED = 3


def cri_record(data: bytes) -> tuple[int, datetime, datetime | None] | None:
    """(exit code, finished at, started at) from a CRI status file; ``None`` if it has not exited."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("Version") != "v1":
        return None
    nested = doc.get("Status")
    status: dict[str, Any] = nested if isinstance(nested, dict) else doc  # nested: never seen, accepted
    if not status.get("FinishedAt"):
        return None
    try:
        nanos, code = int(status["FinishedAt"]), int(status.get("ExitCode") or 0)
        started = int(status.get("StartedAt") or 0)
    except (TypeError, ValueError):
        return None
    return (code, EPOCH + timedelta(microseconds=nanos // 1000),
            EPOCH + timedelta(microseconds=started // 1000) if started else None)


def cri_status(data: bytes) -> tuple[int, datetime] | None:
    """(exit code, finished at) from a CRI status file; ``None`` if it has not exited."""
    record = cri_record(data)
    return None if record is None else (record[0], record[1])


def cri_record_of(cri_root: Path, container_id: str) -> tuple[int, datetime, datetime | None] | None:
    """The CRI plugin's record of this container's exit, if it is readable here."""
    if "/" in container_id or container_id in (".", ".."):
        return None
    try:
        return cri_record((cri_root / "containers" / container_id / "status").read_bytes())
    except OSError:
        return None


def cri_status_of(cri_root: Path, container_id: str) -> tuple[int, datetime] | None:
    record = cri_record_of(cri_root, container_id)
    return None if record is None else (record[0], record[1])


def task_exits(client: Any, namespaces: tuple[str, ...], since: datetime, until: datetime) -> list[tuple[str, Exit]]:
    """(namespace, exit) of every stopped init task with a non-zero status that exited in (since, until]."""
    found = []
    for ns in namespaces:
        for t in client.tasks(ns):
            # Listed tasks name their container in ``id`` (``container_id`` is left empty).
            cid = t.container_id or t.id
            if int(t.status) != STOPPED or t.id != cid or not t.exit_status:
                continue
            when = exited_at(t.exited_at)
            if since < when <= until:
                found.append((ns, Exit(container_id=cid, exit_code=int(t.exit_status), time=when)))
    return found


def cri_exits(client: Any, cri_root: Path, since: datetime, until: datetime,
              namespace: str = "k8s.io") -> list[tuple[str, Exit]]:
    """(namespace, exit) of pod containers whose CRI status tells of a non-zero exit in (since, until]."""
    if namespace not in ("k8s.io",) or not (cri_root / "containers").is_dir():
        return []
    found = []
    for c in client.containers(namespace):
        status = cri_status_of(cri_root, c.id)
        if status is None or status[0] == 0 or not (since < status[1] <= until):
            continue
        found.append((namespace, Exit(container_id=c.id, exit_code=status[0], time=status[1])))
    return found
