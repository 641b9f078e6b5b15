"""Find exits the live event stream missed.

Two sources, in this order:

1. ``replay_exits``: the engine's own record of ``die`` events between two
   times (the events API with ``since=``/``until=``). A replayed exit has the
   same identity (die time) as the live one, so handling both counts it once.
   The engine keeps only its most recent events in memory (and none from before
   its own restart), so this can be incomplete.
2. ``state_exits``: exited *and restarting* containers whose ``FinishedAt`` falls
   in the window. These are named by ``FinishedAt`` (``source="state"``); the
   agent skips those whose die it already handled (see ``agent.engine.exits``).

``InspectCache`` remembers what an exited container's state was when last
inspected, so old exited containers cost nothing per pass: an exited container
only changes by being started again, which the agent sees as a die event (and
then forgets the entry), and every entry is dropped on a reconnect or after
``ttl`` seconds as a bound on what a lost event can hide.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import docker.errors

from agent.engine.exits import HELPER_LABEL, Exit, docker_since, exit_from_event, parse_docker_time

logger = logging.getLogger(__name__)

_STATUS = re.compile(r"^(?:Exited|Restarting) \((?P<code>-?\d+)\)")


class InspectCache:
    """Container id -> the FinishedAt it had when last inspected (exited containers only)."""

    def __init__(self, *, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def known(self, container_id: str) -> bool:
        with self._lock:
            hit = self._entries.get(container_id)
            return hit is not None and self._clock() - hit[1] < self._ttl

    def put(self, container_id: str, finished_at: str) -> None:
        with self._lock:
            self._entries[container_id] = (finished_at, self._clock())

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._entries.pop(container_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def keep_only(self, ids: set[str]) -> None:
        with self._lock:
            for cid in [c for c in self._entries if c not in ids]:
                del self._entries[cid]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def replay_exits(api: Any, since: datetime, until: datetime) -> list[Exit]:
    """Non-zero exits the engine recorded as die events in [since, until], oldest first."""
    found = []
    stream = api.events(since=docker_since(since), until=docker_since(until), decode=True,
                        filters={"type": "container", "event": "die"})
    try:
        for event in stream:
            exit = exit_from_event(event)
            if exit is not None and exit.exit_code != 0:
                found.append(exit)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return found


def state_exits(api: Any, since: datetime, until: datetime, cache: InspectCache) -> list[Exit]:
    """Non-zero exits left in containers' state that finished in (since, until], oldest first."""
    found: list[Exit] = []
    listed = api.containers(all=True, filters={"status": ["exited", "restarting"]})
    cache.keep_only({c["Id"] for c in listed})
    for c in listed:
        m = _STATUS.match(c.get("Status", ""))
        if not m or int(m.group("code")) == 0 or HELPER_LABEL in (c.get("Labels") or {}):
            continue
        exited = c.get("State") == "exited"
        if exited and cache.known(c["Id"]):
            continue
        try:
            attrs = api.inspect_container(c["Id"])
        except docker.errors.NotFound:
            continue
        state = attrs.get("State") or {}
        finished = parse_docker_time(state.get("FinishedAt", ""))
        if finished is None or finished > until:
            continue  # the next pass looks again
        if exited and state.get("Status") == "exited":
            cache.put(c["Id"], state.get("FinishedAt", ""))
        if finished <= since or int(state.get("ExitCode") or 0) == 0:
            continue
        found.append(
            Exit(
                container_id=c["Id"],
                exit_code=int(state.get("ExitCode") or m.group("code")),
                image_ref=(attrs.get("Config") or {}).get("Image", ""),
                name=(attrs.get("Name") or "").lstrip("/"),
                time=finished,
                source="state",
            )
        )
    found.sort(key=lambda e: e.time or since)
    return found
