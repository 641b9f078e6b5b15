"""Pure guards on what agents send: their self-reported numbers, and how many host ids are kept."""

from __future__ import annotations

import math

from collector.ingest import reported
from collector.ingest.host_cap import HostCap
from enoexec.v1 import enoexec_pb2 as pb


def test_out_of_range_numbers_are_clamped_and_named() -> None:
    hello = pb.Hello(
        host=pb.HostFacts(host_id="h", memory_bytes=2**64 - 1),
        spool=pb.SpoolStats(events=2**64 - 1, dropped_total=5, bytes=2**60),
        resources=pb.AgentResources(resident_memory_bytes=10, cpu_seconds=math.nan, uptime_seconds=math.inf),
    )
    assert sorted(reported.clamp(hello)) == ["host.memory_bytes", "resources.cpu_seconds", "resources.uptime_seconds",
                                             "spool.bytes", "spool.events"]
    assert (hello.spool.events, hello.spool.dropped_total, hello.spool.bytes) == (2**53 - 1, 5, 2**53 - 1)
    assert (hello.resources.cpu_seconds, hello.resources.uptime_seconds) == (0.0, 1e12)
    assert hello.host.memory_bytes == 2**53 - 1

    beat = pb.Heartbeat(resources=pb.AgentResources(cpu_seconds=-1e308, uptime_seconds=12.5))
    assert reported.clamp(beat) == ["resources.cpu_seconds"]
    assert (beat.resources.cpu_seconds, beat.resources.uptime_seconds) == (0.0, 12.5)
    sane = pb.Heartbeat(spool=pb.SpoolStats(events=3), resources=pb.AgentResources(cpu_seconds=1.5))
    assert reported.clamp(sane) == [] and sane.resources.cpu_seconds == 1.5


def test_the_host_cap_admits_known_hosts_and_new_ones_while_there_is_room() -> None:
    cap = HostCap(2)
    assert cap.admit("a") and cap.admit("b") and cap.admit("a")
    assert not cap.admit("c")
    cap.discard("a")
    assert cap.admit("c") and not cap.admit("a")
    cap.refresh(["x"])
    assert cap.admit("y") and not cap.admit("z") and len(cap) == 2
