"""The collector process's own counters and open stream count, under a lock."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

MAX_NAMESPACES = 100
OTHER_NAMESPACE = "_other"


@dataclass
class Stats:
    received: int = 0
    duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    streams: int = 0  # open agent streams, including those still waiting for their Hello
    throttled_seconds: float = 0.0
    backfilled: Counter[str] = field(default_factory=Counter)  # per host, this process
    clamped: Counter[str] = field(default_factory=Counter)  # agents' self-reported numbers out of range, by field
    # Counted exits of Kubernetes pods per (namespace, cause), this process; at most
    # MAX_NAMESPACES namespaces, the rest folded into "_other" (no series per pod).
    pod_exits: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, received: int = 0, duplicate: int = 0, rejected: Counter[str] | None = None) -> None:
        with self._lock:
            self.received += received
            self.duplicate += duplicate
            if rejected:
                self.rejected.update(rejected)

    def backfill(self, host: str, n: int) -> None:
        with self._lock:
            self.backfilled[host] += n

    def pod_exit(self, namespace: str, cause: str) -> None:
        with self._lock:
            known = {ns for ns, _ in self.pod_exits}
            if namespace not in known and len(known) >= MAX_NAMESPACES:
                namespace = OTHER_NAMESPACE
            self.pod_exits[(namespace, cause)] += 1

    def pod_exits_snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.pod_exits)

    def backfilled_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.backfilled)

    def clamp(self, fields: list[str]) -> None:
        if fields:
            with self._lock:
                self.clamped.update(fields)

    def clamped_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.clamped)

    def reject(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.rejected[reason] += n

    def throttle(self, seconds: float) -> None:
        with self._lock:
            self.throttled_seconds += seconds

    def stream(self, delta: int) -> None:
        with self._lock:
            self.streams += delta

    def snapshot(self) -> tuple[int, int, dict[str, int], int]:
        """(received, duplicate, rejected by reason, open streams)."""
        with self._lock:
            return self.received, self.duplicate, dict(self.rejected), self.streams
