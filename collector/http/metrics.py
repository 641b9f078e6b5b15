"""Prometheus metrics built on each scrape from the store and the process's stats.

A custom collector (prometheus/client_python's pattern): fresh metric families
from a snapshot on every ``collect()``; nothing is kept in global metrics, so
counters survive restarts (they are read from durable per-replica counts) and a
test can give each case its own ``CollectorRegistry``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.errors import StoreError
from collector.ingest.presence import Presence, overlay
from collector.ingest.stats import Stats
from collector.store import recent_exits
from collector.store.records import HostRecord
from collector.store.store import Store, utcnow
from enoexec.logsetup import Repeats

logger = logging.getLogger(__name__)

OTHER = "_other"
# How far back enoexec_last_exit_timestamp_seconds looks: the image alert's window, so a
# Prometheus that missed an exit still sees it for as long as it should alert.
LAST_EXIT_WINDOW = timedelta(minutes=30)


def allowed_images(first_seen: Iterable[tuple[str, object]], cap: int) -> frozenset[str]:
    """The first ``cap`` images ever seen keep their own label; later ones fold into ``_other``.

    Oldest first keeps the set stable: a label never jumps between series.
    """
    out: list[str] = []
    for image, _ in first_seen:
        if len(out) >= cap:
            break
        out.append(image)
    return frozenset(out)


class FleetCollector(Collector):
    """Every family from small reads: counters and hint groups are rows kept at
    ingest (a row per series, never a scan of events), hosts one narrow row each
    (no facts) with this replica's live :class:`Presence` laid over."""

    def __init__(
        self,
        store: Store,
        stats: Stats,
        presence: Presence | None = None,
        *,
        max_image_labels: int = 200,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._stats = stats
        self._presence = presence or Presence()
        self._cap = max_image_labels
        self._clock = clock
        self._failures = Repeats(logger, "metrics without the store", every=300.0)

    def collect(self) -> Iterator[Metric]:
        """The store's families from one read of each, or, when the store fails, only
        the process's own with ``enoexec_collector_store_up 0``: a scrape still answers."""
        try:
            families = list(self._from_store())
        except StoreError as e:
            self._failures.failed(str(e))
            families = []
        else:
            self._failures.recovered("working again")
        yield GaugeMetricFamily("enoexec_collector_store_up",
                                "1 if this scrape read the store; 0 if it failed, and only this process's own metrics follow.",
                                value=1 if families else 0)
        yield from families
        yield from self._own()

    def _from_store(self) -> Iterator[Metric]:
        keep = allowed_images(self._store.image_first_seen(), self._cap)

        def img(name: str) -> str:
            return name if name in keep else OTHER

        exits = CounterMetricFamily(
            "enoexec_exits", "Container exits diagnosed as exec format error, by cause and platforms.",
            labels=["cause", "host_platform", "image_platform", "binary_platform", "image"],
        )
        folded: dict[tuple[str, ...], int] = defaultdict(int)
        for c in self._store.exit_counts():
            folded[(c.cause, c.host_platform, c.image_platform, c.binary_platform, img(c.image))] += c.count
        for labels, value in sorted(folded.items()):
            exits.add_metric(list(labels), value)
        yield exits

        starts = CounterMetricFamily(
            "enoexec_start_failures",
            "Containers that died at start of a look-alike of exec format error (missing loader or interpreter, "
            "CRLF #!, corrupt file, CPU level, page size), by cause and platforms.",
            labels=["cause", "host_platform", "image_platform", "binary_platform", "image"],
        )
        folded = defaultdict(int)
        for c in self._store.start_failure_counts():
            folded[(c.cause, c.host_platform, c.image_platform, c.binary_platform, img(c.image))] += c.count
        for labels, value in sorted(folded.items()):
            starts.add_metric(list(labels), value)
        yield starts

        host_exits = CounterMetricFamily("enoexec_host_exits", "Exec format error exits per host.", labels=["host", "host_platform"])
        for h in self._store.host_exit_counts():
            host_exits.add_metric([h.host, h.host_platform], h.count)
        yield host_exits
        yield from self._last_exits(img)

        backfilled = CounterMetricFamily(
            "enoexec_backfilled_exits",
            "Exits a fresh agent reported from before it started (stored, not in enoexec_exits_total), since this collector started.",
            labels=["host"],
        )
        for host, n in sorted(self._stats.backfilled_snapshot().items()):
            backfilled.add_metric([host], n)
        yield backfilled

        pods = CounterMetricFamily(
            "enoexec_kubernetes_exits",
            "Exits of Kubernetes pods' containers counted by this collector process, by pod namespace "
            "(at most 100, the rest as _other) and cause.",
            labels=["namespace", "cause"],
        )
        for (namespace, cause), n in sorted(self._stats.pod_exits_snapshot().items()):
            pods.add_metric([namespace, cause], n)
        yield pods

        hosts = overlay(self._store.hosts(facts=False), self._presence.local(), with_facts=False)
        yield from self._host_metrics(hosts)

        hint_info = GaugeMetricFamily("enoexec_hint_info", "Active remediation hints (value 1).", labels=["image", "cause", "host_platform", "hint"])
        seen: set[tuple[str, ...]] = set()
        for g in self._store.hint_groups(example_hosts=0, samples=False):
            key = (img(g.image), g.cause, g.host_platform, g.hint_id)
            if key not in seen:
                seen.add(key)
                hint_info.add_metric(list(key), 1)
        yield hint_info

    def _own(self) -> Iterator[Metric]:
        received, duplicate, rejected, streams = self._stats.snapshot()
        yield GaugeMetricFamily("enoexec_agents_connected", "Agents with at least one open stream on this collector.",
                                value=self._presence.connected())
        yield GaugeMetricFamily("enoexec_collector_streams", "Agent streams open on this collector, including those not yet past their Hello.",
                                value=streams)
        yield CounterMetricFamily("enoexec_collector_events_received", "Events stored for the first time by this collector process.", value=received)
        yield CounterMetricFamily("enoexec_collector_events_duplicate", "Events received again (replays) and acknowledged without counting.", value=duplicate)
        rej = CounterMetricFamily("enoexec_collector_events_rejected", "Events and streams refused, by reason.", labels=["reason"])
        for reason, n in sorted(rejected.items()):
            rej.add_metric([reason], n)
        yield rej
        clamped = CounterMetricFamily(
            "enoexec_collector_clamped_values",
            "Numbers agents reported about themselves (spool, resources) that were out of range "
            "(NaN, infinite, negative, too large) and were clamped, by field, since this collector started.",
            labels=["field"],
        )
        for name, n in sorted(self._stats.clamped_snapshot().items()):
            clamped.add_metric([name], n)
        yield clamped
        yield CounterMetricFamily(
            "enoexec_collector_throttled_seconds",
            "Seconds agents' acks were delayed because they sent faster than --agent-rate.",
            value=self._stats.throttled_seconds,
        )

    def _last_exits(self, img: Callable[[str], str]) -> Iterator[Metric]:
        since = self._clock() - LAST_EXIT_WINDOW
        for failure in recent_exits.NAMES:
            yield from recent_exits.family(self._store.recent_exits(since, failure=failure), img, failure=failure)

    @staticmethod
    def _host_metrics(hosts: list[HostRecord]) -> Iterator[Metric]:
        by_platform: dict[str, int] = defaultdict(int)
        last_seen = GaugeMetricFamily("enoexec_agent_last_seen_timestamp_seconds", "When each agent was last heard from.", labels=["host", "platform"])
        spool = GaugeMetricFamily("enoexec_agent_spool_events", "Events waiting in each agent's spool, as last reported.", labels=["host"])
        dropped = CounterMetricFamily("enoexec_agent_dropped_events", "Events each agent dropped because its spool was full.", labels=["host"])
        for h in hosts:
            by_platform[h.platform] += 1
            last_seen.add_metric([h.host_id, h.platform], h.last_seen.timestamp())
            spool.add_metric([h.host_id], h.spool_events)
            dropped.add_metric([h.host_id], h.dropped_total)
        gauge = GaugeMetricFamily("enoexec_hosts", "Hosts known to the collector, by platform.", labels=["platform"])
        for platform, n in sorted(by_platform.items()):
            gauge.add_metric([platform], n)
        yield gauge
        yield last_seen
        yield spool
        yield dropped
