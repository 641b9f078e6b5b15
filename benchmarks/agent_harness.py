"""What the agent benchmarks share: a private Docker Engine, crashing containers,
a real collector and agent as processes, and per-process readings from /proc.

Nothing here is timed; the scripts time what they measure.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import dockerd, images, procs  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MiB = 2**20


@dataclass(frozen=True)
class Reading:
    cpu_seconds: float
    rss: int
    pss: int


def read_proc(pid: int) -> Reading:
    """CPU time (user + system), VmRSS and PSS of one process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1]) * 1024
    return Reading(cpu, rss, pss)


def machine() -> str:
    cpus = os.cpu_count()
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), os.uname().machine)
    return f"{os.uname().machine}, {cpus} cpus ({model}), Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}"


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextmanager
def engine() -> Iterator[dockerd.Engine]:
    with dockerd.engine() as eng:
        if eng is None:
            raise SystemExit("no Docker Engine: run as root with dockerd installed, or set DOCKER_HOST")
        yield eng


def load_arm64(api: Any, ref: str) -> str:
    """``docker load`` an arm64 scratch image under ``ref``: it dies of exec format error here."""
    data = images.archive(ref, [images.File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    for _ in api.load_image(io.BytesIO(data)):
        pass
    return ref


def run_dead(api: Any, ref: str, label: str) -> str:
    c = api.create_container(ref, labels={"io.enoexec.bench": label},
                             host_config=api.create_host_config(network_mode="none"))
    api.start(c["Id"])
    api.wait(c["Id"], timeout=60)
    return c["Id"]


def run_many(api: Any, ref: str, n: int, label: str, parallel: int = 4) -> list[str]:
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda _: run_dead(api, ref, label), range(n)))


def remove_labelled(api: Any, label: str) -> None:
    for c in api.containers(all=True, filters={"label": f"io.enoexec.bench={label}"}):
        api.remove_container(c["Id"], force=True)


def new_label() -> str:
    return "bench-" + uuid.uuid4().hex[:8]


@contextmanager
def collector(tmp: Path) -> Iterator[procs.Proc]:
    g, h = procs.free_port(), procs.free_port()
    p = procs.Proc(procs.collector_argv(str(tmp / "collector.db"), g, h), tmp / "collector.log").start()
    p.grpc, p.http = g, h  # type: ignore[attr-defined]
    try:
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz"), timeout=30, what="collector")
        yield p
    finally:
        p.stop()


@contextmanager
def agent(tmp: Path, grpc_port: int, docker_url: str, host_id: str, *extra: str) -> Iterator[procs.Proc]:
    """The real daemon with its defaults (heartbeat 15 s, reconcile 60 s) unless ``extra`` says otherwise."""
    argv = [sys.executable, "-m", "agent.cli", "run", "--insecure", "--collector", f"127.0.0.1:{grpc_port}",
            "--docker-host", docker_url, "--state-dir", str(tmp / f"state-{host_id}"), "--host-id", host_id, *extra]
    p = procs.Proc(argv, tmp / f"agent-{host_id}.log").start()
    try:
        procs.wait_for(lambda: "docker event stream connected" in p.output() or not p.alive(), timeout=60, what="agent")
        if not p.alive():
            raise SystemExit(f"the agent exited:\n{p.output()[-3000:]}")
        yield p
    finally:
        p.stop()


@contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield p
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
