"""wire: every fact of an event reaches the protobuf message the collector receives, field by field
(mutation testing found the conversions untested by unit tests), and Docker's times parse exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from agent.delivery import wire
from agent.engine.exits import parse_docker_time
from agent.model import BinaryFacts, ContainerFacts, Emulator, Event, HostFacts, ImageFacts, KubernetesPod
from enoexec.v1 import enoexec_pb2 as pb

WHEN = datetime(2026, 11, 29, 6, 14, 51, 451150, tzinfo=UTC)


def full_event(available: tuple[str, ...] | None = ("linux/amd64", "linux/arm64")) -> Event:
    return Event(
        event_id="e" * 32, time=WHEN,
        host=HostFacts("h1", "linux/arm64", kernel_machine="aarch64", kernel_release="6.1.0", docker_version="20.10.24",
                       docker_platform="linux/arm64", default_runtime="runc", runtime_version="1.1.5", cpu_model="Cortex-A72",
                       page_size=4096, memory_bytes=8 << 30, can_run_32bit=True,
                       emulators=(Emulator("qemu-x86_64", "linux/amd64", "/usr/bin/qemu-x86_64", "F", True),),
                       hostname="kitchen-pi", runnable_platforms=("linux/arm64", "linux/arm/v7"), cpu_level="armv8",
                       engine="containerd", engine_version="1.6.20"),
        container=ContainerFacts("c" * 64, "web-1", 1, "exec /app: exec format error", WHEN - timedelta(milliseconds=20),
                                 entrypoint=("/app",), cmd=("--serve",), removed=True,
                                 kubernetes=KubernetesPod("web-7f9", "shop", "web", pod_uid="u1", restart_count=3)),
        image=ImageFacts("shop/web:2", "sha256:" + "1" * 64, declared_platform="linux/amd64",
                         repo_digests=("shop/web@sha256:" + "2" * 64,), available_platforms=available),
        binary=BinaryFacts("/opt/app", "elf", platform="linux/amd64", shebang="/bin/sh", interpreter="/lib64/ld-linux-x86-64.so.2",
                           description="ELF 64-bit LSB executable", source="image", requested_path="/app", error="none",
                           truncated=True, size=123, missing="/lib64/ld-linux-x86-64.so.2", libc="glibc", image_libc="musl",
                           isa_level=3, load_align=4096, damage="cut short"),
        cause="arch_mismatch", explanation="built for linux/amd64", evidence="runtime_message", backfilled=True,
        failure="start_failure",
    )


def test_every_fact_reaches_the_message() -> None:
    expected = pb.Event(
        event_id="e" * 32,
        host=pb.HostFacts(host_id="h1", platform="linux/arm64", kernel_machine="aarch64", kernel_release="6.1.0",
                          docker_version="20.10.24", docker_platform="linux/arm64", default_runtime="runc",
                          runtime_version="1.1.5", cpu_model="Cortex-A72", page_size=4096, memory_bytes=8 << 30,
                          can_run_32bit=True, hostname="kitchen-pi", runnable_platforms=["linux/arm64", "linux/arm/v7"],
                          emulators=[pb.Emulator(name="qemu-x86_64", platform="linux/amd64", interpreter="/usr/bin/qemu-x86_64",
                                                 flags="F", enabled=True)],
                          cpu_level="armv8", engine="containerd", engine_version="1.6.20"),
        container=pb.ContainerFacts(id="c" * 64, name="web-1", exit_code=1, runtime_message="exec /app: exec format error",
                                    entrypoint=["/app"], cmd=["--serve"], removed=True,
                                    kubernetes=pb.KubernetesPod(pod="web-7f9", namespace="shop", container="web", pod_uid="u1",
                                                                restart_count=3, has_restart_count=True)),
        image=pb.ImageFacts(ref="shop/web:2", id="sha256:" + "1" * 64, declared_platform="linux/amd64",
                            repo_digests=["shop/web@sha256:" + "2" * 64], available_platforms=["linux/amd64", "linux/arm64"],
                            available_platforms_known=True),
        binary=pb.BinaryFacts(path="/opt/app", kind="elf", platform="linux/amd64", shebang="/bin/sh",
                              interpreter="/lib64/ld-linux-x86-64.so.2", description="ELF 64-bit LSB executable", source="image",
                              requested_path="/app", error="none", truncated=True, size=123,
                              missing="/lib64/ld-linux-x86-64.so.2", libc="glibc", image_libc="musl", isa_level=3,
                              load_align=4096, damage="cut short"),
        cause="arch_mismatch", explanation="built for linux/amd64", evidence="runtime_message", backfilled=True,
        failure="start_failure",
    )
    expected.time.FromDatetime(WHEN)
    expected.container.finished_at.FromDatetime(WHEN - timedelta(milliseconds=20))
    assert wire.event_pb(full_event()) == expected


def test_an_unknown_registry_answer_is_not_an_empty_one() -> None:
    unknown, empty = wire.event_pb(full_event(None)).image, wire.event_pb(full_event(())).image
    assert (list(unknown.available_platforms), unknown.available_platforms_known) == ([], False)
    assert (list(empty.available_platforms), empty.available_platforms_known) == ([], True)


def test_times_are_utc_to_the_microsecond() -> None:
    elsewhere = WHEN.astimezone(timezone(timedelta(hours=9)))
    assert wire.timestamp(elsewhere) == wire.timestamp(WHEN)
    assert wire.timestamp(WHEN).ToDatetime(tzinfo=UTC) == WHEN


def test_docker_times_parse_to_the_microsecond() -> None:
    assert parse_docker_time("2026-11-29T06:14:51.451150579Z") == WHEN  # nanoseconds cut
    assert parse_docker_time("2026-11-29T06:14:51.45Z") == WHEN.replace(microsecond=450000)
    assert parse_docker_time("2026-11-29T06:14:51Z") == WHEN.replace(microsecond=0)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None  # Docker's "never"
    assert parse_docker_time("") is None
    assert parse_docker_time("yesterday") is None
