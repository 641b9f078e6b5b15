"""Stored event records made the way the collector makes them (ingest.record on a
wire Event), for tests and benchmarks that fill a store directly."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from collector.ingest import ingest
from collector.store.records import EventRecord
from enoexec.v1 import enoexec_pb2 as pb

PULL_TITLE = "Pull the linux/arm64 variant of the image"  # the hint of an exit with the defaults below


def exit_record(
    event_id: str,
    when: datetime,
    host: str,
    *,
    host_platform: str = "linux/arm64",
    image: str = "shop/web:2",
    image_platform: str = "linux/amd64",
    binary_platform: str = "linux/amd64",
    cause: str = "arch_mismatch",
    available: Sequence[str] | None = ("linux/amd64", "linux/arm64"),
    backfilled: bool = False,
    failure: str = "",
) -> EventRecord:
    """An exit record; with the defaults its hint is ``pull_platform`` (:data:`PULL_TITLE`),
    with ``available=None`` it is ``rebuild_multiplatform``."""
    ev = pb.Event(
        event_id=event_id,
        host=pb.HostFacts(host_id=host, platform=host_platform),
        image=pb.ImageFacts(ref=image, declared_platform=image_platform, available_platforms=list(available or ()),
                            available_platforms_known=available is not None),
        binary=pb.BinaryFacts(path="/app", kind="elf", platform=binary_platform),
        container=pb.ContainerFacts(id="c" * 12, name=f"c-{event_id}", exit_code=255),
        cause=cause,
        failure=failure,
    )
    ev.time.FromDatetime(when)
    rec = ingest.record(ev)
    return dataclasses.replace(rec, backfilled=True) if backfilled else rec
