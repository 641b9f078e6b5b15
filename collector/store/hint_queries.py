"""Hint groups read from their aggregate tables (:mod:`collector.store.aggregates`),
and how the rows become :class:`HintGroup` records.

One group per (image, cause, host platform): how many hosts and exits, first
and last seen, the hint of the newest event, a few example hosts (most recently
affected first) and, when asked, the newest event itself. Each query reads a row
per group or per affected host, never the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from collector.store import eventcodec, records
from collector.store.schema import events, hint_group_hosts, hint_groups, shared_facts

Key = tuple[str, str, str]


def read(conn: Connection, example_hosts: int, *, samples: bool = True) -> list[records.HintGroup]:
    g, gh = hint_groups.c, hint_group_hosts.c
    key = (gh.image_ref, gh.cause, gh.host_platform)
    host_counts = select(*key, func.count().label("hosts")).group_by(*key).subquery()
    totals = select(
        g.image_ref, g.cause, g.host_platform, g.hint_id, host_counts.c.hosts, g.exits, g.first_seen, g.last_seen,
    ).join_from(hint_groups, host_counts, (host_counts.c.image_ref == g.image_ref)
                & (host_counts.c.cause == g.cause) & (host_counts.c.host_platform == g.host_platform))
    total_rows = conn.execute(totals).all()
    example_rows: list[Any] = []
    if example_hosts > 0:
        rank = func.row_number().over(partition_by=key, order_by=(gh.last_seen.desc(), gh.host_id)).label("rn")
        ranked = select(*key, gh.host_id, rank).subquery()
        example_rows = list(conn.execute(
            select(ranked.c.image_ref, ranked.c.cause, ranked.c.host_platform, ranked.c.host_id)
            .where(ranked.c.rn <= example_hosts).order_by(ranked.c.rn)
        ))
    sample_rows: list[Any] = []
    if samples:
        host, image = shared_facts.alias("host"), shared_facts.alias("image")
        sample_rows = list(conn.execute(
            select(g.image_ref, g.cause, g.host_platform, events.c.body, host.c.data, image.c.data, events.c.payload)
            .select_from(hint_groups.join(events, events.c.event_id == g.latest_event_id)
                         .outerjoin(host, host.c.ref == events.c.host_ref)
                         .outerjoin(image, image.c.ref == events.c.image_facts_ref))
        ))
    return assemble(total_rows, example_rows, sample_rows)


def assemble(
    total_rows: Iterable[Sequence[Any]],
    example_rows: Iterable[Sequence[Any]],
    sample_rows: Iterable[Sequence[Any]] = (),
) -> list[records.HintGroup]:
    """Hint groups from the queries' rows, most recently hit first."""
    hosts_by_key: dict[Key, list[str]] = {}
    for image, cause, host_pf, host_id in example_rows:
        hosts_by_key.setdefault((image, cause, host_pf), []).append(host_id)
    sample_by_key: dict[Key, dict[str, Any]] = {
        (image, cause, host_pf): eventcodec.payload(body, host, image_facts, legacy)
        for image, cause, host_pf, body, host, image_facts, legacy in sample_rows
    }
    groups = [
        records.HintGroup(
            image=image,
            cause=cause,
            host_platform=host_pf,
            hint_id=hint_id,
            hosts=n_hosts,
            exits=n_exits,
            first_seen=first,
            last_seen=last,
            example_hosts=tuple(hosts_by_key.get((image, cause, host_pf), ())),
            sample=sample_by_key.get((image, cause, host_pf), {}),
        )
        for image, cause, host_pf, hint_id, n_hosts, n_exits, first, last in total_rows
    ]
    groups.sort(key=lambda g: (g.image, g.cause, g.host_platform))
    groups.sort(key=lambda g: g.last_seen, reverse=True)
    return groups
