"""Hint-group aggregates: kept up to date in the ingest transaction, so reading
hint groups costs a row per group, not a scan of every retained event.

``hint_groups`` holds per (image, cause, host platform) the exits, first and
last time and the newest event's hint; ``hint_group_hosts`` the same per host,
for the distinct-host count and the example hosts. :func:`add` folds freshly
stored events in; :func:`rebuild` recomputes groups from the events themselves
(after a prune shortened them, and once when upgrading from schema 1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from collector.store.records import EventRecord
from collector.store.schema import events, hint_group_hosts, hint_groups

Key = tuple[str, str, str]

# Past this many groups a rebuild recomputes everything rather than naming each group.
MAX_NAMED_GROUPS = 200


def add(conn: Connection, fresh: Sequence[EventRecord]) -> None:
    """Fold newly stored events into both tables: one upsert per group and per group host."""
    groups: dict[Key, dict[str, Any]] = {}
    per_host: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for e in fresh:
        key = (e.image_ref, e.cause, e.host_platform)
        g = groups.get(key)
        if g is None:
            groups[key] = {"image_ref": key[0], "cause": key[1], "host_platform": key[2], "exits": 1,
                           "first_seen": e.time, "last_seen": e.time, "latest_event_id": e.event_id,
                           "hint_id": e.hint_id}
        else:
            g["exits"] += 1
            g["first_seen"] = min(g["first_seen"], e.time)
            if (e.time, e.event_id) > (g["last_seen"], g["latest_event_id"]):
                g["last_seen"], g["latest_event_id"], g["hint_id"] = e.time, e.event_id, e.hint_id
        hkey = (*key, e.host_id)
        h = per_host.get(hkey)
        if h is None:
            per_host[hkey] = {"image_ref": key[0], "cause": key[1], "host_platform": key[2], "host_id": e.host_id,
                              "exits": 1, "last_seen": e.time}
        else:
            h["exits"] += 1
            h["last_seen"] = max(h["last_seen"], e.time)
    if not groups:
        return
    groups_stmt, hosts_stmt = _upserts(conn.dialect.name)
    conn.execute(groups_stmt, [groups[k] for k in sorted(groups)])  # a stable order: no deadlock between replicas
    conn.execute(hosts_stmt, [per_host[k] for k in sorted(per_host)])


@functools.lru_cache(maxsize=4)
def _upserts(dialect: str) -> tuple[Any, Any]:
    """The two upserts of :func:`add`, built once per dialect."""
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = ins(hint_groups)
    ex, t = stmt.excluded, hint_groups.c
    newer = or_(ex.last_seen > t.last_seen, and_(ex.last_seen == t.last_seen, ex.latest_event_id > t.latest_event_id))
    groups_stmt = stmt.on_conflict_do_update(
        index_elements=list(hint_groups.primary_key),
        set_={
            "exits": t.exits + ex.exits,
            "first_seen": case((ex.first_seen < t.first_seen, ex.first_seen), else_=t.first_seen),
            "last_seen": case((newer, ex.last_seen), else_=t.last_seen),
            "latest_event_id": case((newer, ex.latest_event_id), else_=t.latest_event_id),
            "hint_id": case((newer, ex.hint_id), else_=t.hint_id),
        },
    )
    hstmt = ins(hint_group_hosts)
    hx, ht = hstmt.excluded, hint_group_hosts.c
    hosts_stmt = hstmt.on_conflict_do_update(
        index_elements=list(hint_group_hosts.primary_key),
        set_={
            "exits": ht.exits + hx.exits,
            "last_seen": case((hx.last_seen > ht.last_seen, hx.last_seen), else_=ht.last_seen),
        },
    )
    return groups_stmt, hosts_stmt


def _matching(table_c: Any, keys: Iterable[Key] | None) -> Any:
    if keys is None:
        return None
    return or_(*[and_(table_c.image_ref == i, table_c.cause == c, table_c.host_platform == p) for i, c, p in keys])


def rebuild(conn: Connection, keys: Sequence[Key] | None = None) -> None:
    """Recompute the named groups (all when None) from the events stored now."""
    if keys is not None and not keys:
        return
    if keys is not None and len(keys) > MAX_NAMED_GROUPS:
        keys = None
    for table in (hint_groups, hint_group_hosts):
        where = _matching(table.c, keys)
        conn.execute(delete(table) if where is None else delete(table).where(where))
    where = _matching(events.c, keys)
    group = (events.c.image_ref, events.c.cause, events.c.host_platform)

    hosts_q = select(*group, events.c.host_id, func.count(), func.max(events.c.time)).group_by(*group, events.c.host_id)
    ranked = select(
        *group,
        events.c.time,
        events.c.event_id,
        events.c.hint_id,
        func.count().over(partition_by=group).label("n"),
        func.min(events.c.time).over(partition_by=group).label("first"),
        func.row_number().over(partition_by=group, order_by=(events.c.time.desc(), events.c.event_id.desc())).label("rn"),
    )
    if where is not None:
        hosts_q, ranked = hosts_q.where(where), ranked.where(where)
    conn.execute(insert(hint_group_hosts).from_select(
        ["image_ref", "cause", "host_platform", "host_id", "exits", "last_seen"], hosts_q))
    r = ranked.subquery()
    newest = select(r.c.image_ref, r.c.cause, r.c.host_platform, r.c.n, r.c.first, r.c.time, r.c.event_id, r.c.hint_id)
    conn.execute(insert(hint_groups).from_select(
        ["image_ref", "cause", "host_platform", "exits", "first_seen", "last_seen", "latest_event_id", "hint_id"],
        newest.where(r.c.rn == 1)))


def prune(conn: Connection, older_than: datetime) -> None:
    """After events older than ``older_than`` were deleted: recompute the groups that had some."""
    c = hint_groups.c
    touched = [tuple(r) for r in conn.execute(select(c.image_ref, c.cause, c.host_platform).where(c.first_seen < older_than))]
    rebuild(conn, touched)  # type: ignore[arg-type]
