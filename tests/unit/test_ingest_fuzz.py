"""Fuzz the collector's check of untrusted events: ``ingest.split`` never raises,
and whatever it accepts is well-formed (a known cause, canonical platforms,
bounded labels, JSON-serialisable payload).

The strategies here are shared with ``tests/integration/test_security.py``,
which sends the same absurd events to a real collector.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector.ingest import ingest
from collector.store import eventcodec
from enoexec import platforms
from enoexec.causes import CAUSES
from enoexec.hints import hint_of
from enoexec.v1 import enoexec_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
VALID_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386", "linux/riscv64")
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)

# Hostile text: control characters, surrogate-free unicode, separators, NULs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["", " ", "\x00", "\x1b[31m", "../../etc/passwd", "a\nb\rc", "\u202e", "x" * 129, "é" * 201]),
)


@st.composite
def big_text(draw: st.DrawFn) -> str:
    """Strings far past the label and event limits (cheap to make: one character repeated)."""
    n = draw(st.sampled_from([0, 201, 5_000, 70_000]))
    return draw(st.sampled_from(["x", "\x00", "é", "\U0001f600"])) * n


def mostly(valid: st.SearchStrategy, absurd: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` four times in five: events must get past the first check to test the later ones."""
    return st.integers(0, 4).flatmap(lambda n: absurd if n == 0 else valid)


text = st.one_of(nasty_text, big_text())
bad_platform = st.one_of(
    nasty_text,
    st.builds("{}/{}".format, nasty_text, nasty_text),  # os/arch-shaped, but hostile
    st.sampled_from(["linux/x86_64", "LINUX/AMD64", "linux/arm", "windows/amd64/", "linux//", "/", "a\x00/b", "linux/\x1b[31m", "x" * 300 + "/y", "../.."]),
)
platform = mostly(st.sampled_from(VALID_PLATFORMS + ("",)), bad_platform)
cause = mostly(st.sampled_from(sorted(CAUSES)), nasty_text)


times = st.one_of(
    st.none(),
    st.tuples(st.integers(*INT64), st.integers(*INT32)),
    st.tuples(st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999_999)),
    st.tuples(st.just(int((NOW - timedelta(minutes=5)).timestamp())), st.integers(*INT32)),
)
recent = st.tuples(st.integers(int((NOW - timedelta(days=30)).timestamp()), int(NOW.timestamp())), st.integers(0, 999_999_999))


def _set_time(ts: object, value: tuple[int, int] | None) -> None:
    if value is not None:
        ts.seconds, ts.nanos = value  # type: ignore[attr-defined]


@st.composite
def events(draw: st.DrawFn, host_id: str = "fuzz-host") -> pb.Event:
    """One absurd (or occasionally plausible) Event claimed by ``host_id``."""
    ev = pb.Event(
        event_id=draw(mostly(st.from_regex(r"\A[A-Za-z0-9._:-]{1,40}\Z"), st.one_of(st.sampled_from(["", "x" * 128, "x" * 129, "a/b", "id with space"]), nasty_text))),
        host=pb.HostFacts(
            host_id=draw(mostly(st.just(host_id), nasty_text)),
            platform=draw(platform),
            kernel_release=draw(text),
            docker_version=draw(nasty_text),
            can_run_32bit=draw(st.booleans()),
            page_size=draw(st.integers(0, 2**32 - 1)),
            memory_bytes=draw(st.integers(0, 2**64 - 1)),
            emulators=[pb.Emulator(name=draw(nasty_text), platform=draw(platform), flags=draw(nasty_text), enabled=draw(st.booleans()))
                       for _ in range(draw(st.integers(0, 3)))],
            runnable_platforms=draw(st.lists(platform, max_size=4)),
        ),
        container=pb.ContainerFacts(
            id=draw(nasty_text), name=draw(text), exit_code=draw(st.integers(*INT32)), runtime_message=draw(text),
            entrypoint=draw(st.lists(nasty_text, max_size=4)), cmd=draw(st.lists(text, max_size=3)),
        ),
        image=pb.ImageFacts(
            ref=draw(st.one_of(text, st.sampled_from(["nginx:1.27", "nginx@sha256:" + "a" * 64, "r" * 300 + ":t"]))),
            id=draw(nasty_text), declared_platform=draw(platform),
            repo_digests=draw(st.lists(nasty_text, max_size=3)),
            available_platforms=draw(st.lists(platform, max_size=5)), available_platforms_known=draw(st.booleans()),
        ),
        binary=pb.BinaryFacts(
            path=draw(text), requested_path=draw(nasty_text), kind=draw(st.one_of(st.sampled_from(["elf", "script", "pe", "macho", "empty", "text", ""]), nasty_text)),
            platform=draw(platform), shebang=draw(text), interpreter=draw(nasty_text), error=draw(nasty_text),
            truncated=draw(st.booleans()),
        ),
        cause=draw(cause),
        explanation=draw(text),
    )
    _set_time(ev.time, draw(mostly(recent, times)))
    _set_time(ev.container.finished_at, draw(times))
    return ev


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(events(), max_size=6))
def test_split_never_raises_and_accepts_only_well_formed_events(batch_events: list[pb.Event]) -> None:
    batch = pb.EventBatch(batch_id=1, events=batch_events)
    good, bad = ingest.split(batch, "fuzz-host", NOW)
    event(len(good) > 0, "some accepted")

    assert len(good) + len(bad) <= len(batch_events)
    for r in bad:
        assert r.reason and len(r.event_id) <= ingest.MAX_ID
    for rec in good:
        assert rec.cause in CAUSES
        assert rec.host_id == "fuzz-host"
        for p in (rec.host_platform, rec.image_platform, rec.binary_platform):
            assert p == "" or (platforms.is_valid(p) and len(p) <= 100 and p.isascii() and p.isprintable() and ".." not in p), p
        assert len(rec.image_ref) <= ingest.MAX_LABEL and rec.image_ref.isprintable()
        assert 1 <= len(rec.event_id) <= ingest.MAX_ID
        assert datetime(2000, 1, 1, tzinfo=UTC) <= rec.time <= NOW + timedelta(days=1)
        json.dumps(eventcodec.payload(rec.body, rec.host_facts, rec.image_facts, None))  # readable back as JSON


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events())
def test_the_cached_hint_id_is_the_hint_engines_and_storage_round_trips(ev: pb.Event) -> None:
    """The hint id is cached on the facts that choose it: it must equal the engine's
    choice for every event; and an event split for storage joins back to itself."""
    assert ingest.hint_id_of(ev) == hint_of(ev).id
    original = pb.Event()
    original.CopyFrom(ev)
    original.host.SetInParent()  # stored events always have both parts, if empty
    original.image.SetInParent()
    body, host, image = eventcodec.split(ev)
    assert eventcodec.join(body, host, image) == original


def test_a_plausible_event_is_accepted() -> None:
    """The fuzz would be vacuous if nothing ever passed; a clean event does."""
    ev = pb.Event(event_id="e-1", host=pb.HostFacts(host_id="fuzz-host", platform="linux/amd64"), cause="arch_mismatch",
                  image=pb.ImageFacts(ref="nginx:1.27", declared_platform="linux/arm64"), binary=pb.BinaryFacts(platform="linux/arm64"))
    ev.time.FromDatetime(NOW - timedelta(minutes=1))
    good, bad = ingest.split(pb.EventBatch(events=[ev]), "fuzz-host", NOW)
    assert [r.event_id for r in good] == ["e-1"] and bad == []


def test_an_impossible_finish_time_is_rejected_not_raised() -> None:
    """Found by this fuzz: a Timestamp outside 0001..9999 cannot become JSON; split used to raise,
    which ended the agent's stream, and the agent resent the same event forever."""
    ev = pb.Event(event_id="e-2", host=pb.HostFacts(host_id="fuzz-host", platform="linux/amd64"), cause="arch_mismatch")
    ev.time.FromDatetime(NOW - timedelta(minutes=1))
    ev.container.finished_at.seconds = 2**62
    good, bad = ingest.split(pb.EventBatch(events=[ev]), "fuzz-host", NOW)
    assert good == [] and bad == [ingest.Rejected("e-2", "bad_time")]
    ev.container.ClearField("finished_at")
    ev.time.nanos = -1
    assert ingest.split(pb.EventBatch(events=[ev]), "fuzz-host", NOW)[1] == [ingest.Rejected("e-2", "bad_time")]
