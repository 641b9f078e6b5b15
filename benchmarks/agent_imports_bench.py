"""What the agent's imports cost: resident memory per layer, and per command.

    PYTHONPATH=. .venv/bin/python benchmarks/agent_imports_bench.py [--quick] [--runs N]

Layers are imported one after another in one fresh interpreter (the order the
daemon needs them) and VmRSS is read after each, so each row is what that layer
adds on top of the ones above. Commands are measured in fresh interpreters
importing exactly what the command imports (``--help``: the parser; ``facts``:
the Docker connection and the text renderer; ``run``: the daemon), median of
``--runs`` (5; quick 2), with whether asyncio, grpc or protobuf were loaded.
The floor with grpcio loaded is the interpreter + asyncio + grpc.aio + the
generated protobuf code: what any Python agent speaking this gRPC contract pays.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_harness import MiB, machine  # noqa: E402

GOAL_RSS_MIB = 40.0

LAYERS = (
    ("python interpreter (site)", ""),
    ("+ asyncio (pulls ssl)", "import asyncio"),
    ("+ grpc.aio", "import grpc.aio"),
    ("+ protobuf, generated code", "from enoexec.v1 import enoexec_pb2, enoexec_pb2_grpc"),
    ("+ sqlite3 (spool)", "import sqlite3"),
    ("+ requests (urllib3, idna, charset_normalizer)", "import requests"),
    ("+ docker-py", "import docker"),
    ("+ agent daemon modules", "import agent.cli, agent.service, enoexec.logsetup"),
)

COMMANDS = (
    ("--help", "from agent import cli; cli.parser().format_help()"),
    ("facts", "from agent import cli, render; from agent.engine import connect; cli.parser()"),
    ("facts --json", "from agent import cli, render; from agent.engine import connect; from agent.delivery import wire; "
                     "from enoexec import eventjson; cli.parser()"),
    ("run", "from agent import cli; import agent.service, enoexec.logsetup; cli.parser()"),
)

PROBE = """
import sys, time, json
t0 = time.perf_counter()
exec(compile(sys.argv[1], "<imports>", "exec"))
took = time.perf_counter() - t0
rss = int(open("/proc/self/statm").read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")
heavy = [m for m in ("asyncio", "grpc", "google.protobuf", "requests", "docker") if m in sys.modules]
print(json.dumps({"rss": rss, "s": took, "heavy": heavy, "modules": len(sys.modules)}))
"""

LAYERED = """
import os, sys, json
page = os.sysconf("SC_PAGE_SIZE")
out = []
for stmt in json.loads(sys.argv[1]):
    exec(stmt)
    out.append(int(open("/proc/self/statm").read().split()[1]) * page)
print(json.dumps(out))
"""


def probe(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: 2 runs per figure")
    ap.add_argument("--runs", type=int)
    args = ap.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    print(f"# agent imports, {machine()}, median of {runs}")

    series = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", LAYERED, json.dumps([stmt for _, stmt in LAYERS])],
                             capture_output=True, text=True, check=True)
        series.append(json.loads(res.stdout))
    rss = [statistics.median(s[i] for s in series) for i in range(len(LAYERS))]
    print(f"{'layer':<48} {'adds MiB':>8} {'total MiB':>9}")
    prev = 0.0
    for (name, _), total in zip(LAYERS, rss, strict=True):
        print(f"{name:<48} {(total - prev) / MiB:>8.1f} {total / MiB:>9.1f}")
        prev = total
    floor = rss[3]
    print(f"floor with grpcio loaded (interpreter + asyncio + grpc.aio + protobuf): {floor / MiB:.1f} MiB "
          f"(goal for the whole agent: <= {GOAL_RSS_MIB:.0f} MiB)")
    print(f"docker-py with requests adds {(rss[6] - rss[4]) / MiB:.1f} MiB")

    print(f"\n{'command':<14} {'RSS MiB':>8} {'import ms':>9} {'modules':>7}  loads")
    for name, code in COMMANDS:
        results = [probe(code) for _ in range(runs)]
        r = statistics.median(x["rss"] for x in results)
        s = statistics.median(x["s"] for x in results)
        print(f"{name:<14} {r / MiB:>8.1f} {s * 1000:>9.0f} {results[0]['modules']:>7}  {', '.join(results[0]['heavy']) or '-'}")


if __name__ == "__main__":
    main()
