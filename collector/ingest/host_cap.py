"""At most ``--max-hosts`` host ids, so one bad client cannot blow up Prometheus.

Every known host has its own series (``enoexec_agent_last_seen_timestamp_seconds``,
``enoexec_agent_spool_events``...). Under ``--insecure`` any peer may introduce itself
as any host id; with a token or certificate a leaked credential still names one host
only. A Hello from a host id not yet known is refused (RESOURCE_EXHAUSTED, counted as
``too_many_hosts``) once the collector knows ``max_hosts`` hosts; known hosts always
get in. The book is the store's hosts (refreshed from time to time, shared by the
replicas) plus the hosts admitted here since.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class HostCap:
    def __init__(self, max_hosts: int) -> None:
        self.max_hosts = max_hosts
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, host_id: str) -> bool:
        """Whether ``host_id`` may report; a new one is added while there is room."""
        with self._lock:
            if host_id in self._known:
                return True
            if len(self._known) >= self.max_hosts:
                return False
            self._known.add(host_id)
            return True

    def refresh(self, known: Iterable[str]) -> None:
        """The hosts known now (the store's and this replica's live ones)."""
        with self._lock:
            self._known = set(known)

    def discard(self, host_id: str) -> None:
        """A retired host leaves room for another."""
        with self._lock:
            self._known.discard(host_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)
