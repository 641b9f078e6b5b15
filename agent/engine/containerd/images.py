"""Image facts from containerd's image and content stores: declared platform, digests, offered platforms.

containerd keeps an image as a name pointing at a descriptor: a manifest, or an
index (manifest list) of per-platform manifests. The platform an image declares
is its config's ``os/architecture/variant``; for an index, the config of the
manifest containerd runs here (the one matching the host's platform, else the
only one). The platforms it *offers* need no registry: the index itself lists
them, and containerd keeps the index even when it pulled one platform's layers.
A single-platform image offers only its own. Unknown stays unknown (``None``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agent.model import ImageFacts
from enoexec import platforms

logger = logging.getLogger(__name__)

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def platform_of(doc: dict[str, Any]) -> str:
    """``os/arch[/variant]`` of an image config or an index entry's ``platform``."""
    return platforms.normalize(doc.get("os", "linux") or "linux", doc.get("architecture", ""), doc.get("variant", ""))


def choose_manifest(manifests: list[dict[str, Any]], host_platform: str) -> dict[str, Any] | None:
    """The index entry containerd picks on this host: the host's platform, else the only real one."""
    real = [m for m in manifests if (m.get("platform") or {}).get("architecture") not in (None, "", "unknown")]
    for m in real:
        if platform_of(m.get("platform") or {}) == host_platform:
            return m
    return real[0] if len(real) == 1 else None


class ContainerdImages:
    """Looks images up in one containerd; remembers what it read per image target digest."""

    def __init__(self, client: Any, host_platform: Callable[[], str], namespace_of: Callable[[str], str],
                 *, cache_size: int = 256) -> None:
        self._client = client
        self._host_platform = host_platform
        self._namespace_of = namespace_of  # image ref or id -> namespace to ask
        self._cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def resolve(self, namespace: str, ref: str) -> dict[str, Any] | None:
        """``{"Id", "Os", "Architecture", "Variant", "RepoDigests", "Platforms", "ChainLayers"}`` for ``ref``."""
        image = self._client.image(namespace, ref)
        if image is None:
            return None
        key = (namespace, image.target.digest)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        attrs = self._read(namespace, ref, image.target.media_type, image.target.digest, image.target.size)
        if attrs is not None:
            with self._lock:
                self._cache[key] = attrs
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return attrs

    def _read(self, namespace: str, ref: str, media_type: str, digest: str, size: int) -> dict[str, Any] | None:
        offered: tuple[str, ...] | None = None
        manifest_digest = digest
        doc = self._client.blob_json(namespace, digest, size)
        if doc is None:
            return None
        if media_type in INDEX_TYPES or "manifests" in doc:
            entries = [m for m in doc.get("manifests") or () if isinstance(m, dict)]
            offered = tuple(sorted({platform_of(m.get("platform") or {}) for m in entries
                                    if (m.get("platform") or {}).get("architecture") not in (None, "", "unknown")}))
            chosen = choose_manifest(entries, self._host_platform())
            if chosen is None:
                return {"Id": "", "RepoDigests": [f"{ref.split('@')[0].rsplit(':', 1)[0]}@{digest}"], "Platforms": offered}
            manifest_digest = chosen.get("digest", "")
            doc = self._client.blob_json(namespace, manifest_digest, int(chosen.get("size") or 0))
            if doc is None:
                return None
        config_desc = doc.get("config") or {}
        config = self._client.blob_json(namespace, config_desc.get("digest", ""), int(config_desc.get("size") or 0)) or {}
        declared = platform_of(config) if config.get("architecture") else ""
        repo = ref.split("@")[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        return {
            "Id": config_desc.get("digest", ""),
            "Os": config.get("os", ""),
            "Architecture": config.get("architecture", ""),
            "Variant": config.get("variant", ""),
            "RepoDigests": [f"{repo}@{digest}"],
            "Platforms": offered if offered is not None else ((declared,) if declared else None),
            "Declared": declared,
            # The image's default process, for an exit whose container is gone unseen.
            "Config": {k: (config.get("config") or {}).get(k) for k in ("Entrypoint", "Cmd", "Env", "WorkingDir")},
        }

    # -- what diagnosis asks (the Docker engine's ImageInspector has the same methods) --
    def inspect(self, image: str) -> dict[str, Any] | None:
        return self.resolve(self._namespace_of(image), image)

    def prefetch(self, ref: str) -> None:
        """Nothing to fetch: the offered platforms are read with the image."""

    def available_platforms(self, ref: str, wait: float | None = None) -> tuple[str, ...] | None:
        attrs = self.inspect(ref) if ref and not ref.startswith("sha256:") else None
        platforms_ = (attrs or {}).get("Platforms")
        return tuple(platforms_) if platforms_ else None

    @property
    def pending(self) -> int:
        return 0

    def facts(self, ref: str, image_id: str = "", *, lookup_registry: bool = True) -> ImageFacts:
        attrs = self.inspect(ref) or {}
        return ImageFacts(
            ref=ref,
            id=attrs.get("Id") or image_id,
            declared_platform=attrs.get("Declared", ""),
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
            available_platforms=self.available_platforms(ref) if lookup_registry else None,
        )
