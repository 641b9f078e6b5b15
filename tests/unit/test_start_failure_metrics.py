"""Look-alikes are counted beside exec format errors, never inside them:
``enoexec_exits_total``, ``enoexec_host_exits_total`` and
``enoexec_last_exit_timestamp_seconds`` (the EnoexecExecFormatErrors alert's
source) keep counting ENOEXEC only; ``enoexec_start_failures_total`` and
``enoexec_last_start_failure_timestamp_seconds`` carry the look-alikes, and
``enoexec_last_emulated_start_timestamp_seconds`` the emulation warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from collector.http.metrics import FleetCollector
from collector.ingest.stats import Stats
from collector.store.store import Store
from tests.records import exit_record

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def samples(store: Store) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(FleetCollector(store, Stats(), max_image_labels=200, clock=lambda: NOW))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in registry.collect():
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_start_failures_have_their_own_series(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "c.db"), replica_id="r1", clock=lambda: NOW)
    try:
        store.insert_events([
            exit_record("a" * 32, NOW - timedelta(minutes=2), "pi-1"),
            exit_record("b" * 32, NOW - timedelta(minutes=1), "pi-1", cause="missing_loader",
                        host_platform="linux/amd64", failure="start_failure"),
            exit_record("c" * 32, NOW - timedelta(minutes=1), "pi-2", cause="corrupt_file",
                        host_platform="linux/amd64", failure="exec_format_error"),
            exit_record("d" * 32, NOW - timedelta(minutes=3), "x86-1", cause="emulated", host_platform="linux/amd64",
                        binary_platform="linux/arm64", failure="emulated"),
        ])
        got = samples(store)
        by_failure = {f: sorted(e["cause"] for e in store.events(failure=f))
                      for f in ("exec_format_error", "start_failure", "emulated")}
    finally:
        store.close()
    exits = {dict(k)["cause"]: v for k, v in got["enoexec_exits_total"].items()}
    assert exits == {"arch_mismatch": 1, "corrupt_file": 1}
    starts = {dict(k)["cause"]: v for k, v in got["enoexec_start_failures_total"].items()}
    assert starts == {"missing_loader": 1}
    assert {dict(k)["host"] for k in got["enoexec_host_exits_total"]} == {"pi-1", "pi-2"}
    assert sum(got["enoexec_host_exits_total"].values()) == 2
    last = {dict(k)["cause"] for k in got["enoexec_last_exit_timestamp_seconds"]}
    assert last == {"arch_mismatch", "corrupt_file"}
    (labels, when), = got["enoexec_last_start_failure_timestamp_seconds"].items()
    assert dict(labels)["cause"] == "missing_loader" and dict(labels)["hint"] == "add_loader"
    assert when == (NOW - timedelta(minutes=1)).timestamp()
    # An emulation warning is never an exit: only its own gauge shows it.
    (labels, when), = got["enoexec_last_emulated_start_timestamp_seconds"].items()
    assert (dict(labels)["host"], dict(labels)["hint"]) == ("x86-1", "run_native")
    assert "emulated" not in starts and "emulated" not in exits
    assert by_failure == {"exec_format_error": ["arch_mismatch", "corrupt_file"], "start_failure": ["missing_loader"],
                          "emulated": ["emulated"]}
