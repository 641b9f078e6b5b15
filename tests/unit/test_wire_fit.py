"""Every event fits the collector's size limit: long fields are cut with a marker."""

from __future__ import annotations

import pytest

from agent.delivery import wire
from enoexec.limits import MAX_EVENT_BYTES
from enoexec.v1 import enoexec_pb2 as pb


def _event(**container: object) -> pb.Event:
    return pb.Event(
        event_id="e" * 32,
        host=pb.HostFacts(host_id="h1", platform="linux/amd64"),
        container=pb.ContainerFacts(**{"id": "c" * 64, "exit_code": 1, "runtime_message": "exec /app: exec format error", **container}),
        binary=pb.BinaryFacts(path="/app", kind="elf"),
        cause="arch_mismatch",
    )


def test_an_event_that_fits_is_left_alone() -> None:
    ev = _event(cmd=["run", "--fast"])
    assert wire.fit(ev, MAX_EVENT_BYTES) is ev


def test_a_70kb_cmd_is_cut_with_a_marker_and_the_rest_is_kept() -> None:
    ev = _event(cmd=["/bin/sh", "-c", "x" * 70_000], name="web")
    assert ev.ByteSize() > MAX_EVENT_BYTES
    out = wire.fit(ev, MAX_EVENT_BYTES)
    assert out.ByteSize() <= MAX_EVENT_BYTES
    assert out.container.cmd[:2] == ["/bin/sh", "-c"]
    assert out.container.cmd[2].startswith("xxxx") and out.container.cmd[2].endswith("chars]")
    assert "…[+" in out.container.cmd[2]
    assert (out.event_id, out.cause, out.host.host_id, out.container.id, out.container.name) == (ev.event_id, ev.cause, "h1", ev.container.id, "web")
    assert ev.container.cmd[2] == "x" * 70_000  # the input is not changed


def test_many_short_items_are_dropped_from_the_end_with_a_marker() -> None:
    ev = _event(cmd=[f"arg{i}" for i in range(20_000)])
    out = wire.fit(ev, MAX_EVENT_BYTES)
    assert out.ByteSize() <= MAX_EVENT_BYTES
    assert out.container.cmd[0] == "arg0"
    assert out.container.cmd[-1].startswith("…[+") and out.container.cmd[-1].endswith(" more]")
    dropped = int(out.container.cmd[-1][3:].split()[0])
    assert len(out.container.cmd) - 1 + dropped == 20_000


def test_every_long_field_shares_the_cut() -> None:
    ev = _event(runtime_message="m" * 40_000, name="n" * 40_000, entrypoint=["e" * 40_000])
    ev.explanation = "x" * 40_000
    out = wire.fit(ev, 4096)
    assert out.ByteSize() <= 4096
    assert all("…[+" in v for v in (out.container.runtime_message, out.container.name, out.container.entrypoint[0], out.explanation))


# Every field the collector may receive long, named here rather than read from wire._CUTTABLE, so
# dropping one from the cuttable list fails its case: such an event would stay over the limit and
# be refused by the collector.
LONG_FIELDS = [
    ("container", "cmd"), ("container", "entrypoint"), ("container", "runtime_message"), ("container", "name"),
    ("binary", "shebang"), ("binary", "description"), ("binary", "error"), ("binary", "path"),
    ("binary", "requested_path"), ("binary", "interpreter"), ("image", "ref"), ("image", "repo_digests"),
    ("", "explanation"),
]


@pytest.mark.parametrize(("part", "name"), LONG_FIELDS, ids=[f"{p or 'event'}.{n}" for p, n in LONG_FIELDS])
def test_each_long_field_alone_is_cut_to_fit(part: str, name: str) -> None:
    ev = _event()
    msg = getattr(ev, part) if part else ev
    if isinstance(getattr(msg, name), str):
        setattr(msg, name, "z" * 70_000)
    else:
        getattr(msg, name).append("z" * 70_000)
    assert ev.ByteSize() > MAX_EVENT_BYTES
    out = wire.fit(ev, MAX_EVENT_BYTES)
    assert out.ByteSize() <= MAX_EVENT_BYTES
    cut = getattr(getattr(out, part) if part else out, name)
    text = cut if isinstance(cut, str) else cut[0]
    assert text.startswith("z" * wire.MIN_KEPT) and "…[+" in text


def test_the_limit_is_inclusive_an_event_one_byte_over_is_cut() -> None:
    ev = _event(cmd=["x" * 1000])
    assert wire.fit(ev, ev.ByteSize()) is ev
    out = wire.fit(ev, ev.ByteSize() - 1)
    assert out is not ev and out.ByteSize() <= ev.ByteSize() - 1


def test_a_cut_string_keeps_at_least_min_kept_characters() -> None:
    # a limit no cut can reach: every string stops at MIN_KEPT characters and the event stays as small as that makes it
    ev = _event(runtime_message="m" * 1000)
    out = wire.fit(ev, 10)
    assert out.container.runtime_message == wire.truncated("m" * 1000, wire.MIN_KEPT)
    assert wire.truncated("abcdef", 2) == "ab…[+4 chars]"


def test_halving_stops_at_the_first_size_that_fits() -> None:
    ev = _event(runtime_message="m" * 4000)
    limit = ev.ByteSize() - 1000  # cutting to 2000 characters is enough
    out = wire.fit(ev, limit)
    assert out.container.runtime_message == wire.truncated("m" * 4000, 2000)


def test_short_items_of_every_list_field_are_dropped_not_only_the_first() -> None:
    ev = _event()
    ev.image.repo_digests.extend(f"d{i}" for i in range(2_000))  # the last list field: every list is visited
    out = wire.fit(ev, 4096)
    assert out.ByteSize() <= 4096
    assert out.image.repo_digests[0] == "d0" and out.image.repo_digests[-1].endswith(" more]")


def test_dropping_stops_at_the_first_size_that_fits() -> None:
    ev = _event(cmd=[f"arg{i}" for i in range(2_000)])
    out = wire.fit(ev, 4096)
    # the same event at exactly that size loses nothing more
    again = wire.fit(ev, out.ByteSize())
    assert list(again.container.cmd) == list(out.container.cmd)


def test_a_list_that_cannot_fit_is_dropped_whole_and_the_marker_counts_every_item() -> None:
    ev = _event(cmd=[f"arg{i}" for i in range(50)])
    out = wire.fit(ev, 10)  # nothing can make it fit: every item goes, the marker says how many
    assert list(out.container.cmd) == ["…[+50 more]"]
