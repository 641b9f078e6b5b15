"""Images on the agents' hosts that cannot run there, as each connected agent last reported them.

Agents judge the images present on their host before any container starts and
send the unrunnable ones in every Hello and Heartbeat (the whole list, so an
image removed from a host leaves with the next heartbeat). Kept in memory per
connected stream, like the agents' resource reports; exported as
``enoexec_unrunnable_images{host_platform,image,cause}`` (hosts, with the
``image`` label capped like the exit counters') and ``/api/v1/images``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.ingest import ingest
from enoexec import limits
from enoexec.causes import CAUSES
from enoexec.judge import runs
from enoexec.v1 import enoexec_pb2 as pb

OTHER = "_other"
MAX_PER_HOST = 500
CAUSES_ACCEPTED = frozenset(CAUSES) | {runs.MISSING_INTERPRETER, runs.MISSING_LOADER, runs.NOT_FOUND}


@dataclass(frozen=True)
class Finding:
    host_id: str
    host_platform: str
    image: str
    image_id: str
    image_platform: str
    binary_platform: str
    cause: str
    explanation: str
    hint: str
    fix: str
    path: str


def _text(value: str, cap: int = 512) -> str:
    return value[:cap]


def findings(host_id: str, host_platform: str, inventory: pb.ImageInventory) -> tuple[Finding, ...]:
    """What one report says, checked: bounded length and count, known causes, valid platforms."""
    out = []
    for u in inventory.unrunnable[:MAX_PER_HOST]:
        if not u.image:
            continue
        cause = u.cause if u.cause in CAUSES_ACCEPTED else "unknown"
        out.append(Finding(
            host_id, host_platform, ingest.image_label(u.image),
            _text(u.image_id, limits.MAX_ID), ingest._platform(u.image_platform), ingest._platform(u.binary_platform), cause,
            _text(u.explanation, 1024), _text(u.hint, 64), _text(u.fix, 256), _text(u.path, 1024),
        ))
    return tuple(out)


class InventoryBoard:
    """The latest report per host, owned by the stream that sent it; images in order of first report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[object, tuple[Finding, ...]]] = {}
        self._first_seen: dict[str, int] = {}  # image -> order of its first report (stable label cap)

    def report(self, host_id: str, host_platform: str, stream: object, msg: pb.Hello | pb.Heartbeat) -> None:
        if not msg.HasField("inventory"):
            return  # an older agent, or its first pass has not ended
        found = findings(host_id, ingest.label(host_platform), msg.inventory)
        with self._lock:
            self._reports[host_id] = (stream, found)
            for f in found:
                self._first_seen.setdefault(f.image, len(self._first_seen))

    def forget(self, host_id: str, stream: object) -> None:
        with self._lock:
            held = self._reports.get(host_id)
            if held is not None and held[0] is stream:
                del self._reports[host_id]

    def snapshot(self) -> list[Finding]:
        with self._lock:
            return [f for _, found in self._reports.values() for f in found]

    def label_order(self) -> dict[str, int]:
        with self._lock:
            return dict(self._first_seen)


def images_json(found: list[Finding]) -> list[dict[str, object]]:
    """``/api/v1/images``: per image, cause and host platform, the hosts and what to do."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for f in found:
        groups.setdefault((f.image, f.cause, f.host_platform), []).append(f)
    out: list[dict[str, object]] = []
    for (image, cause, platform), fs in sorted(groups.items()):
        first = fs[0]
        out.append({
            "image": image, "cause": cause, "host_platform": platform, "hosts": sorted({f.host_id for f in fs}),
            "image_ids": sorted({f.image_id for f in fs}), "image_platform": first.image_platform,
            "binary_platform": first.binary_platform, "path": first.path, "explanation": first.explanation,
            "hint": first.hint, "fix": first.fix,
        })
    return out


def finding_json(f: Finding) -> dict[str, object]:
    return asdict(f)


class UnrunnableImagesCollector(Collector):
    def __init__(self, board: InventoryBoard, *, max_image_labels: int = 200) -> None:
        self._board, self._cap = board, max_image_labels

    def collect(self) -> Iterator[Metric]:
        order = self._board.label_order()
        keep = {image for image, rank in order.items() if rank < self._cap}
        gauge = GaugeMetricFamily(
            "enoexec_unrunnable_images",
            "Hosts holding an image that cannot run there (judged by their agents before any container starts).",
            labels=["host_platform", "image", "cause"],
        )
        counts: dict[tuple[str, str, str], set[str]] = {}
        for f in self._board.snapshot():
            key = (f.host_platform, f.image if f.image in keep else OTHER, f.cause)
            counts.setdefault(key, set()).add(f.host_id)
        for key, hosts in sorted(counts.items()):
            gauge.add_metric(list(key), len(hosts))
        yield gauge
