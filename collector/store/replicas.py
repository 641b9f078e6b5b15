"""Replica leases and the folding of retired replicas' counters, in SQL.

Counters are kept per replica id (``exit_counts``, ``host_exit_counts``) so each
replica's exported counter only grows by what it inserted. Two live replicas with
one id would each export the combined rows; a replica whose id changed would leave
its rows to nobody. So each live replica holds a lease on its id in ``replicas``
(renewed by bumping ``beats``; ``released`` at a clean stop), and the rows of an id
no live replica holds are *folded*: moved, in one transaction, into a live
replica's rows, so ``sum()`` over replicas keeps every count.

Liveness is judged by watching ``beats`` move, never by comparing clocks of
different machines. The policy (who folds what, when) is in
:mod:`collector.replica`; this module only reads and changes rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, union, update
from sqlalchemy.dialects import postgresql, sqlite

from collector.store.schema import exit_counts, host_exit_counts, replicas


@dataclass(frozen=True)
class Lease:
    replica_id: str
    instance: str  # the holding process, random per start
    beats: int  # grows with every renewal
    released: bool  # its holder stopped cleanly


def leases(conn: Connection) -> dict[str, Lease]:
    c = replicas.c
    rows = conn.execute(select(c.replica_id, c.instance, c.beats, c.released)).all()
    return {r[0]: Lease(r[0], r[1], int(r[2]), bool(r[3])) for r in rows}


def counted_ids(conn: Connection) -> set[str]:
    """Replica ids that have counter rows."""
    query = union(select(exit_counts.c.replica_id), select(host_exit_counts.c.replica_id))
    return {row[0] for row in conn.execute(query)}


def take(conn: Connection, replica_id: str, instance: str, now: datetime, expect: Lease | None) -> bool:
    """Hold ``replica_id`` as ``instance``: insert the lease, or replace ``expect``
    if it is still exactly as seen. False when another got there first."""
    if expect is None:
        ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = ins(replicas).values(replica_id=replica_id, instance=instance, beats=0, released=False, renewed_at=now)
        inserted = stmt.on_conflict_do_nothing(index_elements=[replicas.c.replica_id]).returning(replicas.c.replica_id)
        return conn.execute(inserted).first() is not None  # (rowcount of an upsert is not reliable on psycopg)
    c = replicas.c
    replace = (update(replicas)
               .where(c.replica_id == replica_id, c.instance == expect.instance, c.beats == expect.beats)
               .values(instance=instance, beats=expect.beats + 1, released=False, renewed_at=now))
    return conn.execute(replace).rowcount == 1


def renew(conn: Connection, replica_id: str, instance: str, now: datetime) -> bool:
    """Bump the lease; False when ``instance`` no longer holds it."""
    c = replicas.c
    stmt = (update(replicas).where(c.replica_id == replica_id, c.instance == instance)
            .values(beats=c.beats + 1, renewed_at=now))
    return conn.execute(stmt).rowcount == 1


def release(conn: Connection, replica_id: str, instance: str, now: datetime) -> None:
    c = replicas.c
    conn.execute(update(replicas).where(c.replica_id == replica_id, c.instance == instance)
                 .values(released=True, beats=c.beats + 1, renewed_at=now))


def fold(conn: Connection, dead: str, into: str, expect: Lease | None) -> int:
    """Move ``dead``'s counter rows into ``into``'s, if its lease is still exactly
    ``expect`` (None: it has none); returns the exits moved."""
    c = replicas.c
    if expect is not None:
        gone = conn.execute(delete(replicas).where(
            c.replica_id == dead, c.instance == expect.instance, c.beats == expect.beats)).rowcount
        if gone != 1:
            return 0  # renewed or taken meanwhile: alive after all
    elif conn.execute(select(c.replica_id).where(c.replica_id == dead)).first() is not None:
        return 0  # a lease appeared meanwhile
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    moved = 0
    for table in (exit_counts, host_exit_counts):
        keys = [col.name for col in table.primary_key if col.name != "replica_id"]
        rows = conn.execute(delete(table).where(table.c.replica_id == dead)
                            .returning(*[table.c[k] for k in keys], table.c.count)).all()
        if not rows:
            continue
        if table is exit_counts:
            moved = sum(int(r[-1]) for r in rows)
        stmt = ins(table)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(table.primary_key),
                                                set_={"count": table.c.count + stmt.excluded.count}),
                     [{"replica_id": into, **dict(zip(keys, r[:-1], strict=True)), "count": int(r[-1])} for r in rows])
    return moved
