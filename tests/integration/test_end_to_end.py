"""The walking skeleton: a real exec-format exit travels from Docker through
the agent and gRPC to the collector's /metrics."""

from __future__ import annotations

import signal

from tests import images, procs
from tests.images import File


def _native_exit1() -> bytes:
    """A tiny static x86-64 program that exits 1 (no libc needed)."""
    code = bytes.fromhex("b83c000000bf01000000 0f05".replace(" ", ""))  # mov eax,60; mov edi,1; syscall
    import struct

    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    entry = 0x400000 + 64 + 56
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    size = 64 + 56 + len(code)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    return hdr + ph + code


def test_foreign_exits_are_counted_with_platforms_and_native_failure_is_not(dock, collector, agent) -> None:
    arm64 = dock.load("arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    armv7 = dock.load("armv7", [File("/app", images.elf(images.EM_ARM, bits=32))], architecture="arm", variant="v7", entrypoint=["/app"])
    native = dock.load("native", [File("/app", _native_exit1())], architecture="amd64", entrypoint=["/app"])

    col = collector()
    ag = agent(col.grpc)

    dock.run(arm64)
    dock.run(armv7)
    dock.run(native)
    assert dock.api.inspect_container(dock.containers[-1])["State"]["ExitCode"] == 1

    def counted() -> float:
        return procs.total(procs.metrics(col.http), "enoexec_exits_total")

    procs.wait_for(lambda: counted() >= 2, timeout=30, what="two exits in /metrics")
    # The native exit was seen by the agent too; give it the same path to /metrics.
    procs.wait_for(lambda: "events stored" in col.output(), timeout=10, what="collector stored events")
    text = procs.metrics(col.http)
    series = procs.label_sets(text, "enoexec_exits_total", ("cause", "host_platform", "image_platform", "binary_platform", "image"))
    assert series == [
        (("arch_mismatch", "linux/amd64", "linux/arm/v7", "linux/arm/v7", armv7), 1.0),
        (("arch_mismatch", "linux/amd64", "linux/arm64", "linux/arm64", arm64), 1.0),
    ], ag.output()
    assert procs.total(text, "enoexec_agents_connected") == 1.0
    assert procs.total(text, "enoexec_host_exits_total", host="test-host") == 2.0

    # Clean shutdown on SIGTERM, both sides.
    assert ag.stop(signal.SIGTERM) == 0, ag.output()[-2000:]
    assert col.stop(signal.SIGTERM) == 0, col.output()[-2000:]
