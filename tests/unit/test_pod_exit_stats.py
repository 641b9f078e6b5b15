"""Pods' exits are counted by namespace, a bounded label (issue #18 item 4)."""

from __future__ import annotations

from collector.ingest.stats import MAX_NAMESPACES, OTHER_NAMESPACE, Stats


def test_namespaces_beyond_the_cap_fold_into_other() -> None:
    s = Stats()
    for i in range(MAX_NAMESPACES + 5):
        s.pod_exit(f"ns-{i}", "arch_mismatch")
    s.pod_exit("ns-0", "arch_mismatch")  # a known one keeps its own series
    snap = s.pod_exits_snapshot()
    assert snap[("ns-0", "arch_mismatch")] == 2
    assert snap[(OTHER_NAMESPACE, "arch_mismatch")] == 5
    assert len({ns for ns, _ in snap}) == MAX_NAMESPACES + 1
