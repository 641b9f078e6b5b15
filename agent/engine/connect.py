"""Connect to the Docker Engine and gather this host's facts through it.

Apart from :mod:`agent.service` so that the one-shot commands (``facts``,
``diagnose``, ``demo``) do not import asyncio, grpc and protobuf they never use.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from agent import docker_errors
from agent.host import hostfacts
from agent.model import HostFacts

logger = logging.getLogger(__name__)


def docker_client(url: str) -> docker.APIClient:
    """A client for the engine at ``url``; a failure says how to fix it (agent.docker_errors)."""
    try:
        return docker.APIClient(base_url=url, version="auto", timeout=30)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise docker_errors.explain(url, e) from e


def gather_facts(api: Any, host_id: str, proc_root: Path = Path("/proc")) -> HostFacts:
    """Host facts with the Docker Engine's view when it answers, without otherwise."""
    info: dict[str, Any] | None = None
    version: dict[str, Any] | None = None
    try:
        info, version = api.info(), api.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        logger.warning("docker facts unavailable error=%s", str(e).splitlines()[0][:200])
    return hostfacts.gather(host_id=host_id or None, proc_root=proc_root, docker_info=info, docker_version=version)
