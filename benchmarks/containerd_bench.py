"""The agent on containerd: detection latency against ``ctr events``, and footprint against
the Docker agent, in the same run.

    PYTHONPATH=. .venv/bin/python benchmarks/containerd_bench.py [--quick] [--exits N] [--containers N]

Starts a private containerd (tests/containerd.py), a private dockerd (tests/dockerd.py), a
real collector, the real agent with ``--runtime containerd`` and, for the footprint, the
real agent on the dockerd.

Latency: N attempts of a pod's container run through containerd's own CRI plugin, as the
kubelet runs them (tests/cri.py: one host-network sandbox, a new container per attempt, the
log written by containerd), one after another, each dying of exec format error. One exit's latency: its ``exited_at``
to the moment the collector's ``/api/v1/events`` first lists it (polled every 10 ms).
Baseline, the floor: the same exit's ``/tasks/exit`` line arriving from ``ctr events``
(containerd's own CLI subscriber) in this process. Goal (issue #18): added latency (agent
minus ``ctr events``) p99 <= 250 ms.

Footprint: M old exited, failed containers on each engine (containerd: tasks left stopped,
the costlier case for reconciliation); both agents with their defaults; VmRSS and PSS read
``--settle`` seconds after start, CPU over the next ``--window`` seconds; ``ctr events`` as a
baseline. Goals: containerd agent RSS within 5 MiB of the Docker agent; idle CPU <= 0.2 %.
``--quick`` (CI smoke): 4 exits, 20 containers, 15 s settle, 15 s window.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.engine.exits import parse_docker_time  # noqa: E402
from benchmarks import agent_harness as h  # noqa: E402
from tests import containerd as ctrd  # noqa: E402
from tests import cri, images, procs  # noqa: E402

GOAL_ADDED_MS = 250.0
GOAL_RSS_DIFF_MIB = 5.0
GOAL_CPU_PCT = 0.2
HOST_ID = "containerd-bench"


class CtrEvents:
    """``ctr events``: when did each /tasks/exit line arrive here?"""

    def __init__(self, c: ctrd.Containerd) -> None:
        self.proc = subprocess.Popen(["ctr", "-a", str(c.socket), "events"], stdout=subprocess.PIPE, text=True, bufsize=1)
        self.seen: dict[str, tuple[float, datetime]] = {}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            if " /tasks/exit " not in line:
                continue
            doc = json.loads(line.split(" /tasks/exit ", 1)[1])
            when = parse_docker_time(doc.get("exited_at", ""))
            if when is not None:
                self.seen.setdefault(doc["container_id"], (now, when))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Poller:
    def __init__(self, http_port: int) -> None:
        self._url = f"http://127.0.0.1:{http_port}/api/v1/events?host={HOST_ID}&limit=20"
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = procs.get_json(self._url)["events"]
            except (OSError, AssertionError):
                events = []
            now = time.time()
            for ev in events:
                self.seen.setdefault(ev["container"]["id"], now)
            self._stop.wait(0.01)

    def close(self) -> None:
        self._stop.set()


def agent_argv(c: ctrd.Containerd, grpc_port: int, state: Path) -> list[str]:
    return [sys.executable, "-m", "agent.cli", "run", "--insecure", "--collector", f"127.0.0.1:{grpc_port}",
            "--runtime", "containerd", "--containerd-address", str(c.socket), "--containerd-root", str(c.data_root),
            "--cri-log-root", str(c.log_root), "--state-dir", str(state), "--host-id", HOST_ID, "--no-lookup-registry"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: small and short")
    ap.add_argument("--exits", type=int, help="exits timed (default 40; quick 4)")
    ap.add_argument("--containers", type=int, help="old exited failed containers per engine (default 200; quick 20)")
    ap.add_argument("--settle", type=float, help="seconds after the agents start before RSS is read (default 60; quick 15)")
    ap.add_argument("--window", type=float, help="seconds of idle CPU measured (default 120; quick 15)")
    args = ap.parse_args()
    n = args.exits or (4 if args.quick else 40)
    m = args.containers if args.containers is not None else (20 if args.quick else 200)
    settle = args.settle if args.settle is not None else (15.0 if args.quick else 60.0)
    window = args.window if args.window is not None else (15.0 if args.quick else 120.0)
    why = ctrd.available()
    if why:
        raise SystemExit(why)
    print(f"# containerd agent, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {h.machine()}")
    print(f"# latency: {n} pod attempts from exited_at; footprint: {m} exited containers per engine, "
          f"RSS {settle:.0f} s after start, idle CPU over {window:.0f} s")
    label = h.new_label()
    image = "docker.io/enoexec-bench/crash:1"
    arm64 = images.archive("enoexec-bench/crash:1", [images.File("/app", images.elf(images.EM_AARCH64))],
                           architecture="arm64", entrypoint=["/app"])
    with ctrd.containerd() as c, h.engine() as eng, tempfile.TemporaryDirectory(prefix="enoexec-ctrd-bench-") as tmp_s:
        tmp = Path(tmp_s)
        c.load(arm64)
        c.load(cri.pause_archive())
        api = eng.client()
        ref = h.load_arm64(api, f"{label}/crash:1")
        try:
            with h.collector(tmp) as col:
                # -- latency ------------------------------------------------------------
                ag = procs.Proc(agent_argv(c, col.grpc, tmp / "state-latency"), tmp / "agent-latency.log").start()
                try:
                    procs.wait_for(lambda: "containerd event stream connected" in ag.output(), timeout=30, what="agent")
                    floor, poll = CtrEvents(c), Poller(col.http)
                    kubelet = cri.Kubelet(c.socket, c.log_root)
                    sandbox = kubelet.pod("latency")
                    time.sleep(0.5)  # ctr events subscribed
                    results = []
                    for i in range(n):
                        cid = kubelet.attempt(sandbox, image, i)
                        procs.wait_for(lambda cid=cid: cid in poll.seen and cid in floor.seen, timeout=30, interval=0.01,
                                       what=f"exit {cid[:12]}")
                        arrived, exited = floor.seen[cid]
                        died = exited.timestamp()
                        results.append(((poll.seen[cid] - died) * 1000, (arrived - died) * 1000))
                    floor.close()
                    poll.close()
                    kubelet.close()
                finally:
                    ag.stop()
                    c.cleanup()
                # -- footprint ----------------------------------------------------------
                started = time.monotonic()
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda i: c.run_attempt(image, ctrd.Pod(f"old-{i}"), 0, detach=True), range(m)))
                h.run_many(api, ref, m, label)
                print(f"# ran {m} + {m} containers in {time.monotonic() - started:.1f} s")
                ctrd_agent = procs.Proc(agent_argv(c, col.grpc, tmp / "state-fp"), tmp / "agent-fp.log").start()
                with h.agent(tmp, col.grpc, eng.url, "docker-bench") as docker_agent, \
                        h.process(["ctr", "-a", str(c.socket), "events"], tmp / "ctr-events.log") as ctr_events:
                    try:
                        t_start = time.monotonic()
                        text = lambda: procs.metrics(col.http)  # noqa: E731
                        procs.wait_for(lambda: procs.total(text(), "enoexec_backfilled_exits_total") >= 2 * m,
                                       timeout=max(60.0, m), interval=1.0, what="old exits reported by both agents")
                        time.sleep(max(0.0, settle - (time.monotonic() - t_start)))
                        pids = {"agent (containerd)": ctrd_agent.popen.pid,  # type: ignore[union-attr]
                                "agent (docker)": docker_agent.popen.pid,  # type: ignore[union-attr]
                                "ctr events": ctr_events.pid}
                        first = {k: h.read_proc(p) for k, p in pids.items()}
                        t0 = time.monotonic()
                        time.sleep(window)
                        elapsed = time.monotonic() - t0
                        last = {k: h.read_proc(p) for k, p in pids.items()}
                    finally:
                        ctrd_agent.stop()
        finally:
            h.remove_labelled(api, label)
            api.remove_image(ref, force=True)
            api.close()

    agent = [r[0] for r in results]
    base = [r[1] for r in results]
    added = [r[0] - r[1] for r in results]
    print(f"{'exits':>5} {'agent p50':>9} {'p99':>7} {'max':>7} {'ctr events p50':>14} {'p99':>6} {'added p99':>9}")
    print(f"{n:>5} {h.median(agent):>7.0f}ms {h.pct(agent, 0.99):>5.0f}ms {max(agent):>5.0f}ms "
          f"{h.median(base):>12.0f}ms {h.pct(base, 0.99):>4.0f}ms {h.pct(added, 0.99):>7.0f}ms")
    print(f"added detection latency p99: {h.pct(added, 0.99):.0f} ms (goal <= {GOAL_ADDED_MS:.0f} ms)")
    print(f"{'process':<20} {'RSS MiB':>8} {'PSS MiB':>8} {'idle CPU %':>10}")
    cpu = {}
    for k in pids:
        cpu[k] = 100.0 * (last[k].cpu_seconds - first[k].cpu_seconds) / elapsed
        print(f"{k:<20} {first[k].rss / h.MiB:>8.1f} {first[k].pss / h.MiB:>8.1f} {cpu[k]:>10.3f}")
    diff = (first["agent (containerd)"].rss - first["agent (docker)"].rss) / h.MiB
    print(f"containerd agent RSS - docker agent RSS: {diff:+.1f} MiB (goal within {GOAL_RSS_DIFF_MIB:.0f} MiB); "
          f"containerd agent idle CPU {cpu['agent (containerd)']:.3f} % (goal <= {GOAL_CPU_PCT} %)")


if __name__ == "__main__":
    main()
