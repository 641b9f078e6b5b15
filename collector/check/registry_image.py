"""An image in a registry, platform by platform: manifests, configs and layer openers.

Everything goes through :class:`collector.check.registry.Client`, so the
allow-list, the token rules and the redirect rules of ``--check-registries``
hold for every manifest, config and blob byte. Layers are opened lazily and
streamed: only what :mod:`collector.check.rootfs` asks for is fetched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Collection
from typing import Any

import aiohttp

from collector.check.entrypoint_read import PlatformImage
from collector.check.registry import (
    _ACCEPT,
    DOCKER_LIST,
    OCI_INDEX,
    Client,
    ImageRef,
    endpoint,
    parse_reference,
)
from collector.check.registry_policy import RegistryPolicy
from collector.errors import RegistryError
from enoexec import platforms


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RegistryError(f"the registry sent invalid JSON for {what}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"the registry sent JSON that is not an object for {what}")
    return doc


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class RegistryImage:
    """The platforms of one image reference, read through one client (one token)."""

    def __init__(self, ref: str, *, allowed: RegistryPolicy, session: aiohttp.ClientSession,
                 insecure_registries: Collection[str] = ("localhost", "127.0.0.1")) -> None:
        self.image: ImageRef = parse_reference(ref)
        base, _ = endpoint(self.image, allowed, insecure_registries)
        self._client = Client(session, self.image, base, allowed)
        self.digest = ""  # the reference's own manifest (or index) digest, once read
        self.index = False  # whether that is a multi-platform index

    async def platforms(self) -> list[tuple[str, str]]:
        """[(declared platform, manifest digest)], attestations left out; reads the config of a single manifest."""
        body, content_type = await self._client.get_bytes(f"manifests/{self.image.reference}", _ACCEPT)
        self.digest = _digest(body)
        doc = _json(body, str(self.image))
        if (doc.get("mediaType") or content_type) in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
            self.index = True
            out = []
            for entry in _items(doc.get("manifests")):
                p = entry.get("platform") if isinstance(entry, dict) else None
                if not isinstance(p, dict) or not isinstance(entry.get("digest"), str):
                    continue
                notes = entry.get("annotations")
                if isinstance(notes, dict) and notes.get("vnd.docker.reference.type") == "attestation-manifest":
                    continue
                os_name, arch = str(p.get("os", "")), str(p.get("architecture", ""))
                if "unknown" in (os_name, arch):
                    continue
                found = platforms.normalize(os_name, arch, str(p.get("variant", "")))
                if found:
                    out.append((found, entry["digest"]))
            return out
        self._single = doc
        return [("", self.digest)]

    async def load(self, platform: str, digest: str) -> PlatformImage:
        """The manifest, config and layer openers of one platform."""
        manifest = getattr(self, "_single", None) if digest == self.digest else None
        if manifest is None:
            body, _ = await self._client.get_bytes(f"manifests/{digest}", _ACCEPT)
            manifest = _json(body, f"{self.image}@{digest}")
        described = manifest.get("config")
        config_digest = described.get("digest") if isinstance(described, dict) else None
        if not isinstance(config_digest, str) or not config_digest:
            raise RegistryError(f"registry {self.image.registry} sent a manifest for {self.image} without a config digest")
        body, _ = await self._client.get_bytes(f"blobs/{config_digest}", "*/*")
        config = _json(body, f"the config of {self.image}")
        if not platform:
            platform = platforms.normalize(str(config.get("os", "")), str(config.get("architecture", "")),
                                           str(config.get("variant", "")))
        layers = []
        for layer in _items(manifest.get("layers")):
            if isinstance(layer, dict) and isinstance(layer.get("digest"), str):
                size = layer.get("size")  # only reported; a registry's JSON may say anything
                layers.append((layer["digest"], size if isinstance(size, int) else 0, self._opener(layer["digest"])))
        return PlatformImage(platform, digest, config, tuple(layers))

    def _opener(self, digest: str) -> Any:
        def open_blob() -> AsyncIterator[bytes]:
            return self._stream(digest)
        return open_blob

    async def _stream(self, digest: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._client.stream(f"blobs/{digest}"):
                yield chunk
        except aiohttp.ClientError as e:
            raise RegistryError(f"registry {self.image.registry} failed while sending layer {digest[:19]}: {e}") from e
