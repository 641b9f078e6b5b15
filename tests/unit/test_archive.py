"""check reads local archives: docker save (manifest.json) and OCI image layouts (index.json + blobs/)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from collector.check import imagecheck
from collector.check.archive import read_archive
from collector.errors import ConfigError
from enoexec.judge import runs
from tests.images import EM_AARCH64, EM_X86_64, File, archive, elf


def oci_layout(parts: dict[str, bytes]) -> bytes:
    """An OCI layout tar: an index over one manifest per platform, each with one gzip'd layer holding /app."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    manifests = []
    for platform, binary in parts.items():
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            ti = tarfile.TarInfo("app")
            ti.size, ti.mode = len(binary), 0o755
            tar.addfile(ti, io.BytesIO(binary))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        os_name, arch = platform.split("/")
        config = json.dumps({"os": os_name, "architecture": arch, "config": {"Entrypoint": ["/app"]}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "config": {"digest": blob(config), "size": len(config)},
                               "layers": [{"digest": blob(layer), "size": len(layer)}]}).encode()
        manifests.append({"digest": blob(manifest), "size": len(manifest), "platform": {"os": os_name, "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "manifests": [{"digest": blob(json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()),
                                                          "annotations": {"io.containerd.image.name": "docker.io/acme/app:1"}}]}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                           *((f"blobs/sha256/{d.split(':')[1]}", b) for d, b in blobs.items())]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out.getvalue()


async def test_an_oci_layout_with_a_mislabeled_platform(tmp_path: Path) -> None:
    path = tmp_path / "app.tar"
    path.write_bytes(oci_layout({"linux/amd64": elf(EM_X86_64), "linux/arm64": elf(EM_X86_64)}))
    read = await read_archive(path)
    assert read.names == ("docker.io/acme/app:1",) and [p.platform for p in read.platforms] == ["linux/amd64", "linux/arm64"]
    by = {a.host_id: a for a in imagecheck.answer(read, [imagecheck.target_host("linux/arm64")])}
    assert by["linux/arm64"].verdict.cause == "mislabeled_image"


async def test_docker_save(tmp_path: Path) -> None:
    path = tmp_path / "demo.tar"
    path.write_bytes(archive("enoexec-demo/arm64:latest", [File("/app", elf(EM_AARCH64))], architecture="arm64", entrypoint=["/app"]))
    read = await read_archive(path)
    assert read.names == ("enoexec-demo/arm64:latest",)
    (a,) = imagecheck.answer(read, [imagecheck.target_host("linux/amd64")])
    assert a.status == runs.FAILS and "binary is linux/arm64" in a.verdict.explanation


async def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"hello")
    with pytest.raises(ConfigError, match="not a readable image archive"):
        await read_archive(path)
