"""An image in a local archive: ``docker save`` output (``manifest.json``) or an OCI image layout
(``index.json`` + ``blobs/``), as a tar file. Its layers are read in place, only as far as needed."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from collector.check.entrypoint_read import EntrypointCache, PlatformImage, read_platform
from collector.check.imagecheck import ImageRead
from collector.errors import ConfigError
from enoexec import platforms

CHUNK = 64 * 1024
_MAX_JSON = 4 * 1024 * 1024


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
        m = self._member(name)
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

    def _member(self, name: str) -> tarfile.TarInfo:
        m = self.members.get(name.lstrip("./"))
        if m is None:
            raise ConfigError(f"{self.path}: the archive has no {name}")
        return m

    def opener(self, name: str) -> Any:
        m = self._member(name)

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
        return stream


def _platform(config: dict[str, Any]) -> str:
    return platforms.normalize(str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant", "")))


def names(archive: Archive) -> list[str]:
    """The names the images were saved under."""
    if "manifest.json" in archive.members:
        return [t for item in archive.json("manifest.json") for t in item.get("RepoTags") or []]
    if "index.json" in archive.members:
        return [n for e in archive.json("index.json").get("manifests") or []
                for n in [(e.get("annotations") or {}).get("io.containerd.image.name", "")] if n]
    return []


def images(archive: Archive) -> list[PlatformImage]:
    """Every image the archive holds, one per platform (``docker save`` of several tags: each)."""
    if "manifest.json" in archive.members:
        out = []
        for item in archive.json("manifest.json"):
            config_bytes = archive.read(item["Config"])
            config = json.loads(config_bytes)
            layers = tuple((name, archive.members[name.lstrip("./")].size, archive.opener(name)) for name in item.get("Layers") or [])
            digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()  # the image id: names its content
            out.append(PlatformImage(_platform(config), digest, config, layers))
        return out
    if "index.json" in archive.members:
        return _oci(archive, archive.json("index.json"), depth=0)
    raise ConfigError(f"{archive.path}: neither manifest.json (docker save) nor index.json (OCI layout) is in it")


def _oci(archive: Archive, index: dict[str, Any], depth: int) -> list[PlatformImage]:
    out: list[PlatformImage] = []
    for entry in index.get("manifests") or []:
        doc = archive.json(archive.blob(entry["digest"]))
        if "manifests" in doc and depth < 2:
            out += _oci(archive, doc, depth + 1)
            continue
        if "config" not in doc:
            continue
        config = archive.json(archive.blob(doc["config"]["digest"]))
        platform = _platform(config)
        if not platform or platform.startswith("unknown"):
            continue  # an attestation
        layers = tuple((layer["digest"], int(layer.get("size") or 0), archive.opener(archive.blob(layer["digest"])))
                       for layer in doc.get("layers") or [])
        out.append(PlatformImage(platform, entry["digest"], config, layers))
    return out


async def read_archive(path: Path, *, cache: EntrypointCache | None = None) -> ImageRead:
    started = time.monotonic()
    archive = Archive(path)
    found = images(archive)
    reads = tuple([await read_platform(image, cache=cache) for image in found])
    return ImageRead(str(path), "", reads, "archive", time.monotonic() - started, tuple(names(archive)))
