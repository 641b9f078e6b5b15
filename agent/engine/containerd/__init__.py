"""The containerd engine: Kubernetes nodes (kubeadm, EKS, k3s) and plain containerd hosts.

Speaks containerd's gRPC API (stubs generated from its own .proto files, imported
from ``enoexec.third_party.containerd``) and yields the same ``Exit``, the same
container description and the same file-reading interface as the Docker engine,
so ``agent.diagnosis`` judges both alike.
"""
