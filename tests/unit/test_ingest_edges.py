"""ingest.check at both sides of every edge, and the reasons it names (they are the values of
``enoexec_collector_events_rejected_total{reason}`` that the runbook lists)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.ingest import ingest
from enoexec.limits import MAX_EVENT_BYTES
from enoexec.v1 import enoexec_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def event(event_id: str = "e-1", when: datetime = NOW - timedelta(minutes=1), **fields: object) -> pb.Event:
    fields = {"cause": "arch_mismatch", **fields}
    ev = pb.Event(event_id=event_id, host=pb.HostFacts(host_id="h1", platform="linux/amd64"),
                  image=pb.ImageFacts(ref="shop/web:2", declared_platform="linux/arm64"),
                  binary=pb.BinaryFacts(path="/app", kind="elf", platform="linux/arm64"), **fields)  # type: ignore[arg-type]
    ev.time.FromDatetime(when)
    return ev


def reason(ev: pb.Event) -> str:
    return ingest.check(ev, "h1", NOW)


def test_a_plain_event_passes() -> None:
    assert reason(event()) == ""


def test_each_reason_by_name() -> None:
    assert reason(event(event_id="")) == "bad_event_id"
    assert reason(event(explanation="x" * MAX_EVENT_BYTES)) == "too_large"
    assert ingest.check(event(), "h2", NOW) == "host_mismatch"
    assert reason(event(cause="cosmic_rays")) == "bad_cause"
    no_time = event()
    no_time.ClearField("time")
    assert reason(no_time) == "bad_time"
    for part in ("host", "image", "binary"):
        ev = event()
        field = "declared_platform" if part == "image" else "platform"
        setattr(getattr(ev, part), field, "x86_64")
        assert reason(ev) == "bad_platform", part


def test_the_size_limit_is_inclusive() -> None:
    ev = event()
    ev.explanation = "x" * (MAX_EVENT_BYTES - ev.ByteSize() - 4)  # tag and 3-byte length
    assert ev.ByteSize() == MAX_EVENT_BYTES and reason(ev) == ""
    ev.explanation += "x"
    assert reason(ev) == "too_large"


@pytest.mark.parametrize(("when", "ok"), [
    (datetime(2000, 1, 1, tzinfo=UTC), True),
    (datetime(2000, 1, 1, tzinfo=UTC) - US, False),
    (NOW + timedelta(days=1), True),  # an agent's clock a day ahead is still believed
    (NOW + timedelta(days=1) + US, False),
])
def test_the_event_time_window_at_both_edges(when: datetime, ok: bool) -> None:
    assert reason(event(when=when)) == ("" if ok else "bad_time")


@pytest.mark.parametrize(("seconds", "nanos", "ok"), [
    (253_402_300_799, 999_999_999, True),  # 9999-12-31T23:59:59.999999999
    (253_402_300_800, 0, False),
    (-62_135_596_800, 0, True),  # 0001-01-01
    (-62_135_596_801, 0, False),
    (0, 1_000_000_000, False),
    (0, -1, False),
])
def test_a_finish_time_must_be_a_timestamp_json_can_say(seconds: int, nanos: int, ok: bool) -> None:
    ev = event()
    ev.container.finished_at.seconds, ev.container.finished_at.nanos = seconds, nanos
    assert reason(ev) == ("" if ok else "bad_time")
    ev.ClearField("container")
    assert reason(ev) == ""  # no finish time at all is fine


def test_a_batch_keeps_the_first_of_a_repeated_event_and_goes_on() -> None:
    batch = pb.EventBatch(events=[event("a"), event("a"), event("b"), event("c", cause="nope"), event("a")])
    good, bad = ingest.split(batch, "h1", NOW)
    assert [r.event_id for r in good] == ["a", "b"]
    assert bad == [ingest.Rejected("c", "bad_cause")]


def test_a_record_keeps_backfilled_and_labels() -> None:
    ev = event(backfilled=True)
    ev.image.ref = "shop/web:2@sha256:" + "0" * 64
    rec = ingest.record(ev)
    assert (rec.backfilled, rec.image_ref, rec.host_platform, rec.image_platform, rec.binary_platform) == (
        True, "shop/web:2", "linux/amd64", "linux/arm64", "linux/arm64")
    assert ingest.record(event()).backfilled is False


@pytest.mark.parametrize(("kind", "hint"), [("lfs_pointer", "git_lfs_pull"), ("html", "fix_download"), ("data", "fix_not_a_binary")])
def test_the_stored_hint_id_follows_the_binary_kind(kind: str, hint: str) -> None:
    ev = event(cause="not_a_binary")
    ev.binary.kind = kind
    assert ingest.hint_id_of(ev) == hint == ingest.record(ev).hint_id


def test_a_record_of_an_unchecked_event_labels_an_invalid_platform_as_such() -> None:
    ev = event()
    ev.binary.platform = "x86_64"
    assert ingest.record(ev).binary_platform == "_invalid"
