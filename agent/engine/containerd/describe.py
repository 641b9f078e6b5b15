"""Describe a containerd container the way diagnosis reads every container. Pure functions.

Diagnosis reads one shape of container description, the Docker Engine API's
inspect shape (``Id``, ``Name``, ``Image``, ``Config{Image, Entrypoint, Cmd, Env,
WorkingDir, Labels}``, ``State{Status, Running, ExitCode, FinishedAt, Error}``,
``HostConfig{AutoRemove}``). A containerd container gives the same facts from its
OCI spec (``process.args``, ``process.env``, ``process.cwd``), its labels and its
task; ``Entrypoint`` holds the whole argv the runtime executes (``Cmd`` stays
empty: the spec has no such split).

Kubernetes identity needs no Kubernetes API: the kubelet's labels, which the CRI
plugin stores on the container (``io.kubernetes.pod.name``, ``.pod.namespace``,
``.pod.uid``, ``.container.name``), plus the attempt number from the CRI
plugin's own metadata (``Config.metadata.attempt``) or an
``io.kubernetes.container.restartCount`` label or annotation where present.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
RESTART_COUNT = "io.kubernetes.container.restartCount"
CRI_METADATA = "io.cri-containerd.container.metadata"
CRI_KIND = "io.cri-containerd.kind"
DEFAULT_CRI_LOG_ROOT = Path("/var/log/pods")


@dataclass(frozen=True)
class KubeIdentity:
    """Which pod container an exit belongs to, from the labels containerd keeps."""

    pod: str
    namespace: str
    container: str
    uid: str = ""
    restart_count: int | None = None
    log_path: str = ""  # the CRI plugin's own LogPath, when its metadata says


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def cri_metadata(extensions: dict[str, bytes]) -> dict[str, Any]:
    """The CRI plugin's ``{"Version": "v1", "Metadata": {...}}`` extension, or {}."""
    raw = extensions.get(CRI_METADATA)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    meta = doc.get("Metadata") if isinstance(doc, dict) else None
    return meta if isinstance(meta, dict) else {}


def kube_identity(labels: dict[str, str], annotations: dict[str, str] | None = None,
                  meta: dict[str, Any] | None = None) -> KubeIdentity | None:
    """The pod container's identity; ``None`` for a container no kubelet made (or a pod sandbox)."""
    if POD_NAME not in labels or CONTAINER_NAME not in labels:
        return None
    meta = meta or {}
    config = meta.get("Config") if isinstance(meta.get("Config"), dict) else {}
    attempt = (config.get("metadata") or {}).get("attempt") if config else None
    restart = _int(labels.get(RESTART_COUNT))
    if restart is None:
        restart = _int((annotations or {}).get(RESTART_COUNT))
    if restart is None and config:
        restart = _int(attempt) if attempt is not None else 0  # proto3 JSON omits a zero attempt
    return KubeIdentity(
        pod=labels[POD_NAME],
        namespace=labels.get(POD_NAMESPACE, ""),
        container=labels[CONTAINER_NAME],
        uid=labels.get(POD_UID, ""),
        restart_count=restart,
        log_path=str(meta.get("LogPath") or ""),
    )


def cri_log_path(identity: KubeIdentity, log_root: Path = DEFAULT_CRI_LOG_ROOT) -> Path | None:
    """Where the kubelet asked the CRI plugin to write this attempt's log:
    ``<root>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log``."""
    if identity.log_path:
        return Path(identity.log_path)
    if not (identity.namespace and identity.uid) or identity.restart_count is None:
        return None
    pod_dir = f"{identity.namespace}_{identity.pod}_{identity.uid}"
    name = f"{identity.restart_count}.log"
    if "/" in pod_dir or "/" in identity.container or posixpath.normpath(identity.container) in (".", ".."):
        return None
    return log_root / pod_dir / identity.container / name


def display_name(container_id: str, identity: KubeIdentity | None) -> str:
    """``namespace/pod/container`` for a pod's container, else the container id."""
    if identity is None:
        return container_id
    return f"{identity.namespace}/{identity.pod}/{identity.container}"


def rfc3339(when: datetime | None) -> str:
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(
    container_id: str,
    *,
    image_ref: str,
    image_id: str,
    spec: dict[str, Any],
    labels: dict[str, str],
    identity: KubeIdentity | None,
    status: str = "",
    exit_code: int = 0,
    exited_at: datetime | None = None,
    started_at: datetime | None = None,
    removed: bool = False,
) -> dict[str, Any]:
    """The container in the inspect shape diagnosis reads (see the module's docstring)."""
    raw = spec.get("process")
    process: dict[str, Any] = raw if isinstance(raw, dict) else {}
    args = [str(a) for a in (process.get("args") or [])]
    return {
        "Id": container_id,
        "Name": display_name(container_id, identity),
        "Image": image_id or image_ref,
        "Config": {
            "Image": image_ref,
            "Entrypoint": args,
            "Cmd": [],
            "Env": [str(e) for e in (process.get("env") or [])],
            "WorkingDir": str(process.get("cwd") or "/"),
            "Labels": dict(labels),
        },
        "State": {
            "Status": status,
            "Running": status in ("running", "paused", "pausing"),
            "ExitCode": exit_code,
            "StartedAt": rfc3339(started_at),
            "FinishedAt": rfc3339(exited_at),
            "Error": "",
        },
        "HostConfig": {"AutoRemove": removed},
    }


def spec_json(type_url: str, value: bytes) -> dict[str, Any]:
    """The OCI runtime spec containerd keeps as JSON in ``Container.spec``; {} if it is not one."""
    if "opencontainers/runtime-spec" not in type_url:
        return {}
    try:
        doc = json.loads(value)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
