"""A real agent reports its own resource use in its heartbeats; the real collector
exposes it per host in /metrics and /api/v1/hosts (spool writability included)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from enoexec import __version__
from tests import procs


def host_doc(http: int, host_id: str) -> dict:
    return next(h for h in procs.get_json(f"http://127.0.0.1:{http}/api/v1/hosts")["hosts"] if h["host_id"] == host_id)


def test_agent_self_metrics_reach_the_collector(collector, agent, tmp_path) -> None:
    col = collector()
    state = tmp_path / "state-self"
    ag = agent(col.grpc, "self-host", state)

    def rss() -> float:
        return procs.total(procs.metrics(col.http), "enoexec_agent_resident_memory_bytes", host="self-host")

    procs.wait_for(rss, timeout=30, what="agent RSS in /metrics")
    text = procs.metrics(col.http)
    statm = Path(f"/proc/{ag.popen.pid}/statm").read_text()  # type: ignore[union-attr]
    agent_rss = int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    reported = procs.total(text, "enoexec_agent_resident_memory_bytes", host="self-host")
    assert 10 * 2**20 < reported < 400 * 2**20
    assert abs(reported - agent_rss) < 30 * 2**20, (reported, agent_rss)  # the same process, a heartbeat apart
    assert 0 < procs.total(text, "enoexec_agent_cpu_seconds_total", host="self-host") < 120
    assert 5 <= procs.total(text, "enoexec_agent_open_fds", host="self-host") < 1000
    assert procs.total(text, "enoexec_agent_spool_writable", host="self-host") == 1
    assert procs.total(text, "enoexec_build_info", version=__version__) == 1

    doc = host_doc(col.http, "self-host")
    assert doc["spool_writable"] is True
    assert doc["agent_resources"]["resident_memory_bytes"] > 10 * 2**20

    # The spool file can no longer be written (immutable even for root): the fleet view says so.
    spool = state / "spool.db"
    if os.geteuid() == 0:
        changed = subprocess.run(["chattr", "+i", str(spool)], capture_output=True, check=False).returncode == 0
    else:
        spool.chmod(0o444)
        changed = True
    try:
        if changed:
            procs.wait_for(lambda: procs.total(procs.metrics(col.http), "enoexec_agent_spool_writable", host="self-host") == 0,
                           timeout=15, what="spool_writable 0")
            assert host_doc(col.http, "self-host")["spool_writable"] is False
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(spool)], check=False)
        else:
            spool.chmod(0o644)

    # The report leaves with the agent's stream.
    ag.stop()
    procs.wait_for(lambda: procs.total(procs.metrics(col.http), "enoexec_agent_resident_memory_bytes", host="self-host") == 0,
                   timeout=15, what="report gone after disconnect")
    assert host_doc(col.http, "self-host")["spool_writable"] is None
