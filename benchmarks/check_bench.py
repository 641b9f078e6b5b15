"""Bytes and seconds per ``check`` from a loopback registry, cold and cached, against downloading the image.

Starts Debian's ``docker-registry`` on 127.0.0.1, pushes images built here, and
reads each with :func:`collector.check.imagecheck.read_registry` in-process:

- ``top``: a 1 KiB top layer holding ``/app`` over a ``--base-mb`` MiB base of random bytes;
- ``path``: the same, entrypoint ``app`` found through PATH in the top layer;
- ``index``: a two-platform index (the arm64 manifest mislabeled), 1 KiB layers;
- ``base-end``: ``/app`` at the end of the large base layer (the top layer lacks it),
  so that layer has to be read to its end.

Baseline in the same run: fetching every layer blob of the image whole (what a pull
downloads before anything can be looked at). Cached: the same read again with the
manifest-digest cache (median of 20).

    python benchmarks/check_bench.py [--quick] [--base-mb N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.check import imagecheck  # noqa: E402
from collector.check.entrypoint_read import EntrypointCache  # noqa: E402
from collector.check.registry_policy import parse  # noqa: E402
from tests.images import EM_AARCH64, EM_X86_64, elf  # noqa: E402
from tests.registry import local_registry, push_layer_index, push_layers, tar_layer  # noqa: E402

AMD, ARM = elf(EM_X86_64), elf(EM_AARCH64)


def download_whole(registry: str, repo: str, tag: str) -> tuple[int, float]:
    """Baseline: every layer blob of the tag's manifest (or of its index's first manifest), read whole."""
    started = time.perf_counter()
    accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"

    def get(path: str) -> bytes:
        req = urllib.request.Request(f"http://{registry}/v2/{repo}/{path}", headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=120) as res:
            return res.read()

    doc = json.loads(get(f"manifests/{tag}"))
    manifests = [m["digest"] for m in doc.get("manifests", [])] or [None]
    total = 0
    for digest in manifests:
        manifest = json.loads(get(f"manifests/{digest}")) if digest else doc
        for layer in manifest["layers"]:
            total += len(get(f"blobs/{layer['digest']}"))
    return total, time.perf_counter() - started


async def measure(registry: str, ref: str) -> tuple[int, float, float, tuple[str, ...]]:
    cache = EntrypointCache()
    allowed = parse(registry)
    started = time.perf_counter()
    read = await imagecheck.read_registry(ref, allowed=allowed, cache=cache)
    cold = time.perf_counter() - started
    times = []
    for _ in range(20):
        started = time.perf_counter()
        again = await imagecheck.read_registry(ref, allowed=allowed, cache=cache)
        times.append(time.perf_counter() - started)
        assert again.bytes_read == 0
    whole = tuple(w for p in read.platforms for w in p.layers_read_whole)
    return read.bytes_read, cold, statistics.median(times), whole


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 20 MiB base")
    ap.add_argument("--base-mb", type=int, default=200)
    args = ap.parse_args()
    base_mb = 20 if args.quick else args.base_mb
    with local_registry() as registry:
        print(f"building and pushing a {base_mb} MiB base layer ...", file=sys.stderr)
        noise = os.urandom(base_mb * 1024 * 1024)
        base = tar_layer([("usr/share/noise.bin", noise)], level=1)
        base_end = tar_layer([("usr/share/noise.bin", noise), ("app", AMD)], level=1)
        top = tar_layer([("app", AMD + os.urandom(1024 - len(AMD)))])
        path_top = tar_layer([("usr/local/bin/app", AMD + os.urandom(1024 - len(AMD)))])
        push_layers(registry, "bench/top", "1", "linux/amd64", [base, top], ["/app"])
        push_layers(registry, "bench/path", "1", "linux/amd64", [base, path_top], ["app"])
        push_layers(registry, "bench/base-end", "1", "linux/amd64", [base_end, tar_layer([("etc/motd", b"hi\n")])], ["/app"])
        push_layer_index(registry, "bench/index", "1", [("linux/amd64", [tar_layer([("app", AMD)])]),
                                                        ("linux/arm64", [tar_layer([("app", AMD)])])], ["/app"])
        print("| image | download whole (baseline) | check cold: bytes read | cold s | cached ms | layers read whole |")
        print("|---|---|---|---|---|---|")
        for name in ("top", "path", "index", "base-end"):
            whole_bytes, whole_s = download_whole(registry, f"bench/{name}", "1")
            bytes_read, cold, cached, whole = asyncio.run(measure(registry, f"{registry}/bench/{name}:1"))
            big = [w for w in whole if int(w.rsplit("(", 1)[1].split()[0]) > 1 << 20]
            print(f"| {name} | {whole_bytes:,} B in {whole_s:.2f} s | {bytes_read:,} B | {cold:.3f} | {cached * 1000:.2f} | "
                  f"{len(whole)} ({len(big)} over 1 MiB) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
