"""An image in a local archive: ``docker save`` output (``manifest.json``) or an OCI image layout
(``index.json`` + ``blobs/``), as a tar file. Its layers are read in place, only as far as needed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from collector.check.entrypoint_read import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, EntrypointCache, PlatformImage, read_platform
from collector.check.imagecheck import ImageRead
from collector.errors import ConfigError
from enoexec import platforms

CHUNK = 64 * 1024
_MAX_JSON = 4 * 1024 * 1024
MAX_MANIFESTS = 1024  # index entries read in all: an image has a few dozen platforms and attestations


class Archive:
    """The members of one archive file, by name, read without extracting anything."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path, mode="r:") as tar:
                self.members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        except (OSError, tarfile.TarError) as e:
            raise ConfigError(f"{path}: not a readable image archive (docker save or OCI layout tar): {e}") from None

    def read(self, name: str) -> bytes:
        m = self.member(name)
        if m.size > _MAX_JSON:
            raise ConfigError(f"{self.path}: {name} is larger than {_MAX_JSON} bytes")
        with open(self.path, "rb") as f:
            f.seek(m.offset_data)
            return f.read(m.size)

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError:
            raise ConfigError(f"{self.path}: {name} is not JSON") from None

    def blob(self, digest: str) -> str:
        return f"blobs/{digest.replace(':', '/', 1)}"

    def member(self, name: str) -> tarfile.TarInfo:
        m = self.members.get(name.lstrip("./"))
        if m is None:
            raise ConfigError(f"{self.path}: the archive has no {name}")
        return m

    def opener(self, name: str) -> Any:
        m = self.member(name)

        async def stream() -> AsyncIterator[bytes]:
            with open(self.path, "rb") as f:
                f.seek(m.offset_data)
                left = m.size
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        return
                    left -= len(data)
                    yield data
                    await asyncio.sleep(0)  # a point where the read's timeout can stop it
        return stream


def _platform(config: dict[str, Any]) -> str:
    return platforms.normalize(str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant", "")))


def _bad(archive: Archive, what: str) -> ConfigError:
    return ConfigError(f"{archive.path}: not a docker save or OCI layout archive: {what}")


def _obj(archive: Archive, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(archive, f"{what} is not a JSON object")
    return value


def _list(archive: Archive, value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(archive, f"{what} is not a JSON list")
    return value


def _str(archive: Archive, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(archive, f"{what} is not a name")
    return value


def names(archive: Archive) -> list[str]:
    """The names the images were saved under."""
    if "manifest.json" in archive.members:
        items = _list(archive, archive.json("manifest.json"), "manifest.json")
        return [t for item in items if isinstance(item, dict) for t in _strings(item.get("RepoTags"))]
    if "index.json" in archive.members:
        index = _obj(archive, archive.json("index.json"), "index.json")
        entries = _list(archive, index.get("manifests"), "index.json's manifests")
        return [n for e in entries if isinstance(e, dict) and isinstance(e.get("annotations"), dict)
                for n in _strings([e["annotations"].get("io.containerd.image.name")])]
    return []


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def images(archive: Archive) -> list[PlatformImage]:
    """Every image the archive holds, one per platform (``docker save`` of several tags: each)."""
    if "manifest.json" in archive.members:
        out = []
        items = _list(archive, archive.json("manifest.json"), "manifest.json")
        if len(items) > MAX_MANIFESTS:
            raise _bad(archive, f"manifest.json names more than {MAX_MANIFESTS} images")
        for item in items:
            item = _obj(archive, item, "a manifest.json entry")
            config_name = _str(archive, item.get("Config"), "a manifest.json entry's Config")
            config_bytes = archive.read(config_name)
            config = _obj(archive, archive.json(config_name), config_name)
            layers = tuple((name, archive.member(name).size, archive.opener(name))
                           for name in (_str(archive, n, "a layer") for n in _list(archive, item.get("Layers"), "Layers")))
            digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()  # the image id: names its content
            out.append(PlatformImage(_platform(config), digest, config, layers))
        return out
    if "index.json" in archive.members:
        return _oci(archive, _obj(archive, archive.json("index.json"), "index.json"), depth=0, seen=[0])
    raise ConfigError(f"{archive.path}: neither manifest.json (docker save) nor index.json (OCI layout) is in it")


def _digest(archive: Archive, descriptor: Any, what: str) -> str:
    return _str(archive, _obj(archive, descriptor, what).get("digest"), f"{what}'s digest")


def _oci(archive: Archive, index: dict[str, Any], depth: int, seen: list[int]) -> list[PlatformImage]:
    out: list[PlatformImage] = []
    for entry in _list(archive, index.get("manifests"), "an index's manifests"):
        digest = _digest(archive, entry, "an index entry")
        seen[0] += 1  # indexes naming each other fan out: N entries at 3 levels are N**3 reads
        if seen[0] > MAX_MANIFESTS:
            raise _bad(archive, f"its indexes name more than {MAX_MANIFESTS} manifests")
        doc = _obj(archive, archive.json(archive.blob(digest)), digest)
        if "manifests" in doc and depth < 2:
            out += _oci(archive, doc, depth + 1, seen)
            continue
        if "config" not in doc:
            continue
        config_digest = _digest(archive, doc["config"], "a manifest's config")
        config = _obj(archive, archive.json(archive.blob(config_digest)), config_digest)
        platform = _platform(config)
        if not platform or platform.startswith("unknown"):
            continue  # an attestation
        layers = []
        for layer in _list(archive, doc.get("layers"), "a manifest's layers"):
            layer_digest = _digest(archive, layer, "a layer")
            size = layer.get("size")
            layers.append((layer_digest, size if isinstance(size, int) else 0, archive.opener(archive.blob(layer_digest))))
        out.append(PlatformImage(platform, digest, config, tuple(layers)))
    return out


async def read_archive(
    path: Path, *, cache: EntrypointCache | None = None, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT,
) -> ImageRead:
    """Every platform's entrypoint in the archive at ``path``: each within ``max_bytes``, all within ``timeout``."""
    started = time.monotonic()
    archive = Archive(path)
    found = images(archive)
    reads = []
    for image in found:  # the whole archive shares one time limit, as a registry's platforms do
        left = timeout - (time.monotonic() - started)
        reads.append(await read_platform(image, cache=cache, max_bytes=max_bytes, timeout=max(left, 1e-3)))
    return ImageRead(str(path), "", tuple(reads), "archive", time.monotonic() - started, tuple(names(archive)))
