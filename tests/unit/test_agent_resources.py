"""The collector's in-memory board of agents' own resource reports, and its metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from collector.ingest.agent_resources import AgentResourcesCollector, BuildInfoCollector, ResourceBoard, resources_json
from enoexec import __version__
from enoexec.v1 import enoexec_pb2 as pb


def beat(rss: int, cpu: float, *, writable: bool = True, spool_bytes: int = 0) -> pb.Heartbeat:
    return pb.Heartbeat(
        spool=pb.SpoolStats(events=1, bytes=spool_bytes),
        resources=pb.AgentResources(resident_memory_bytes=rss, cpu_seconds=cpu, open_fds=12, spool_writable=writable),
    )


def registry(board: ResourceBoard) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(AgentResourcesCollector(board))
    reg.register(BuildInfoCollector())
    return reg


def test_latest_report_per_host_becomes_metrics() -> None:
    board, stream = ResourceBoard(), object()
    board.report("pi-1", stream, pb.Hello(resources=pb.AgentResources(resident_memory_bytes=1), spool=pb.SpoolStats()))
    board.report("pi-1", stream, beat(30 * 2**20, 1.5, spool_bytes=2048))
    board.report("pi-2", object(), beat(25 * 2**20, 0.25, writable=False))
    reg = registry(board)

    assert reg.get_sample_value("enoexec_agent_resident_memory_bytes", {"host": "pi-1"}) == 30 * 2**20
    assert reg.get_sample_value("enoexec_agent_cpu_seconds_total", {"host": "pi-1"}) == 1.5
    assert reg.get_sample_value("enoexec_agent_open_fds", {"host": "pi-1"}) == 12
    assert reg.get_sample_value("enoexec_agent_spool_bytes", {"host": "pi-1"}) == 2048
    assert reg.get_sample_value("enoexec_agent_spool_writable", {"host": "pi-1"}) == 1
    assert reg.get_sample_value("enoexec_agent_spool_writable", {"host": "pi-2"}) == 0
    assert reg.get_sample_value("enoexec_build_info", {"version": __version__}) == 1


def test_an_older_agent_without_resources_reports_nothing() -> None:
    board = ResourceBoard()
    board.report("old", object(), pb.Heartbeat(spool=pb.SpoolStats(events=3)))

    assert board.get("old") is None
    assert resources_json(board.get("old")) is None
    assert registry(board).get_sample_value("enoexec_agent_resident_memory_bytes", {"host": "old"}) is None


def test_a_report_leaves_with_its_stream_but_not_with_an_older_one() -> None:
    board, old, new = ResourceBoard(), object(), object()
    board.report("pi-1", old, beat(1, 1.0))
    board.report("pi-1", new, beat(2, 2.0))  # the agent reconnected before the old stream ended

    board.forget("pi-1", old)
    assert board.get("pi-1") is not None and board.get("pi-1").resident_memory_bytes == 2  # type: ignore[union-attr]
    board.forget("pi-1", new)
    assert board.get("pi-1") is None
