"""Hints that speak Kubernetes, for an exit that came from a pod. Pure.

On a node pool of mixed architectures, the fix for a platform mismatch is
usually the scheduling (keep the pod on nodes whose ``kubernetes.io/arch`` the
image has) or the image (publish the missing platform in its manifest list);
``docker run`` commands do not apply on a containerd node. Hints about the file
itself (no shebang, a BOM, an empty file...) are the same everywhere.
"""

from __future__ import annotations

import shlex

from enoexec import platforms
from enoexec.hint_model import Hint
from enoexec.v1 import enoexec_pb2 as pb

PLATFORM_HINTS = frozenset({"pull_platform", "rebuild_multiplatform", "rebuild_64bit", "fix_image_platform"})


def for_pod(hint: Hint, event: pb.Event) -> Hint:
    """``hint`` adapted to the pod the exit came from; unchanged for hints about the file's content."""
    k = event.container.kubernetes
    if hint.id not in PLATFORM_HINTS or not k.pod:
        return hint
    ns, pod = shlex.quote(k.namespace or "default"), shlex.quote(k.pod)
    image = shlex.quote(event.image.ref or "IMAGE")
    arch = platforms.arch_of(event.host.platform) or "amd64"
    offered = sorted({platforms.arch_of(p) for p in event.image.available_platforms if platforms.arch_of(p)})
    where = (f"the image's manifest list offers {', '.join(offered)}" if offered
             else "check which platforms the image's manifest list offers")
    text = (
        f"{hint.text} On Kubernetes: pod {k.namespace}/{k.pod} was scheduled on a {event.host.platform} node "
        f"(kubernetes.io/arch={arch}), and {where}. Either constrain the workload to nodes whose "
        f"kubernetes.io/arch the image has (nodeSelector, or nodeAffinity for several), or publish "
        f"{event.host.platform} in the image's manifest list so every node can run it."
    )
    selector = shlex.quote('{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/arch":"%s"}}}}}'
                           % (offered[0] if offered else "ARCH"))
    commands = (
        f"kubectl -n {ns} get pod {pod} -o jsonpath='{{.spec.nodeName}} {{.metadata.ownerReferences[*].kind}}/"
        f"{{.metadata.ownerReferences[*].name}}'",
        "kubectl get nodes -L kubernetes.io/arch",
        f"docker buildx imagetools inspect {image}",
        f"kubectl -n {ns} patch deployment DEPLOYMENT --type merge -p {selector}",
        *(c for c in hint.commands if c.startswith("docker buildx build")),
    )
    return Hint(id=hint.id, title=f"{hint.title} (pod {k.namespace}/{k.pod})", text=text, commands=commands)
