"""Find exits the event stream missed: exited containers with a non-zero code
that finished after the persisted checkpoint."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

import docker.errors

from agent.diagnosis.diagnose import HELPER_LABEL, Exit, parse_docker_time

logger = logging.getLogger(__name__)

_STATUS = re.compile(r"^Exited \((?P<code>-?\d+)\)")


def missed_exits(api: Any, since: datetime) -> list[Exit]:
    """Non-zero exits that finished after ``since``, oldest first."""
    found: list[Exit] = []
    for c in api.containers(all=True, filters={"status": "exited"}):
        m = _STATUS.match(c.get("Status", ""))
        if not m or int(m.group("code")) == 0:
            continue
        if HELPER_LABEL in (c.get("Labels") or {}):
            continue
        try:
            attrs = api.inspect_container(c["Id"])
        except docker.errors.NotFound:
            continue
        state = attrs.get("State") or {}
        finished = parse_docker_time(state.get("FinishedAt", ""))
        if finished is None or finished <= since:
            continue
        found.append(
            Exit(
                container_id=c["Id"],
                exit_code=int(state.get("ExitCode") or m.group("code")),
                image_ref=(attrs.get("Config") or {}).get("Image", ""),
                name=(attrs.get("Name") or "").lstrip("/"),
                time=finished,
            )
        )
    found.sort(key=lambda e: e.time or since)
    return found
