"""Agent footprint: RSS and idle CPU of the real agent daemon on a Docker host with
many old exited, failed containers, against bare event subscribers in the same run.

    PYTHONPATH=. .venv/bin/python benchmarks/agent_footprint_bench.py [--quick] [--containers N]

Starts a private dockerd (tests/dockerd.py), runs N containers that die of exec
format error (200 by default), then a real collector and the real agent with its
defaults (heartbeat 15 s, reconcile 60 s). After the agent has reported those
exits it is left idle; its VmRSS and PSS are read when it has run ``--settle``
seconds (60), and its CPU over the next ``--window`` seconds (120: two
reconciliation passes). Baselines, in the same run and window: ``docker events``
(the Go CLI), a bare docker-py subscriber (``APIClient.events``), and the floor of
any Python agent of this contract: a bare grpc.aio stream sending heartbeats.
Goals (issue #12): agent RSS <= 40 MiB after 60 s idle; idle CPU <= 0.2 %.
``--quick`` (CI smoke, < 1 min): 20 containers, 15 s settle, 15 s window,
reconcile every 5 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import agent_harness as h  # noqa: E402
from tests import procs  # noqa: E402

GOAL_RSS_MIB = 40.0
GOAL_CPU_PCT = 0.2

SDK_SUBSCRIBER = "import docker, sys\nfor _ in docker.APIClient(base_url=sys.argv[1]).events(decode=True):\n    pass\n"

# The floor of any Python agent speaking this contract: grpc.aio, one stream, a Hello
# and a heartbeat every 15 s, nothing else (no Docker client, no spool).
GRPC_FLOOR = """
import asyncio, sys
import grpc
from enoexec.v1 import enoexec_pb2 as pb, enoexec_pb2_grpc as pb_grpc

async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        call = pb_grpc.CollectorStub(channel).Stream()
        await call.write(pb.AgentMessage(hello=pb.Hello(host=pb.HostFacts(host_id="grpc-floor", platform="linux/amd64"))))
        await call.read()
        while True:
            await asyncio.sleep(15)
            await call.write(pb.AgentMessage(heartbeat=pb.Heartbeat()))

asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: small and short (< 1 min)")
    ap.add_argument("--containers", type=int, help="old exited failed containers (default 200; quick 20)")
    ap.add_argument("--settle", type=float, help="seconds after the agent starts before RSS is read (default 60; quick 15)")
    ap.add_argument("--window", type=float, help="seconds of idle CPU measured (default 120; quick 15)")
    args = ap.parse_args()
    n = args.containers if args.containers is not None else (20 if args.quick else 200)
    settle = args.settle if args.settle is not None else (15.0 if args.quick else 60.0)
    window = args.window if args.window is not None else (15.0 if args.quick else 120.0)
    extra = ("--reconcile-interval", "5", "--heartbeat-interval", "5") if args.quick else ()

    print(f"# agent footprint, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {h.machine()}")
    print(f"# {n} exited failed containers; RSS read {settle:.0f} s after start; idle CPU over {window:.0f} s")
    label = h.new_label()
    with h.engine() as eng, tempfile.TemporaryDirectory(prefix="enoexec-footprint-") as tmp_s:
        tmp = Path(tmp_s)
        api = eng.client()
        ref = h.load_arm64(api, f"{label}/crash:1")
        try:
            started = time.monotonic()
            h.run_many(api, ref, n, label)
            print(f"# ran {n} containers in {time.monotonic() - started:.1f} s")
            with h.collector(tmp) as col, h.agent(tmp, col.grpc, eng.url, "footprint-host", *extra) as ag, \
                    h.process(["docker", "--host", eng.url, "events"], tmp / "docker-events.log") as cli, \
                    h.process([sys.executable, "-c", SDK_SUBSCRIBER, eng.url], tmp / "sdk-events.log") as sdk, \
                    h.process([sys.executable, "-c", GRPC_FLOOR, f"127.0.0.1:{col.grpc}"], tmp / "grpc-floor.log") as floor:
                agent_started = time.monotonic()

                def reported() -> float:
                    # Exits from before the agent started are back-filled: counted apart.
                    text = procs.metrics(col.http)
                    return (procs.total(text, "enoexec_host_exits_total", host="footprint-host")
                            + procs.total(text, "enoexec_backfilled_exits_total", host="footprint-host"))

                try:
                    procs.wait_for(lambda: reported() >= n, timeout=max(60.0, n * 0.5), interval=1.0, what="exits reported")
                except AssertionError:
                    print(f"# note: the agent reported {reported():.0f} of {n} exits before the idle measurement")
                print(f"# agent reported the old exits {time.monotonic() - agent_started:.1f} s after start")
                time.sleep(max(0.0, settle - (time.monotonic() - agent_started)))
                pids = {"enoexec-agent": ag.popen.pid, "docker events (CLI)": cli.pid,  # type: ignore[union-attr]
                        "docker-py subscriber": sdk.pid, "grpc.aio stream only": floor.pid}
                first = {name: h.read_proc(pid) for name, pid in pids.items()}
                t0 = time.monotonic()
                time.sleep(window)
                elapsed = time.monotonic() - t0
                last = {name: h.read_proc(pid) for name, pid in pids.items()}
                self_rss = procs.total(procs.metrics(col.http), "enoexec_agent_resident_memory_bytes", host="footprint-host")
        finally:
            h.remove_labelled(api, label)
            api.remove_image(ref, force=True)
            api.close()

    print(f"{'process':<22} {'RSS MiB':>8} {'PSS MiB':>8} {'idle CPU %':>10}")
    cpu = {}
    for name in pids:
        cpu[name] = 100.0 * (last[name].cpu_seconds - first[name].cpu_seconds) / elapsed
        print(f"{name:<22} {first[name].rss / h.MiB:>8.1f} {first[name].pss / h.MiB:>8.1f} {cpu[name]:>10.3f}")
    agent, base = first["enoexec-agent"], first["docker events (CLI)"]
    print(f"agent RSS after {settle:.0f} s: {agent.rss / h.MiB:.1f} MiB (goal <= {GOAL_RSS_MIB:.0f} MiB) "
          f"= {agent.rss / base.rss:.1f}x docker events, {agent.rss / first['docker-py subscriber'].rss:.2f}x a docker-py subscriber; "
          f"self-reported in heartbeats: {self_rss / h.MiB:.1f} MiB; "
          f"floor (a bare grpc.aio stream): {first['grpc.aio stream only'].rss / h.MiB:.1f} MiB")
    print(f"agent idle CPU: {cpu['enoexec-agent']:.3f} % (goal <= {GOAL_CPU_PCT} %); "
          f"docker events {cpu['docker events (CLI)']:.3f} %, docker-py subscriber {cpu['docker-py subscriber']:.3f} %")


if __name__ == "__main__":
    main()
