"""The SQL behind hint groups, and how its rows become :class:`HintGroup` records.

One group per (image, cause, host platform): how many hosts and exits, first
and last seen, the hint of the newest event, and a few example hosts (most
recently affected first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, func, select

from collector import records
from collector.schema import events

Key = tuple[str, str, str]


def queries(example_hosts: int, *, samples: bool = True) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """(totals per group, newest event per group, example hosts per group).

    Without ``samples`` the newest event's payload is not loaded (metrics need
    only its hint id)."""
    group = (events.c.image_ref, events.c.cause, events.c.host_platform)
    totals = select(
        *group,
        func.count(func.distinct(events.c.host_id)),
        func.count(),
        func.min(events.c.time),
        func.max(events.c.time),
    ).group_by(*group)
    newest_first = (events.c.time.desc(), events.c.event_id.desc())
    ranked = select(
        *group,
        events.c.hint_id,
        *([events.c.payload] if samples else []),
        func.row_number().over(partition_by=group, order_by=newest_first).label("rn"),
    ).subquery()
    latest = select(*[c for c in ranked.c if c.name != "rn"]).where(ranked.c.rn == 1)
    per_host = (
        select(*group, events.c.host_id, func.max(events.c.time).label("last"))
        .group_by(*group, events.c.host_id)
        .subquery()
    )
    host_rank = func.row_number().over(
        partition_by=(per_host.c.image_ref, per_host.c.cause, per_host.c.host_platform),
        order_by=(per_host.c.last.desc(), per_host.c.host_id),
    )
    ranked_hosts = select(per_host, host_rank.label("rn")).subquery()
    rh = ranked_hosts.c
    examples = (
        select(rh.image_ref, rh.cause, rh.host_platform, rh.host_id)
        .where(rh.rn <= example_hosts)
        .order_by(rh.rn)
    )
    return totals, latest, examples


def assemble(
    total_rows: Iterable[Sequence[Any]],
    latest_rows: Iterable[Sequence[Any]],
    example_rows: Iterable[Sequence[Any]],
) -> list[records.HintGroup]:
    """Hint groups from the three queries' rows, most recently hit first. Pure."""
    latest_by_key: dict[Key, tuple[str, Any]] = {
        (r[0], r[1], r[2]): (r[3], r[4] if len(r) > 4 else {}) for r in latest_rows
    }
    hosts_by_key: dict[Key, list[str]] = {}
    for image, cause, host_pf, host_id in example_rows:
        hosts_by_key.setdefault((image, cause, host_pf), []).append(host_id)
    groups = [
        records.HintGroup(
            image=image,
            cause=cause,
            host_platform=host_pf,
            hint_id=latest_by_key[(image, cause, host_pf)][0],
            hosts=n_hosts,
            exits=n_exits,
            first_seen=first,
            last_seen=last,
            example_hosts=tuple(hosts_by_key.get((image, cause, host_pf), ())),
            sample=latest_by_key[(image, cause, host_pf)][1],
        )
        for image, cause, host_pf, n_hosts, n_exits, first, last in total_rows
    ]
    groups.sort(key=lambda g: (g.image, g.cause, g.host_platform))
    groups.sort(key=lambda g: g.last_seen, reverse=True)
    return groups
