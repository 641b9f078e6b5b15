"""A real agent whose --state-dir fills up (a real 2 MiB tmpfs), with a real Docker
Engine and collector: it says so once, keeps counting, and delivers every exit
once space is back. It wrote 655 lines (96 'collector stream failed', 12 'exit not
handled ... left for reconciliation' per container, each with a traceback)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import images, procs, require
from tests.images import File

K = 3


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        require.missing(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


def records(ag: procs.Proc) -> list[dict[str, Any]]:
    out = []
    for line in ag.output().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def test_a_full_state_dir_is_said_once_and_every_exit_arrives_once_space_is_back(dock, collector, agent, tmp_path: Path) -> None:
    image = dock.load("arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    col = collector()
    with small_tmpfs(tmp_path / "state") as state:
        ag = agent(col.grpc, "full-state", state)
        procs.wait_for(lambda: "collector connected" in ag.output(), timeout=30, what="agent connected")
        fill(state / "filler")
        for _ in range(K):
            dock.run(image)
        procs.wait_for(lambda: any(r["msg"].startswith("exits not kept, left for reconciliation: ") for r in records(ag)),
                       timeout=60, what="the full state dir said")
        # Reconciliation passes (every 5 s here) meet the same exits and the same error meanwhile.
        (state / "filler").unlink()

        def recovered() -> list[dict[str, Any]]:
            return [r for r in records(ag) if r["msg"] == "exits not kept, left for reconciliation: exits are kept again"]

        procs.wait_for(recovered, timeout=60, what="exits kept again once space is back")
        procs.wait_for(lambda: procs.total(procs.metrics(col.http), "enoexec_exits_total") == K,  # type: ignore[attr-defined]
                       timeout=60, what=f"{K} exits delivered")
        said = [r for r in records(ag) if r["level"] in ("warning", "error") and not r["msg"].startswith("TLS disabled")]
        assert [r["msg"].split(":")[0] for r in said] == ["exits not kept, left for reconciliation"], said
        assert recovered()[0]["after_failures"] >= 1  # every exit met it; how many of them before space came back varies
        assert "Traceback" not in ag.output() and "exit not handled" not in ag.output(), ag.output()[-3000:]
        ag.stop()
