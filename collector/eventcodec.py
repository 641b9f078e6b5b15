"""How an event is kept on disk, and how it becomes the contract's JSON again. Pure.

An event is stored as its own protobuf bytes without the host facts, deflated
(about 200-400 bytes), and the host facts once per distinct value under a
content key (``host_ref``): every event of a host repeats the same facts, so
they are written once, not once per event. The hint is not stored in the event:
it follows from the event with its host, and is chosen again when read (its id
at ingest is kept in the ``hint_id`` column for counting).

Events stored before schema 2 keep their full JSON in ``payload``;
:func:`payload` reads both forms.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from enoexec.eventjson import to_json
from enoexec.hints import hint_json, hint_of
from enoexec.v1 import enoexec_pb2 as pb

LEVEL = 1  # deflate level: most of the saving at a fraction of level 6's CPU


def facts_ref(facts: bytes) -> str:
    """The content key of serialized host facts."""
    return hashlib.blake2b(facts, digest_size=12).hexdigest()


def split(event: pb.Event) -> tuple[bytes, bytes]:
    """(body, host facts): the event without its host, deflated; the host's facts.

    Empties ``event.host`` (the caller's message is consumed)."""
    facts = event.host.SerializeToString(deterministic=True)
    event.ClearField("host")
    return zlib.compress(event.SerializeToString(deterministic=True), LEVEL), facts


def join(body: bytes, facts: bytes | None) -> pb.Event:
    """The event again, with its host facts."""
    event = pb.Event.FromString(zlib.decompress(body))
    if facts:
        event.host.MergeFromString(facts)
    return event


def event_json(event: pb.Event) -> dict[str, Any]:
    """The contract's JSON of an event, its hint included."""
    out = to_json(event)
    out["hint"] = hint_json(hint_of(event))
    return out


def payload(body: bytes | None, facts: bytes | None, legacy: str | None) -> dict[str, Any]:
    """The JSON of a stored event, whichever form it was stored in."""
    if body:
        return event_json(join(body, facts))
    return json.loads(legacy or "{}")  # type: ignore[no-any-return]
