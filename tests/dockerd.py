"""A Docker Engine for integration tests.

Uses the daemon at ``DOCKER_HOST`` if one answers; otherwise, as root with
``dockerd`` installed, starts a private one (its own data root, exec root,
pidfile and unix socket under a temp dir, no bridge, no iptables) and stops
it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

START_TIMEOUT = 60.0


@dataclass
class Engine:
    url: str
    private: bool
    root: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="auto", timeout=60)

    def restart(self) -> None:
        """Stop and start the private daemon (same data root)."""
        assert self.private and self.root is not None
        self.stop()
        self.start()

    def start(self) -> None:
        assert self.root is not None
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "docker.pid"),
                "--host", self.url,
                "--bridge=none",
                "--iptables=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {(self.root / 'dockerd.log').read_text()[-2000:]}")
            if answers(self.url):
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def answers(url: str) -> bool:
    """True if a Docker Engine answers a ping at ``url``."""
    c = docker.APIClient(base_url=url, version="1.24", timeout=5)
    try:
        return bool(c.ping())
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False
    finally:
        c.close()


@contextlib.contextmanager
def engine() -> Iterator[Engine | None]:
    """The engine to test against, or None (tests skip) when there is none."""
    url = os.environ.get("DOCKER_HOST")
    if url and answers(url):
        yield Engine(url, private=False)
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="enoexec-dockerd-", dir="/tmp"))
    eng = Engine(f"unix://{root}/docker.sock", private=True, root=root)
    try:
        eng.start()
        yield eng
    finally:
        eng.stop()
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


class CountingClient:
    """The real Docker client, counting ``inspect_container`` calls (every call goes to the engine)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.inspects = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def inspect_container(self, cid: str) -> Any:
        self.inspects += 1
        return self.inner.inspect_container(cid)
