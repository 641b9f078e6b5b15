"""How an event is kept on disk, and how it becomes the contract's JSON again. Pure.

An event is stored as its own protobuf bytes (about 200 bytes) without the two
parts that repeat: the host facts (the same in every event of a host) and the
image facts (the same in every event of an image). Those are stored once per
distinct value in ``shared_facts`` under a content key, and the event names
them (``host_ref``, ``image_facts_ref``). The hint is not stored either: it
follows from the event, and is chosen again when read (its id at ingest is kept
in the ``hint_id`` column, which the counters and aggregates use).

Events stored before schema 2 keep their full JSON in ``payload``;
:func:`payload` reads both forms.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from enoexec.eventjson import to_json
from enoexec.hints import hint_json, hint_of
from enoexec.v1 import enoexec_pb2 as pb


def ref(facts: bytes) -> str:
    """The content key of serialized facts."""
    return hashlib.blake2b(facts, digest_size=12).hexdigest()


def split(event: pb.Event) -> tuple[bytes, bytes, bytes]:
    """(body, host facts, image facts) as protobuf bytes: the event without the
    two, and each of them. Empties ``event.host`` and ``event.image`` (the caller's
    message is consumed)."""
    host = event.host.SerializeToString(deterministic=True)
    image = event.image.SerializeToString(deterministic=True)
    event.ClearField("host")
    event.ClearField("image")
    return event.SerializeToString(deterministic=True), host, image


def join(body: bytes, host: bytes | None, image: bytes | None) -> pb.Event:
    """The event again, with its host and image facts (both present, if empty)."""
    event = pb.Event.FromString(body)
    event.host.MergeFromString(host or b"")
    event.image.MergeFromString(image or b"")
    return event


def event_json(event: pb.Event) -> dict[str, Any]:
    """The contract's JSON of an event, its hint included."""
    out = to_json(event)
    out["hint"] = hint_json(hint_of(event))
    return out


def payload(body: bytes | None, host: bytes | None, image: bytes | None, legacy: str | None) -> dict[str, Any]:
    """The JSON of a stored event, whichever form it was stored in."""
    if body:
        return event_json(join(body, host, image))
    return json.loads(legacy or "{}")  # type: ignore[no-any-return]
