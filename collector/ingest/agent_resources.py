"""What each connected agent reports about its own cost, kept in memory.

Agents send their resident memory, CPU time, open descriptors, spool size and
whether the spool can be written in every Hello and Heartbeat (every 15 s by
default). The collector keeps the latest report per connected host in memory
only: it is a live reading, refreshed within one heartbeat after a restart, and
it leaves with the agent's stream. ``AgentResourcesCollector`` turns a snapshot
into metric families on every scrape (client_python's custom-collector pattern);
``BuildInfoCollector`` exposes the collector's own version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from enoexec import __version__
from enoexec.v1 import enoexec_pb2 as pb


@dataclass(frozen=True)
class AgentResources:
    resident_memory_bytes: int
    cpu_seconds: float
    open_fds: int
    spool_writable: bool
    spool_bytes: int
    uptime_seconds: float


def from_pb(resources: pb.AgentResources, spool: pb.SpoolStats) -> AgentResources:
    return AgentResources(
        resident_memory_bytes=resources.resident_memory_bytes,
        cpu_seconds=resources.cpu_seconds,
        open_fds=resources.open_fds,
        spool_writable=resources.spool_writable,
        spool_bytes=spool.bytes,
        uptime_seconds=resources.uptime_seconds,
    )


class ResourceBoard:
    """The latest report per host, owned by the stream that sent it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[object, AgentResources]] = {}

    def report(self, host_id: str, stream: object, msg: pb.Hello | pb.Heartbeat) -> None:
        """Record what ``msg`` says, if the agent sent resources (older agents do not)."""
        if msg.HasField("resources"):
            with self._lock:
                self._reports[host_id] = (stream, from_pb(msg.resources, msg.spool))

    def forget(self, host_id: str, stream: object) -> None:
        """The stream ended: its report goes, unless a newer stream of the host replaced it."""
        with self._lock:
            held = self._reports.get(host_id)
            if held is not None and held[0] is stream:
                del self._reports[host_id]

    def get(self, host_id: str) -> AgentResources | None:
        with self._lock:
            held = self._reports.get(host_id)
        return held[1] if held else None

    def snapshot(self) -> dict[str, AgentResources]:
        with self._lock:
            return {h: r for h, (_, r) in self._reports.items()}


def resources_json(r: AgentResources | None) -> dict[str, Any] | None:
    return asdict(r) if r is not None else None


class AgentResourcesCollector(Collector):
    def __init__(self, board: ResourceBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[Metric]:
        reports = sorted(self._board.snapshot().items())
        rss = GaugeMetricFamily("enoexec_agent_resident_memory_bytes", "Each connected agent's resident memory, as last reported.", labels=["host"])
        cpu = CounterMetricFamily("enoexec_agent_cpu_seconds", "CPU time each connected agent has used since it started.", labels=["host"])
        fds = GaugeMetricFamily("enoexec_agent_open_fds", "File descriptors each connected agent holds open.", labels=["host"])
        spool = GaugeMetricFamily("enoexec_agent_spool_bytes", "Payload bytes waiting in each connected agent's spool.", labels=["host"])
        writable = GaugeMetricFamily("enoexec_agent_spool_writable", "1 if the agent can write its spool; 0 means new exits cannot be kept.", labels=["host"])
        for host, r in reports:
            rss.add_metric([host], r.resident_memory_bytes)
            cpu.add_metric([host], r.cpu_seconds)
            fds.add_metric([host], r.open_fds)
            spool.add_metric([host], r.spool_bytes)
            writable.add_metric([host], 1 if r.spool_writable else 0)
        yield from (rss, cpu, fds, spool, writable)


class BuildInfoCollector(Collector):
    def __init__(self, version: str = __version__) -> None:
        self._version = version

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("enoexec_build_info", "The collector's version (value 1).", labels=["version"])
        info.add_metric([self._version], 1)
        yield info
