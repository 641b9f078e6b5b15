"""What one container exit is, and the name it keeps everywhere.

An exit's identity is the time of its ``die`` event (``timeNano``) and the
container id: the live stream and a replay of the engine's event log with
``since=``/``until=`` give the same time for the same exit, so both lead to the
same key and the same event id. ``State.FinishedAt`` is *not* the identity: read
later, it may already belong to the next exit of a restarting container.

Only when no die event is left to replay (the engine restarted, or more exits
happened than it keeps) does reconciliation find an exit in the container's
state; that exit is named by its ``FinishedAt`` and marked ``source="state"``.
The agent then also remembers, for every die it handles, the ``FinishedAt`` it
belongs to (an *alias*), so the two names of one exit are never counted twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

HELPER_LABEL = "io.enoexec.helper"
# A die event follows its FinishedAt by milliseconds (20 ms measured on an idle
# Docker 20.10); under load it can be more. A restarting container's next exit
# always finishes after the previous die event, so this bound never joins two exits.
DIE_AFTER_FINISH = timedelta(seconds=10)
STATE_SUFFIX = "~state"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Exit:
    """A container exit, from a ``die`` event (live or replayed) or a container's state."""

    container_id: str
    exit_code: int
    image_ref: str = ""
    name: str = ""
    time: datetime | None = None  # the die event's time; FinishedAt when source == "state"
    source: str = "event"  # "event" or "state"
    backfilled: bool = False

    @property
    def key(self) -> str:
        assert self.time is not None
        return state_key(self.container_id, self.time) if self.source == "state" else exit_key(self.container_id, self.time)


def stamp(when: datetime) -> str:
    """One fixed-width UTC format: keys of one container sort by time as text."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def exit_key(container_id: str, died_at: datetime) -> str:
    """Names the exit whose die event happened at ``died_at``."""
    return f"{container_id}@{stamp(died_at)}"


def state_key(container_id: str, finished_at: datetime) -> str:
    """Names the exit that left ``FinishedAt == finished_at`` in the container's state."""
    return f"{container_id}@{stamp(finished_at)}{STATE_SUFFIX}"


def event_id(host_id: str, container_id: str, when: datetime) -> str:
    """Stable id of one exit: the same exit seen twice gets the same id."""
    return hashlib.sha256(f"{host_id}\0{container_id}\0{stamp(when)}".encode()).hexdigest()[:32]


def parse_docker_time(value: str) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds; keep microseconds."""
    if not value or value.startswith("0001-01-01"):
        return None
    value = value.rstrip("Z")
    if "." in value:
        head, frac = value.split(".", 1)
        digits = "".join(c for c in frac if c.isdigit())
        value = f"{head}.{digits[:6].ljust(6, '0')}"
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None


def event_time(event: dict[str, Any]) -> datetime:
    """The time of an engine event, from ``timeNano`` when present."""
    nanos = event.get("timeNano")
    if nanos:
        return EPOCH + timedelta(microseconds=int(nanos) // 1000)
    return EPOCH + timedelta(seconds=int(event.get("time", 0)))


def exit_from_event(event: dict[str, Any]) -> Exit | None:
    """The non-helper exit a ``die`` event describes, or ``None`` for anything else."""
    if event.get("Type") != "container" or event.get("Action") != "die":
        return None
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    if HELPER_LABEL in attrs:
        return None
    try:
        code = int(attrs.get("exitCode", "0"))
    except ValueError:
        return None
    return Exit(
        container_id=actor.get("ID") or event.get("id", ""),
        exit_code=code,
        image_ref=attrs.get("image", ""),
        name=attrs.get("name", ""),
        time=event_time(event),
    )


def alias_of(exit: Exit, finished_at: datetime | None) -> str:
    """The state key of the same exit, when the container's FinishedAt (read while
    handling a die) belongs to it; "" when the container has died again since."""
    if exit.source != "event" or exit.time is None or finished_at is None:
        return ""
    if finished_at <= exit.time and exit.time - finished_at <= DIE_AFTER_FINISH:
        return state_key(exit.container_id, finished_at)
    return ""


def docker_since(when: datetime) -> str:
    """``since=``/``until=`` for the events API, exact to the microsecond."""
    micros = (when - EPOCH) // timedelta(microseconds=1)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}000"
