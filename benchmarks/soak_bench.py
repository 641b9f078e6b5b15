"""Soak: a mixed crash-loop storm with the agent deliberately slowed; Docker's die count vs the collector's.

Starts a private dockerd (root and ``dockerd`` needed), a real collector and a
real agent, then, every second for the run, starts containers whose entrypoint
is a foreign ELF: some under ``--restart on-failure:3`` (4 exits each), some
``--rm``. Meanwhile the agent is throttled by a SIGSTOP/SIGCONT loop (stopped
``--stall`` of every ``--period`` seconds), so exits pile up behind it. At the
end it prints the failed exits Docker reported as ``die`` events against
``enoexec_exits_total``: they must be equal (exit status 1 if not).

    python benchmarks/soak_bench.py            # 180 s storm
    python benchmarks/soak_bench.py --quick    # 30 s storm, under a minute in all
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import agent_harness  # noqa: E402
from tests import procs  # noqa: E402

TAG = "enoexec-soak/arm64:1"


class DieCounter(threading.Thread):
    """Failed exits of our containers, as Docker's event stream reports them."""

    def __init__(self, api: Any, since: float) -> None:
        super().__init__(daemon=True)
        self.api, self.since = api, since
        self.keys: set[tuple[str, int]] = set()
        self._stream: Any = None

    def run(self) -> None:
        self._stream = self.api.events(decode=True, since=self.since, filters={"type": "container", "event": "die"})
        for ev in self._stream:
            attrs = ev["Actor"]["Attributes"]
            if attrs.get("image") == TAG and attrs.get("exitCode") not in (None, "0"):
                self.keys.add((ev["id"], ev["timeNano"]))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def throttle(pid: int, stop: threading.Event, period: float, stall: float) -> None:
    while not stop.is_set():
        os.kill(pid, signal.SIGSTOP)
        time.sleep(stall)
        os.kill(pid, signal.SIGCONT)
        time.sleep(period - stall)
    os.kill(pid, signal.SIGCONT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 s storm (under a minute in all)")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--loops-per-second", type=int, default=2, help="on-failure:3 containers started per second")
    ap.add_argument("--rm-per-second", type=int, default=2, help="--rm containers started per second")
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--stall", type=float, default=0.3, help="seconds of every period the agent is stopped")
    args = ap.parse_args()
    seconds = 30.0 if args.quick else args.seconds
    work = Path(tempfile.mkdtemp(prefix="enoexec-soak-"))
    with agent_harness.engine() as eng:
        api = eng.client()
        agent_harness.load_arm64(api, TAG)
        g, h = procs.free_port(), procs.free_port()
        col = procs.Proc(procs.collector_argv(str(work / "collector.db"), g, h), work / "collector.log").start()
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz"), timeout=30, what="collector")
        ag = procs.Proc(procs.agent_argv(f"127.0.0.1:{g}", eng.url, work / "state", "soak-host"), work / "agent.log").start()
        procs.wait_for(lambda: "docker event stream connected" in ag.output(), timeout=30, what="agent")
        dies = DieCounter(eng.client(), time.time())
        dies.start()
        assert ag.popen is not None
        stop = threading.Event()
        slow = threading.Thread(target=throttle, args=(ag.popen.pid, stop, args.period, args.stall), daemon=True)
        slow.start()
        made: list[str] = []
        started = time.monotonic()
        print(f"storm: {seconds:.0f} s, {args.loops_per_second} on-failure:3 + {args.rm_per_second} --rm containers/s; "
              f"agent stopped {args.stall}s of every {args.period}s")
        while time.monotonic() - started < seconds:
            tick = time.monotonic()
            for _ in range(args.loops_per_second):
                hc = api.create_host_config(network_mode="none", restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
                c = api.create_container(TAG, host_config=hc)["Id"]
                made.append(c)
                api.start(c)
            for _ in range(args.rm_per_second):
                c = api.create_container(TAG, host_config=api.create_host_config(network_mode="none", auto_remove=True))["Id"]
                api.start(c)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        procs.wait_for(lambda: all(api.inspect_container(c)["State"]["Status"] == "exited" for c in made), timeout=120, interval=1, what="loops ended")
        stop.set()
        slow.join()
        storm_end = time.monotonic()
        time.sleep(1)
        docker_count = len(dies.keys)

        def counted() -> float:
            return procs.total(procs.metrics(h), "enoexec_exits_total")

        try:
            procs.wait_for(lambda: counted() >= docker_count, timeout=120, interval=0.5, what="the collector to catch up")
        except AssertionError:
            pass
        drained = time.monotonic() - storm_end
        time.sleep(7)  # one reconciliation pass more: nothing may be counted twice
        collector_count = int(counted())
        dies.close()
        ag.stop()
        col.stop()
        for c in made:
            api.remove_container(c, force=True)
        print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}")
        print(f"docker die events (failed exits): {docker_count}")
        print(f"collector enoexec_exits_total:    {collector_count}")
        print(f"drained {drained:.1f} s after the storm; equal: {'yes' if collector_count == docker_count else 'NO'}")
        if collector_count != docker_count:
            print(f"logs kept in {work}")
            return 1
        shutil.rmtree(work, ignore_errors=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
