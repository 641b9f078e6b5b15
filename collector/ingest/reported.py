"""Numbers an agent reports about itself (spool sizes, its own resources), made
safe to store and export. Pure.

They are untrusted like everything an agent sends: a NaN or an infinity would
make ``/api/v1/hosts`` invalid JSON and ``/metrics`` carry a NaN counter, a
negative CPU time a counter that goes down, a count of 2**64-1 overflow
PostgreSQL's BIGINT (failing the group commit it rides in). Each such value is
clamped into range in place, and the fields clamped are returned to be counted
(``enoexec_collector_clamped_values_total{field}``).
"""

from __future__ import annotations

import math

from enoexec.v1 import enoexec_pb2 as pb

MAX_COUNT = 2**53 - 1  # exact in a JSON number and a PostgreSQL BIGINT
MAX_SECONDS = 1e12  # some 31,700 years of CPU or uptime

_COUNTS = (("spool", "events"), ("spool", "dropped_total"), ("spool", "bytes"), ("resources", "resident_memory_bytes"))
_SECONDS = (("resources", "cpu_seconds"), ("resources", "uptime_seconds"))


def clamp_seconds(value: float) -> float:
    """``value`` if finite and in [0, MAX_SECONDS]; NaN becomes 0, the rest the nearest bound."""
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), MAX_SECONDS)


def clamp(msg: pb.Hello | pb.Heartbeat) -> list[str]:
    """Clamp the numbers of a Hello or Heartbeat in place; the names of those that were out of range."""
    clamped: list[str] = []
    for part, name in _COUNTS:
        holder = getattr(msg, part)
        if getattr(holder, name) > MAX_COUNT:
            setattr(holder, name, MAX_COUNT)
            clamped.append(f"{part}.{name}")
    for part, name in _SECONDS:
        holder = getattr(msg, part)
        value = getattr(holder, name)
        fixed = clamp_seconds(value)
        if fixed != value or math.isnan(value):
            setattr(holder, name, fixed)
            clamped.append(f"{part}.{name}")
    if isinstance(msg, pb.Hello) and msg.host.memory_bytes > MAX_COUNT:
        msg.host.memory_bytes = MAX_COUNT
        clamped.append("host.memory_bytes")
    return clamped
