"""deploy/kubernetes/ validates against the Kubernetes OpenAPI schema (kubernetes-validate,
offline, strict: unknown fields are errors) and keeps what the agent needs (issue #18 item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DIR = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSIONS = ("1.28.0", "1.33.0")  # EKS and k3s versions in service


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), _docs(), ids=[n for n, _ in _docs()])
def test_every_manifest_validates_strictly(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def _find(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_agent_daemonset_reads_the_node_read_only_and_runs_everywhere() -> None:
    ds = _find("DaemonSet", "enoexec-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is False and pod["hostNetwork"] is False
    assert {"operator": "Exists"} in pod["tolerations"]
    (agent,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    for path in ("/run/containerd/containerd.sock", "/var/lib/containerd", "/var/log/pods", "/host/proc"):
        assert mounts[path].get("readOnly") is True, path
    writable = {p for p, m in mounts.items() if not m.get("readOnly")}
    assert writable == {"/var/lib/enoexec-agent", "/tmp"}
    assert "--runtime=containerd" in agent["args"]
    assert agent["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert agent["resources"]["requests"]["memory"] and agent["resources"]["limits"]["memory"]


def test_the_collector_has_probes_a_volume_and_scrape_ready_labels() -> None:
    dep = _find("Deployment", "enoexec-collector")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    svc = _find("Service", "enoexec-collector")
    assert {p["name"] for p in svc["spec"]["ports"]} == {"grpc", "http"}
    assert svc["metadata"]["labels"]["app.kubernetes.io/name"] == "enoexec-collector"
    assert _find("PersistentVolumeClaim", "enoexec-collector-data")
