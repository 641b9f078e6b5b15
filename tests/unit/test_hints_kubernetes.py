"""Hints speak Kubernetes for an exit that came from a pod (issue #18 item 4)."""

from __future__ import annotations

from enoexec import hints
from enoexec.v1 import enoexec_pb2 as pb


def _event(cause: str, *, pod: bool, kind: str = "elf") -> pb.Event:
    ev = pb.Event(cause=cause)
    ev.host.platform = "linux/arm64"
    ev.image.ref = "registry.corp/shop/web:1.4"
    ev.image.declared_platform = ev.binary.platform = "linux/amd64"
    ev.image.available_platforms.append("linux/amd64")
    ev.image.available_platforms_known = True
    ev.binary.kind, ev.binary.path = kind, "/app"
    ev.container.id, ev.container.name = "c" * 64, "shop/web-7d9f/app"
    if pod:
        ev.container.kubernetes.CopyFrom(pb.KubernetesPod(pod="web-7d9f", namespace="shop", container="app"))
    return ev


def test_a_pods_platform_mismatch_names_node_selection_on_kubernetes_io_arch() -> None:
    h = hints.hint_of(_event("arch_mismatch", pod=True))
    assert h.id == "rebuild_multiplatform"  # same id (the metric label) as on Docker
    assert "nodeSelector" in h.text and "nodeAffinity" in h.text and "kubernetes.io/arch=arm64" in h.text
    assert "shop/web-7d9f" in h.title
    assert any(c.startswith("kubectl -n shop get pod web-7d9f") for c in h.commands)
    assert any('"kubernetes.io/arch":"amd64"' in c for c in h.commands)
    assert not any(c.startswith("docker run") for c in h.commands)


def test_without_a_pod_or_for_a_file_problem_the_hint_is_unchanged() -> None:
    plain = hints.hint_of(_event("arch_mismatch", pod=False))
    assert "kubectl" not in " ".join(plain.commands)
    shebang = hints.hint_of(_event("missing_shebang", pod=True, kind="text"))
    assert shebang == hints.hint_of(_event("missing_shebang", pod=False, kind="text"))
