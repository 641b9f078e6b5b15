"""A containerd for integration tests, and a kubelet-like runner through ``ctr``.

As root, with ``containerd`` and ``ctr`` installed, starts a private containerd
from a four-line config of its own (``root``, ``state`` and the gRPC socket under
a temp dir; the machine's /etc/containerd and /run/containerd are never used)
and stops it afterwards, killing what it left running. Images are imported
from docker-archive tarballs (``ctr images import --all-platforms``), as they
cannot be pulled here.

Pods: the runner does what the kubelet asks of containerd for a crash-looping
pod, one new container per attempt, in namespace ``k8s.io``, with the
kubelet's ``io.kubernetes.*`` labels and the attempt's output written in the
CRI log format to ``<log root>/<ns>_<pod>_<uid>/<container>/<attempt>.log``. The
CRI plugin itself is not driven (that needs a kubelet or a CRI client and a pod
sandbox): ``tests/cri_logger.py``, a shim logging binary, writes the log file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60.0
PAUSE_IMAGE = "docker.io/enoexec-test/pause:1"
CRI_LOGGER = Path(__file__).resolve().parent / "cri_logger.py"


@dataclass
class Containerd:
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    made: list[tuple[str, str]] = field(default_factory=list)  # (namespace, container id)

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def data_root(self) -> Path:
        return self.root / "root"

    @property
    def log_root(self) -> Path:
        return self.root / "pods"

    def start(self) -> None:
        config = self.root / "config.toml"
        config.write_text(
            f'version = 2\nroot = "{self.data_root}"\nstate = "{self.root / "state"}"\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            # The CRI plugin (driven by tests/cri.py): a pause image built here, and no OOM score below
            # containerd's own (lowering it needs CAP_SYS_RESOURCE, which a test sandbox may lack).
            '[plugins."io.containerd.grpc.v1.cri"]\n'
            f'  sandbox_image = "{PAUSE_IMAGE}"\n  restrict_oom_score_adj = true\n'
        )
        log = open(self.root / "containerd.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited: {(self.root / 'containerd.log').read_text()[-2000:]}")
            if self.socket.exists() and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"containerd did not answer within {START_TIMEOUT}s")

    def kill9(self) -> None:
        """containerd dies at once (its shims, and the tasks, live on)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

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

    def ctr(self, *args: str, namespace: str = "k8s.io", check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(["ctr", "-a", str(self.socket), "-n", namespace, *args], capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {res.stderr.strip()[-500:]}")
        return res

    def load(self, archive: bytes, *, namespace: str = "k8s.io") -> None:
        path = self.root / f"image-{uuid.uuid4().hex[:8]}.tar"
        path.write_bytes(archive)
        self.ctr("images", "import", "--all-platforms", str(path), namespace=namespace)
        path.unlink()

    def run(self, image: str, container_id: str, *, namespace: str = "default", labels: dict[str, str] | None = None,
            log_uri: str = "", rm: bool = False, detach: bool = False) -> int:
        """``ctr run`` (its exit status; with ``detach`` the task stays, stopped, after it exits)."""
        args = ["run", "--fifo-dir", str(self.root / "fifo")]
        for k, v in (labels or {}).items():
            args += ["--label", f"{k}={v}"]
        if log_uri:
            args += ["--log-uri", log_uri]
        if rm:
            args.append("--rm")
        if detach:
            args.append("-d")
        if not rm:
            self.made.append((namespace, container_id))
        return self.ctr(*args, image, container_id, namespace=namespace, check=False).returncode

    def run_attempt(self, image: str, pod: Pod, attempt: int, *, detach: bool = False) -> str:
        """One attempt of a pod's container, as the kubelet has containerd run it; returns the container id."""
        cid = uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits, like the CRI plugin's ids
        labels = {
            "io.kubernetes.pod.name": pod.name, "io.kubernetes.pod.namespace": pod.namespace,
            "io.kubernetes.pod.uid": pod.uid, "io.kubernetes.container.name": pod.container,
            "io.kubernetes.container.restartCount": str(attempt), "io.cri-containerd.kind": "container",
        }
        uri = f"binary://{CRI_LOGGER}?path={self.log_path(pod, attempt)}"
        self.run(image, cid, namespace="k8s.io", labels=labels, log_uri=uri, detach=detach)
        return cid

    def log_path(self, pod: Pod, attempt: int) -> Path:
        return self.log_root / f"{pod.namespace}_{pod.name}_{pod.uid}" / pod.container / f"{attempt}.log"

    def cleanup(self) -> None:
        for ns, cid in self.made:
            self.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=ns, check=False)
            self.ctr("tasks", "delete", "-f", cid, namespace=ns, check=False)
            self.ctr("containers", "delete", cid, namespace=ns, check=False)
        self.made.clear()


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str = "shop"
    container: str = "app"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


def available() -> str:
    """Why a private containerd cannot run here, or ""."""
    if os.geteuid() != 0:
        return "containerd tests need root"
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install containerd)"
    return ""


@contextlib.contextmanager
def containerd() -> Iterator[Containerd]:
    root = Path(tempfile.mkdtemp(prefix="enoexec-ctrd-", dir="/tmp"))
    c = Containerd(root)
    try:
        c.start()
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.cleanup()
        c.stop()
        _kill_shims(root)
        subprocess.run(["umount", "-R", str(root / "root")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _kill_shims(root: Path) -> None:
    """Stop the shims this containerd started (found by their -address argument), none other."""
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(root).encode() in b" ".join(argv):
            with contextlib.suppress(OSError):
                os.kill(int(pid_dir.name), signal.SIGKILL)


def names(pods: Sequence[Pod]) -> list[str]:
    return [p.name for p in pods]
