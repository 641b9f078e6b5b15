"""Reconciliation with many old failed containers: a pass with the inspect cache against one without.

Starts a private dockerd (root and ``dockerd`` needed), creates ``--containers``
containers that failed long ago (a foreign entrypoint), then times
``state_exits`` passes in-process: the first (cold) pass inspects every one of
them — what every pass cost before the cache, the baseline — and the following
(warm) passes inspect none. Then runs the real agent with a 5 s reconcile
interval for ``--seconds`` and prints its CPU use while idle.

    python benchmarks/reconcile_bench.py            # 200 containers, 60 s idle
    python benchmarks/reconcile_bench.py --quick    # 200 containers, 20 s idle
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.engine.reconcile import InspectCache, state_exits  # noqa: E402
from benchmarks import agent_harness  # noqa: E402
from tests import dockerd, procs  # noqa: E402

TAG = "enoexec-bench/old:1"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    idle = 20.0 if args.quick else args.seconds
    work = Path(tempfile.mkdtemp(prefix="enoexec-reconcile-"))
    with agent_harness.engine() as eng:
        api = eng.client()
        agent_harness.load_arm64(api, TAG)
        made = []
        for _ in range(args.containers):
            c = api.create_container(TAG, host_config=api.create_host_config(network_mode="none"))["Id"]
            api.start(c)
            made.append(c)
        for c in made:
            api.wait(c, timeout=60)
        counting, cache = dockerd.CountingClient(api), InspectCache()
        now = datetime.now(UTC)
        rows = []
        for label in ("cold (baseline: every pass before the cache)", "warm", "warm"):
            counting.inspects = 0
            t = time.perf_counter()
            state_exits(counting, now + timedelta(seconds=1), now + timedelta(seconds=2), cache)
            rows.append((label, counting.inspects, (time.perf_counter() - t) * 1000))
        g, h = procs.free_port(), procs.free_port()
        col = procs.Proc(procs.collector_argv(str(work / "c.db"), g, h), work / "collector.log").start()
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz"), timeout=30, what="collector")
        argv = procs.agent_argv(f"127.0.0.1:{g}", eng.url, work / "state", "bench-host", "--heartbeat-interval", "15")
        ag = procs.Proc(argv, work / "agent.log").start()
        procs.wait_for(lambda: "reconciliation found missed exits" in ag.output(), timeout=120, what="the first pass (back-fill)")
        time.sleep(6)  # past the first pass's work
        assert ag.popen is not None
        before, t0 = cpu_seconds(ag.popen.pid), time.monotonic()
        time.sleep(idle)
        cpu = (cpu_seconds(ag.popen.pid) - before) / (time.monotonic() - t0) * 100
        ag.stop()
        col.stop()
        for c in made:
            api.remove_container(c, force=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}; {args.containers} old failed containers")
    for label, n, ms in rows:
        print(f"state_exits pass, {label}: {n} inspects, {ms:.0f} ms")
    print(f"agent CPU while idle (reconcile every 5 s, heartbeat every 15 s) over {idle:.0f} s: {cpu:.2f} % (goal <= 0.2 % at the default 60 s interval)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
