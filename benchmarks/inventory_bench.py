"""The agent's image inventory over many images: CPU of a first pass and of a pass when nothing changed.

Starts a private dockerd (root and ``dockerd`` needed), loads ``--images`` distinct
scratch images in one ``docker load`` (a third arm64, foreign here; the rest
native), then runs :class:`agent.inventory.scan.Inventory` passes in-process and
reads this process's CPU time (user + system, all threads) around each. The
baseline in the same run is a pass that only lists the images (``GET
/images/json``), which every pass does. dockerd's own CPU (helper containers
created and removed) is not the agent's and is printed apart.

    python benchmarks/inventory_bench.py            # 300 images
    python benchmarks/inventory_bench.py --quick    # 30 images
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.engine.connect import gather_facts  # noqa: E402
from agent.engine.scratch_image import EM_AARCH64, EM_X86_64, _layer, elf  # noqa: E402
from agent.engine.scratch_image import File as ImageFile  # noqa: E402
from agent.inventory.scan import Inventory  # noqa: E402
from benchmarks import agent_harness  # noqa: E402


def many_images(n: int) -> bytes:
    """One docker-load archive with ``n`` distinct one-layer images."""
    out = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        for i in range(n):
            foreign = i % 3 == 0
            layer = _layer([ImageFile("/app", elf(EM_AARCH64 if foreign else EM_X86_64) + i.to_bytes(4, "little"))])
            config = json.dumps({
                "architecture": "arm64" if foreign else "amd64", "os": "linux",
                "config": {"Entrypoint": ["/app"], "Env": ["PATH=/usr/bin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
            }, sort_keys=True).encode()
            cfg = hashlib.sha256(config).hexdigest() + ".json"
            add(cfg, config)
            add(f"layer{i}.tar", layer)
            manifest.append({"Config": cfg, "RepoTags": [f"enoexec-bench/inv{i}:1"], "Layers": [f"layer{i}.tar"]})
        add("manifest.json", json.dumps(manifest).encode())
    return out.getvalue()


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    n = 30 if args.quick else args.images
    with agent_harness.engine() as eng:
        api = eng.client()
        started = time.perf_counter()
        for _ in api.load_image(many_images(n)):
            pass
        print(f"loaded {n} images in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        host = gather_facts(api, "bench")
        dockerd_pid = int(Path(eng.root, "docker.pid").read_text()) if getattr(eng, "root", None) and Path(eng.root, "docker.pid").exists() else 0
        rows = []

        c0, t0 = cpu(), time.perf_counter()
        api.images()
        rows.append(("list only (baseline)", cpu() - c0, time.perf_counter() - t0, 0, "-"))

        inventory = Inventory(api, lambda: host)
        d0 = pid_cpu(dockerd_pid) if dockerd_pid else 0.0
        c0, t0 = cpu(), time.perf_counter()
        inventory.scan()
        d1 = pid_cpu(dockerd_pid) if dockerd_pid else 0.0
        rows.append(("first pass", cpu() - c0, time.perf_counter() - t0, inventory.reads, len(inventory.unrunnable or ())))
        for label in ("nothing changed", "nothing changed again"):
            before = inventory.reads
            c0, t0 = cpu(), time.perf_counter()
            inventory.scan()
            rows.append((label, cpu() - c0, time.perf_counter() - t0, inventory.reads - before, len(inventory.unrunnable or ())))
        print(f"| pass over {n} images | agent CPU s | wall s | entrypoints read | unrunnable |")
        print("|---|---|---|---|---|")
        for label, c, w, reads, bad in rows:
            print(f"| {label} | {c:.3f} | {w:.2f} | {reads} | {bad} |")
        if dockerd_pid:
            print(f"dockerd CPU during the first pass (helper containers): {d1 - d0:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
