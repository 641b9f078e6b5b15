"""The latest exit per (image, host platform, cause, host), for the alerting gauge.

``enoexec_last_exit_timestamp_seconds`` is read from the shared store, not from
this process's counters: it is the same on every replica, survives a collector
restart, and is born with the time of the exit that created it, so an alert on
``time() - last_exit < window`` fires on a series' first sample (``increase()``
cannot: it ignores a series' first sample). Only exits newer than ``since`` are
read (an indexed range on ``events.time``), which keeps the scrape cheap and
the family small: a group leaves it once nothing failed for that long.

Each series also carries ``hostname``: the name the host's agent reported in its
Hello (Docker's name for the engine, else the kernel's node name), for humans
reading the alert's ``hosts`` annotation beside the machine-id. It is read from
the hosts table; a forgotten host's is "".

Back-filled exits (a fresh agent's report of containers that died before it
started) are stored but never page: they are left out here as they are left
out of ``enoexec_exits_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Connection, Text, func, select, type_coerce

from collector.store import eventcodec
from collector.store.schema import events, hosts, shared_facts
from enoexec.causes import EMULATED_WARNING, EXEC_FORMAT_ERROR, START_FAILURE
from enoexec.limits import MAX_LABEL

NAME = "enoexec_last_exit_timestamp_seconds"
# The same gauge for the other failure kinds: (name, what it times).
NAMES = {
    EXEC_FORMAT_ERROR: (NAME, "exec format error exit"),
    START_FAILURE: ("enoexec_last_start_failure_timestamp_seconds", "start failure (look-alike of exec format error)"),
    EMULATED_WARNING: ("enoexec_last_emulated_start_timestamp_seconds", "container start under QEMU emulation"),
}
LABELS = ("image", "host_platform", "cause", "host", "hint", "hint_title", "hostname")
# The payload is stored as compact, key-sorted JSON (schema.JSONText); an escaped
# occurrence inside a string value cannot match this pattern.
_BACKFILLED = '%"backfilled":true%'


@dataclass(frozen=True)
class RecentExit:
    image: str
    host_platform: str
    cause: str
    host: str
    hint: str  # hint id of the newest exit of (image, host_platform, cause)
    hint_title: str
    last_exit: datetime
    hostname: str = ""


def read(conn: Connection, since: datetime, *, failure: str = EXEC_FORMAT_ERROR) -> list[RecentExit]:
    """Latest non-back-filled event per (image, host platform, cause, host) since ``since``
    of one failure kind (exec format errors: also those stored before schema 3)."""
    kind = events.c.failure == failure
    if failure == EXEC_FORMAT_ERROR:
        kind = kind | events.c.failure.is_(None)
    recent = (events.c.time >= since) & kind
    # ``backfilled`` column since schema 2; the payload text for events stored before
    live = events.c.backfilled.is_not(True) & type_coerce(events.c.payload, Text).not_like(_BACKFILLED)
    group = (events.c.image_ref, events.c.host_platform, events.c.cause)
    per_host = conn.execute(
        select(*group, events.c.host_id, func.max(events.c.time))
        .where(recent, live)
        .group_by(*group, events.c.host_id)
        .order_by(*group, events.c.host_id)
    ).all()
    if not per_host:
        return []
    # The hint of each group's newest exit: only the rows at those instants are read.
    newest_at: dict[tuple[str, str, str], datetime] = {}
    for image, hp, cause, _, last in per_host:
        newest_at[(image, hp, cause)] = max(newest_at.get((image, hp, cause), last), last)
    host, image = shared_facts.alias("host"), shared_facts.alias("image")
    candidates = conn.execute(
        select(*group, events.c.event_id, events.c.hint_id, events.c.body, host.c.data, image.c.data,
               events.c.payload, events.c.time)
        .select_from(events.outerjoin(host, host.c.ref == events.c.host_ref)
                     .outerjoin(image, image.c.ref == events.c.image_facts_ref))
        .where(events.c.time.in_(sorted(set(newest_at.values()))), live)
        .order_by(events.c.event_id)
    ).all()
    newest = [(i, hp, c, hint, (body, hf, imf, payload))
              for i, hp, c, _, hint, body, hf, imf, payload, t in candidates if newest_at.get((i, hp, c)) == t]
    hints = {(i, hp, c): (hint, _title(eventcodec.payload(*stored))) for i, hp, c, hint, stored in newest}
    names = hostnames(conn, sorted({row[3] for row in per_host}))
    return [
        RecentExit(image, hp, cause, host, *hints.get((image, hp, cause), ("", "")), last_exit=last,
                   hostname=names.get(host, ""))
        for image, hp, cause, host, last in per_host
    ]


def hostnames(conn: Connection, host_ids: list[str]) -> dict[str, str]:
    """The hostname each host's agent reported in its facts, cut to a label's length."""
    rows = conn.execute(select(hosts.c.host_id, hosts.c.facts).where(hosts.c.host_id.in_(host_ids))).all()
    out = {}
    for host_id, facts in rows:
        name = facts.get("hostname") if isinstance(facts, dict) else None
        if isinstance(name, str) and name:
            out[host_id] = name[:MAX_LABEL]
    return out


def _title(payload: Any) -> str:
    hint = payload.get("hint") if isinstance(payload, dict) else None
    return str(hint.get("title", "")) if isinstance(hint, dict) else ""


def family(rows: Iterable[RecentExit], image_label: Callable[[str], str] = str, *,
           failure: str = EXEC_FORMAT_ERROR) -> Iterator[GaugeMetricFamily]:
    """The gauge; ``image_label`` folds images past the label cap into ``_other``."""
    name, what = NAMES[failure]
    gauge = GaugeMetricFamily(
        name,
        f"Time of the latest {what} per image, host platform, cause and host (with its hostname), "
        "for exits in the last 30 minutes, the alert window (read from the shared store: the same on every replica).",
        labels=list(LABELS),
    )
    latest: dict[tuple[str, ...], float] = {}
    for r in rows:
        key = (image_label(r.image), r.host_platform, r.cause, r.host, r.hint, r.hint_title, r.hostname)
        latest[key] = max(latest.get(key, 0.0), r.last_exit.timestamp())
    for labels, ts in sorted(latest.items()):
        gauge.add_metric(list(labels), ts)
    yield gauge
