"""Drive containerd's own CRI plugin as the kubelet does, for tests: pod sandboxes and
container attempts through the CRI gRPC API (runtime.v1, stubs from the k8s.io/cri-api
.proto vendored with containerd's; see protos/third_party/containerd/vendor.py).

The sandbox shares the host's network namespace (no CNI here) and runs a pause image
built from scratch: a static x86-64 program calling pause(2) in a loop. The CRI plugin
then writes each attempt's log itself, deletes the task at its exit and keeps the exit
in its own status record, as on a real node.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from enoexec.third_party.containerd.criapi.runtime.v1 import api_pb2 as cri
from enoexec.third_party.containerd.criapi.runtime.v1 import api_pb2_grpc as cri_grpc
from tests import images
from tests.containerd import PAUSE_IMAGE


def pause_program() -> bytes:
    """A static x86-64 ELF: for (;;) pause();  (no libc)."""
    code = bytes.fromhex("b822000000") + bytes.fromhex("0f05") + bytes.fromhex("ebf7")  # mov eax,34; syscall; jmp -9
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    entry = 0x400000 + 64 + 56
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, images.EM_X86_64, 1, entry, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    size = 64 + 56 + len(code)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    return hdr + ph + code


def pause_archive() -> bytes:
    return images.archive(PAUSE_IMAGE.removeprefix("docker.io/"), [images.File("/pause", pause_program())],
                          architecture="amd64", entrypoint=["/pause"])


@dataclass
class Sandbox:
    id: str
    config: cri.PodSandboxConfig
    name: str
    namespace: str
    uid: str
    containers: list[str] = field(default_factory=list)


class Kubelet:
    """What the kubelet asks of the CRI for a crash-looping pod: one new container per attempt."""

    def __init__(self, socket: Path, log_root: Path) -> None:
        self._channel = grpc.insecure_channel(f"unix:{socket}")
        self.runtime = cri_grpc.RuntimeServiceStub(self._channel)
        self._log_root = log_root
        self.sandboxes: list[Sandbox] = []

    def close(self) -> None:
        for sb in self.sandboxes:
            for cid in sb.containers:
                try:
                    self.runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=30)
                except grpc.RpcError:
                    pass
            try:
                self.runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sb.id), timeout=30)
                self.runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sb.id), timeout=30)
            except grpc.RpcError:
                pass
        self._channel.close()

    def pod(self, name: str, namespace: str = "shop") -> Sandbox:
        uid = str(uuid.uuid4())
        log_dir = self._log_root / f"{namespace}_{name}_{uid}"
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
            log_directory=str(log_dir),
            labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid},
            linux=cri.LinuxPodSandboxConfig(security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=cri.NamespaceOption(network=cri.NODE, pid=cri.CONTAINER, ipc=cri.POD))),
        )
        res = self.runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60)
        sb = Sandbox(res.pod_sandbox_id, config, name, namespace, uid)
        self.sandboxes.append(sb)
        return sb

    def attempt(self, sb: Sandbox, image: str, attempt: int, container: str = "app") -> str:
        """Create and start attempt ``attempt`` of the pod's container; its id."""
        labels = {"io.kubernetes.pod.name": sb.name, "io.kubernetes.pod.namespace": sb.namespace,
                  "io.kubernetes.pod.uid": sb.uid, "io.kubernetes.container.name": container}
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=container, attempt=attempt),
            image=cri.ImageSpec(image=image),
            log_path=f"{container}/{attempt}.log",
            labels=labels,
            annotations={"io.kubernetes.container.restartCount": str(attempt)},
            linux=cri.LinuxContainerConfig(security_context=cri.LinuxContainerSecurityContext(
                namespace_options=cri.NamespaceOption(network=cri.NODE, pid=cri.CONTAINER, ipc=cri.POD))),
        )
        cid = self.runtime.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=sb.id, config=config, sandbox_config=sb.config), timeout=60).container_id
        sb.containers.append(cid)
        try:
            self.runtime.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=60)
        except grpc.RpcError:
            pass  # runc may report the failed exec at start; the exit is what counts
        return cid

    def status(self, cid: str) -> cri.ContainerStatus:
        return self.runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=30).status
