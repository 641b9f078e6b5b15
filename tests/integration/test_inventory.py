"""Agents report images on their host that cannot run there, before any container starts.

Real parts: the private dockerd (images loaded from scratch archives, as the
quick start's demo does), a real agent and a real collector over gRPC.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import elfs, images, procs
from tests.images import File

AMD64_EXIT = bytes.fromhex(
    "7f454c4602010100000000000000000002003e0001000000780040000000000040000000000000000000000000000000"
    "0000000040003800010000000000000001000000050000000000000000000000000040000000000000004000000000"
    "00840000000000000084000000000000000010000000000000b83c000000bf010000000f05"
)


def findings(col: procs.Proc, image: str) -> list[dict[str, Any]]:
    doc = procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/images")  # type: ignore[attr-defined]
    return [i for i in doc["images"] if i["image"] == image]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], capture_output=True, text=True, timeout=120)


def test_agent_reports_unrunnable_images_before_they_run_and_forgets_removed_ones(dock, collector, agent, tmp_path: Path) -> None:
    # The quick start's demo image: arm64, loaded, never run.
    demo = dock.load("demo-arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    native = dock.load("native", [File("/app", AMD64_EXIT)], architecture="amd64", entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc)

    procs.wait_for(lambda: findings(col, demo), timeout=60, what="the demo image in /api/v1/images")
    (found,) = findings(col, demo)
    assert found["cause"] == "arch_mismatch" and found["host_platform"] == "linux/amd64", found
    assert found["binary_platform"] == "linux/arm64" and found["hosts"] == ["test-host"] and found["fix"], found
    assert findings(col, native) == []
    assert dock.containers == []  # nothing of either image ever ran
    text = procs.metrics(col.http)  # type: ignore[attr-defined]
    assert procs.total(text, "enoexec_unrunnable_images", image=demo, cause="arch_mismatch", host_platform="linux/amd64") == 1.0

    # check, from a `docker save` of it, against the hosts the collector knows: fails here, before it ran.
    archive = tmp_path / "demo.tar"
    with open(archive, "wb") as f:
        for chunk in dock.api.get_image(demo):
            f.write(chunk)
    base = f"http://127.0.0.1:{col.http}"  # type: ignore[attr-defined]
    out = cli("check", str(archive), "--url", base)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL test-host" in out.stdout and "binary is linux/arm64" in out.stdout, out.stdout

    # The quick start's complaint: run it, and a label saying it runs here is overridden by that exit.
    dock.run(demo)
    procs.wait_for(lambda: procs.get_json(f"{base}/api/v1/events?image={demo}")["events"], timeout=60, what="the demo's exit stored")
    out = cli("check", demo, "--platform", "linux/amd64", "--platform", "linux/arm64", "--url", base)
    assert out.returncode == 1 and "FAIL test-host" in out.stdout and "seen failing on 1 host(s)" in out.stdout, out.stdout

    # A script whose interpreter the image lacks, loaded while the agent runs: the load event triggers a pass.
    script = dock.load("script", [File("/entry.sh", b"#!/bin/bash\necho hi\n")], architecture="amd64", entrypoint=["/entry.sh"])
    procs.wait_for(lambda: findings(col, script), timeout=60, what="the loaded script image in /api/v1/images")
    assert findings(col, script)[0]["cause"] == "missing_interpreter"
    # Look-alikes check names, and the inventory named wrongly or not at all: a #! line with
    # Windows line endings (was missing_interpreter "/bin/sh\r"), a musl binary without its loader (was unreported).
    crlf = dock.load("crlf", [File("/bin/sh", AMD64_EXIT), File("/entry.sh", b"#!/bin/sh\r\necho hi\r\n")],
                     architecture="amd64", entrypoint=["/entry.sh"])
    musl = dock.load("musl", [File("/app", elfs.program(0, interp="/lib/ld-musl-x86_64.so.1"))], architecture="amd64", entrypoint=["/app"])
    procs.wait_for(lambda: findings(col, crlf) and findings(col, musl), timeout=60, what="the look-alike images in /api/v1/images")
    assert (findings(col, crlf)[0]["cause"], findings(col, crlf)[0]["hint"]) == ("crlf_shebang", "strip_crlf"), findings(col, crlf)
    assert findings(col, musl)[0]["cause"] == "missing_loader", findings(col, musl)

    # The look-alikes, judged the way a dead container's are (issue 17), before anything ran:
    # a #! line saved with Windows line endings, a glibc program in a musl image.
    crlf = dock.load("crlf", [File("/entry.sh", b"#!/bin/sh\r\necho hi\r\n"), File("/bin/sh", elfs.program())],
                     architecture="amd64", entrypoint=["/entry.sh"])
    glibc = dock.load("glibc-on-musl", [File("/app", elfs.program(interp="/lib64/ld-linux-x86-64.so.2")),
                                        File("/lib/ld-musl-x86_64.so.1", elfs.program())],
                      architecture="amd64", entrypoint=["/app"])
    procs.wait_for(lambda: findings(col, crlf) and findings(col, glibc), timeout=60, what="the look-alike images in /api/v1/images")
    (found,) = findings(col, crlf)
    assert (found["cause"], found["hint"], found["path"]) == ("crlf_shebang", "strip_crlf", "/entry.sh"), found
    (found,) = findings(col, glibc)
    assert (found["cause"], found["hint"]) == ("missing_loader", "add_loader"), found
    assert "glibc" in found["explanation"] and "musl's loader instead" in found["explanation"], found
    text = procs.metrics(col.http)  # type: ignore[attr-defined]
    assert procs.total(text, "enoexec_unrunnable_images", image=crlf, cause="crlf_shebang") == 1.0
    assert len(dock.containers) == 1  # the demo's run above: neither of these ever ran

    # Removed from the host: it leaves the report, and the gauge.
    dock.api.remove_image(demo, force=True)
    procs.wait_for(lambda: not findings(col, demo), timeout=60, what="the removed image to leave /api/v1/images")
    text = procs.metrics(col.http)  # type: ignore[attr-defined]
    assert procs.total(text, "enoexec_unrunnable_images", image=demo) == 0.0
    assert "Traceback" not in ag.output(), ag.output()[-3000:]
