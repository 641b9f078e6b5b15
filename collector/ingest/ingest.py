"""Check and convert what agents send. Pure: no I/O.

Everything an agent sends is untrusted. An event that fails a check is
rejected with a reason (counted in ``enoexec_collector_events_rejected_total``)
and never stored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format

from collector.store import eventcodec
from collector.store.records import EventRecord
from enoexec import platforms
from enoexec.causes import CAUSES, EXEC_FORMAT_ERROR, FAILURES
from enoexec.hints import hint_for
from enoexec.limits import MAX_EVENT_BYTES, MAX_ID, MAX_LABEL, valid_event_id
from enoexec.v1 import enoexec_pb2 as pb

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799  # 0001-01-01 .. 9999-12-31


@dataclass(frozen=True)
class Rejected:
    event_id: str
    reason: str


@functools.lru_cache(maxsize=4096)
def label(value: str, limit: int = MAX_LABEL) -> str:
    """A label value that is printable and bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in value)
    return clean[:limit]


@functools.lru_cache(maxsize=4096)
def image_label(ref: str) -> str:
    """``repo:tag`` as the user named it, without a digest."""
    return label(ref.split("@", 1)[0]) if ref else "_none"


@functools.lru_cache(maxsize=1024)
def valid_platform(value: str) -> bool:
    return platforms.is_valid(value)


def _platform(value: str) -> str:
    return value if not value or valid_platform(value) else "_invalid"


def _valid_timestamp(ts: Any) -> bool:
    """Within google.protobuf.Timestamp's documented range (else it cannot become JSON)."""
    return _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos <= 999_999_999


def check(event: pb.Event, host_id: str, now: datetime) -> str:
    """"" if the event is acceptable from ``host_id``, else the reason to reject it."""
    if not valid_event_id(event.event_id):
        return "bad_event_id"
    if event.ByteSize() > MAX_EVENT_BYTES:
        return "too_large"
    if event.host.host_id != host_id:
        return "host_mismatch"
    if event.cause not in CAUSES:
        return "bad_cause"
    if event.failure and event.failure not in FAILURES:
        return "bad_failure"
    if not event.HasField("time") or not _valid_timestamp(event.time):
        return "bad_time"
    if event.container.HasField("finished_at") and not _valid_timestamp(event.container.finished_at):
        return "bad_time"
    try:
        when = event.time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return "bad_time"
    if when < _EPOCH or when > now + timedelta(days=1):
        return "bad_time"
    for p in (event.host.platform, event.image.declared_platform, event.binary.platform):
        if p and not valid_platform(p):
            return "bad_platform"
    return ""


@functools.lru_cache(maxsize=4096)
def _hint_id(cause: str, host_platform: str, image_platform: str, binary_platform: str,
             available: tuple[str, ...] | None, emulated: tuple[str, ...], kind: str, shebang: str) -> str:
    """Which hint an event gets. The choice depends on these facts only (image, path
    and container name fill in the hint's text, not its id), so it is cached."""
    return hint_for(cause=cause, image_ref="", host_platform=host_platform, image_platform=image_platform,
                    binary_platform=binary_platform, available_platforms=available,
                    emulated_platforms=emulated, binary_kind=kind, shebang=shebang).id


def hint_id_of(event: pb.Event) -> str:
    image, host = event.image, event.host
    return _hint_id(
        event.cause, host.platform, image.declared_platform, event.binary.platform,
        tuple(image.available_platforms) if image.available_platforms_known else None,
        tuple(e.platform for e in host.emulators if e.enabled and e.platform),
        event.binary.kind, event.binary.shebang,
    )


def record(event: pb.Event) -> EventRecord:
    """The stored form of a checked event, with its hint chosen. Consumes ``event``
    (its host and image facts move out of it, see :mod:`collector.store.eventcodec`)."""
    hint_id = hint_id_of(event)
    backfilled = event.backfilled
    failure = event.failure or EXEC_FORMAT_ERROR
    host_id, host_platform = event.host.host_id, _platform(event.host.platform)
    image_ref, image_platform = image_label(event.image.ref), _platform(event.image.declared_platform)
    body, host, image = eventcodec.split(event)
    return EventRecord(
        event_id=event.event_id,
        time=event.time.ToDatetime(tzinfo=UTC),
        host_id=host_id,
        host_platform=host_platform,
        image_ref=image_ref,
        image_platform=image_platform,
        binary_platform=_platform(event.binary.platform),
        cause=event.cause,
        hint_id=hint_id,
        body=body,
        host_ref=eventcodec.ref(host),
        host_facts=host,
        image_facts_ref=eventcodec.ref(image),
        image_facts=image,
        backfilled=backfilled,
        failure=failure,
        kube_namespace=event.container.kubernetes.namespace if event.container.HasField("kubernetes") else "",
    )


def split(batch: pb.EventBatch, host_id: str, now: datetime) -> tuple[list[EventRecord], list[Rejected]]:
    """Acceptable events as records, and the rest as rejections."""
    good: list[EventRecord] = []
    bad: list[Rejected] = []
    seen: set[str] = set()
    for event in batch.events:
        reason = check(event, host_id, now)
        if not reason and event.event_id in seen:
            continue  # repeated inside one batch: stored once, acked once
        if not reason:
            try:
                rec = record(event)
            except (ValueError, json_format.Error):  # defensive: one odd event must not poison the batch
                reason = "malformed"
        if reason:
            bad.append(Rejected(event.event_id[:MAX_ID], reason))
        else:
            seen.add(event.event_id)
            good.append(rec)
    return good, bad
