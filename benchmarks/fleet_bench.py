"""N agent streams against one collector: a reconnect storm, then an idle fleet.

    python benchmarks/fleet_bench.py [--quick] [--agents 10000] [--window 60]

Every simulated agent starts at a random moment within ``--window`` seconds (as
after a collector restart, with the agent's jittered backoff), opens its stream
(Hello, Welcome), sends one batch of one event and waits for the ack, then
heartbeats every ``--heartbeat`` seconds (15, the agent's default) until the end. A refused or broken
stream is retried with the agent's own backoff (0.5 s doubling to 30 s,
jittered) and counted as a client-visible error. Agents share HTTP/2
connections ``--per-channel`` at a time and run in ``--procs`` load processes.

Printed: seconds until every agent was connected, client-visible errors, ack
p50/p99, the collector's peak RSS, the ``enoexec_agents_connected`` it reports,
how long /metrics takes with the fleet connected, and the server's CPU while
the fleet only heartbeats (after the window). Baseline from the same
run: the same fleet against a bare gRPC server that answers Hello and acks
without storing anything (what Python and gRPC cost per stream, before the
collector adds its own). Goals (issue #12): no client-visible errors, RSS <= 1 GiB,
ack p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from enoexec.v1 import enoexec_pb2 as pb  # noqa: E402
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc  # noqa: E402
from tests import fleet, procs  # noqa: E402

RSS_GOAL = 1024 * 1024 * 1024
ACK_P99_GOAL = 1.0


# -- the bare server (baseline) ----------------------------------------------------------


class Bare(pb_grpc.CollectorServicer):
    async def Stream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        async for msg in request_iterator:
            if msg.HasField("hello"):
                yield pb.CollectorMessage(welcome=pb.Welcome(collector_version="bare", max_batch_events=500))
            elif msg.HasField("batch"):
                yield pb.CollectorMessage(ack=pb.Ack(batch_id=msg.batch.batch_id,
                                                     stored_event_ids=[e.event_id for e in msg.batch.events]))


async def bare_server(port: int) -> None:
    server = grpc.aio.server(options=(("grpc.max_receive_message_length", 4 * 1024 * 1024),))
    pb_grpc.add_CollectorServicer_to_server(Bare(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# -- the load (one process drives a share of the fleet) ------------------------------------


async def agent(stub: Any, n: int, run_id: str, window: float, heartbeat: float, until: float,
                out: dict[str, list[float]]) -> None:
    await asyncio.sleep(random.uniform(0, window))
    facts = fleet.host(f"fleet-{run_id}-{n:05d}", "linux/amd64", machine="x86_64", can_run_32bit=True)
    delay, attempt = 0.5, 0
    while time.time() < until:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def requests(queue: asyncio.Queue[Any] = queue) -> Any:
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item

        call = stub.Stream(requests())
        try:
            await queue.put(pb.AgentMessage(hello=pb.Hello(agent_version="bench", host=facts)))
            t = time.perf_counter()
            reply = await call.read()
            if reply is grpc.aio.EOF or not reply.HasField("welcome"):
                raise ConnectionError("no welcome")
            out["connect"].append(time.time())
            if attempt == 0:
                ev = fleet.event(facts, f"{facts.host_id}-1", cause="arch_mismatch", image="app:1",
                                 image_platform="linux/arm64", binary_platform="linux/arm64")
                t = time.perf_counter()
                await queue.put(pb.AgentMessage(batch=pb.EventBatch(batch_id=1, events=[ev])))
                reply = await call.read()
                if reply is grpc.aio.EOF or not reply.HasField("ack"):
                    raise ConnectionError("no ack")
                out["ack"].append(time.perf_counter() - t)
            attempt += 1
            while time.time() < until:
                await asyncio.sleep(min(heartbeat * random.uniform(0.9, 1.1), max(0.0, until - time.time())))
                if time.time() >= until:
                    break
                hb = pb.Heartbeat()
                hb.time.GetCurrentTime()
                await queue.put(pb.AgentMessage(heartbeat=hb))
            await queue.put(None)
            return
        except (grpc.RpcError, ConnectionError):
            out["errors"].append(time.time())
            call.cancel()
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(30.0, delay * 2)


async def load(port: int, first: int, count: int, run_id: str, window: float, heartbeat: float,
               duration: float, per_channel: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"connect": [], "ack": [], "errors": []}
    until = time.time() + duration
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=(("grpc.use_local_subchannel_pool", 1),))
                for _ in range((count + per_channel - 1) // per_channel)]
    stubs = [pb_grpc.CollectorStub(c) for c in channels]
    await asyncio.gather(*[agent(stubs[i // per_channel], first + i, run_id, window, heartbeat, until, out)
                           for i in range(count)])
    for c in channels:
        await c.close()
    return out


# -- orchestration ----------------------------------------------------------------------


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def drive(port: int, pid: int, args: argparse.Namespace, http: int | None, tmp: str) -> dict[str, Any]:
    run_id = str(random.randrange(10**6))
    share = (args.agents + args.procs - 1) // args.procs
    loaders, outputs = [], []
    for k in range(args.procs):
        first, count = k * share, min(share, args.agents - k * share)
        outputs.append(Path(tmp) / f"load-{run_id}-{k}.json")
        with open(outputs[-1], "wb") as out:
            loaders.append(subprocess.Popen(
                [sys.executable, __file__, "--load", str(port), str(first), str(count), run_id, str(args.window),
                 str(args.heartbeat), str(args.duration), str(args.per_channel)],
                stdout=out))
    peak, connected_gauge, scrape = 0, 0.0, 0.0
    start = time.time()
    idle_from: tuple[float, float] | None = None
    idle_cpu = 0.0
    while any(p.poll() is None for p in loaders):
        peak = max(peak, rss(pid))
        now = time.time()
        if idle_from is None and now - start > args.window + 5:
            idle_from = (now, cpu_seconds(pid))
        elif idle_from is not None and now - start < args.duration - 2:
            idle_cpu = (cpu_seconds(pid) - idle_from[1]) / (now - idle_from[0])
        if http and time.time() - start > args.window + 10 and not scrape:
            t = time.perf_counter()
            text = procs.metrics(http)
            scrape = time.perf_counter() - t
            connected_gauge = procs.total(text, "enoexec_agents_connected")
        time.sleep(0.5)
    results: dict[str, list[float]] = {"connect": [], "ack": [], "errors": []}
    for path in outputs:
        part = json.loads(path.read_text())
        for k in results:
            results[k] += part[k]
    acks = sorted(results["ack"]) or [0.0]
    return {
        "connected": len(results["connect"]) - 0, "all_in": (max(results["connect"]) - start) if results["connect"] else 0.0,
        "errors": len(results["errors"]), "ack_p50": statistics.median(acks), "ack_p99": acks[int(len(acks) * 0.99) - 1 if len(acks) > 1 else 0],
        "rss": peak, "gauge": connected_gauge, "scrape": scrape, "idle_cpu": idle_cpu,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 agents, 5 s window: a smoke run under a minute")
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--window", type=float, default=60.0, help="seconds over which agents (re)connect")
    ap.add_argument("--heartbeat", type=float, default=15.0, help="seconds between heartbeats (the agent default: 15)")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds each load process runs (default window + 40)")
    ap.add_argument("--procs", type=int, default=4, help="load processes")
    ap.add_argument("--per-channel", type=int, default=10, help="agent streams per HTTP/2 connection")
    ap.add_argument("--load", nargs=8, help=argparse.SUPPRESS)
    ap.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        asyncio.run(bare_server(args.bare_server))
        return
    if args.load:
        port, first, count, run_id, window, heartbeat, duration, per_channel = args.load
        out = asyncio.run(load(int(port), int(first), int(count), run_id, float(window), float(heartbeat),
                               float(duration), int(per_channel)))
        print(json.dumps(out))
        return
    if args.quick:
        args.agents, args.window, args.heartbeat, args.procs = 300, 5.0, 5.0, 2
    args.duration = args.duration or args.window + (15 if args.quick else 40)
    print(f"machine shared with other workloads: read ratios. {args.agents} agents reconnecting within {args.window:.0f} s, "
          f"{args.per_channel} per connection, {args.procs} load processes")
    print(f"goal: no client-visible errors, RSS <= {RSS_GOAL // 2**20} MiB, ack p99 <= {ACK_P99_GOAL:.0f} s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = procs.free_port()
        bare = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)])
        try:
            procs.wait_for(lambda: _listening(port), timeout=30, what="bare server")
            rows.append(("bare gRPC server (baseline)", drive(port, bare.pid, args, None, tmp)))
        finally:
            bare.terminate()
            bare.wait(timeout=30)
        g, h = procs.free_port(), procs.free_port()
        col = procs.Proc(procs.collector_argv(str(Path(tmp) / "fleet.db"), g, h), Path(tmp) / "c.log").start()
        try:
            procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz"), timeout=30, what="collector")
            rows.append(("collector (SQLite)", drive(g, col.popen.pid, args, h, tmp)))  # type: ignore[union-attr]
            log = col.output()
        finally:
            col.stop()
    print(f"{'server':<28} {'agents in':>9} {'all in s':>8} {'errors':>6} {'ack p50 ms':>10} {'ack p99 ms':>10} "
          f"{'peak RSS MiB':>12} {'connected':>9} {'/metrics s':>10} {'idle CPU %':>10}")
    for name, r in rows:
        print(f"{name:<28} {r['connected']:>9} {r['all_in']:>8.1f} {r['errors']:>6} {r['ack_p50'] * 1000:>10.1f} "
              f"{r['ack_p99'] * 1000:>10.1f} {r['rss'] / 2**20:>12.0f} {r['gauge'] or '-':>9} {r['scrape'] or 0:>10.2f} "
              f"{r['idle_cpu'] * 100:>10.1f}")
    problems = [line for line in log.splitlines()
                if " ERROR " in line or '"level": "error"' in line or "Traceback" in line]
    print(f"collector log errors: {len(problems)}")


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
