"""What the collector's store keeps and hands back, as frozen dataclasses.

Pure data: built by the service from the wire messages, written and read by
:mod:`collector.store.store`, turned into metrics, JSON and hints elsewhere. Every
``datetime`` here is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EventRecord:
    """One diagnosed exit, with the labels the store indexes and counts by."""

    event_id: str
    time: datetime
    host_id: str
    host_platform: str
    image_ref: str  # repository:tag as the user named it, no digest
    image_platform: str
    binary_platform: str
    cause: str
    hint_id: str
    # How it is stored (collector.store.eventcodec): protobuf bytes of the event without its
    # host and image facts, and those facts with their keys in ``shared_facts``.
    body: bytes = field(repr=False)
    host_ref: str
    host_facts: bytes = field(repr=False)
    image_facts_ref: str
    image_facts: bytes = field(repr=False)
    backfilled: bool = False  # an exit from before the agent started (stored, not alerted on)
    failure: str = "exec_format_error"  # or "start_failure": counted in enoexec_start_failures_total
    kube_namespace: str = ""  # the pod's namespace when the exit came from a Kubernetes pod


@dataclass(frozen=True)
class HostRecord:
    """One host the collector has heard from."""

    host_id: str
    platform: str
    facts: dict[str, Any] = field(hash=False)
    first_seen: datetime
    last_seen: datetime
    connected: bool
    spool_events: int
    dropped_total: int


@dataclass(frozen=True)
class HostRow:
    """A host as this replica writes it: facts from its Hello, liveness from its stream."""

    host_id: str
    platform: str
    facts: dict[str, Any] = field(hash=False)
    first_seen: datetime
    last_seen: datetime
    connected: bool  # some stream of this host is open on this replica
    spool_events: int
    dropped_total: int


@dataclass(frozen=True)
class ExitCount:
    """The durable value behind one ``enoexec_exits_total`` series (image not yet capped)."""

    cause: str
    host_platform: str
    image_platform: str
    binary_platform: str
    image: str
    count: int


@dataclass(frozen=True)
class HostExitCount:
    """The durable value behind one ``enoexec_host_exits_total`` series."""

    host: str
    host_platform: str
    count: int


@dataclass(frozen=True)
class HintGroup:
    """Exits of one image for one cause on one host platform, summed up for a hint."""

    image: str
    cause: str
    host_platform: str
    hint_id: str  # the hint of the latest event in the group
    hosts: int  # distinct hosts
    exits: int
    first_seen: datetime
    last_seen: datetime
    example_hosts: tuple[str, ...]  # most recently affected first
    sample: dict[str, Any] = field(hash=False)  # payload of the latest event in the group
