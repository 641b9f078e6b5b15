"""Which engine the agent watches: the one place that knows every runtime.

``--runtime docker`` and ``--runtime containerd`` name it; ``auto`` (the
default) takes the first socket that exists: an explicit ``--containerd-address``,
containerd's ``/run/containerd/containerd.sock``, k3s's
``/run/k3s/containerd/containerd.sock``, else Docker. A host running Docker
Engine also runs containerd underneath (namespace ``moby``): ``auto`` then picks
Docker when its socket is there too, so one exit is never watched twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.engine.base import Engine

RUNTIMES = ("auto", "docker", "containerd")
CONTAINERD_SOCKETS = ("/run/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock")


def choose(runtime: str, docker_host: str, containerd_address: str,
           exists: Callable[[str], bool] = lambda p: Path(p).exists()) -> tuple[str, str]:
    """(engine name, address) for ``--runtime``; pure but for ``exists``."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "docker":
        return "docker", docker_host
    if runtime == "containerd":
        return "containerd", containerd_address or next((s for s in CONTAINERD_SOCKETS if exists(s)), CONTAINERD_SOCKETS[0])
    docker_socket = docker_host.removeprefix("unix://") if docker_host.startswith("unix://") else ""
    if containerd_address:
        return "containerd", containerd_address
    if docker_socket and exists(docker_socket):
        return "docker", docker_host
    for socket in CONTAINERD_SOCKETS:
        if exists(socket):
            return "containerd", socket
    return "docker", docker_host


def open_engine(config: AgentConfig, *, api: Any | None = None) -> Engine:
    """The engine ``config`` names, connected (a Docker client given as ``api`` is used as it is)."""
    name, address = choose(config.runtime, config.docker_host, config.containerd_address)
    if name == "containerd" and api is None:
        from agent.engine.containerd.engine import ContainerdEngine

        return ContainerdEngine(address, namespaces=config.containerd_namespaces, root=config.containerd_root,
                                cri_log_root=config.cri_log_root)
    from agent.engine.docker_engine import DockerEngine

    return DockerEngine(address if name == "docker" else config.docker_host, api=api)
