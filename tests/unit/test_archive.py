"""check reads local archives: docker save (manifest.json) and OCI image layouts (index.json + blobs/)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
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


def _save(tmp_path: Path, members: dict[str, bytes]) -> Path:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    path = tmp_path / "hostile.tar"
    path.write_bytes(out.getvalue())
    return path


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/app"]}}).encode()


@pytest.mark.parametrize("members, says", [
    ({"manifest.json": b'{"a": 1}'}, "manifest.json is not a JSON list"),
    ({"manifest.json": b'"x"'}, "manifest.json is not a JSON list"),
    ({"manifest.json": b'["x"]'}, "a manifest.json entry is not a JSON object"),
    ({"manifest.json": b'[{"Layers": []}]'}, "a manifest.json entry's Config is not a name"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": ["nope.tar"]}]', "c.json": CONFIG}, "the archive has no nope.tar"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": "l.tar"}]', "c.json": CONFIG}, "Layers is not a JSON list"),
    ({"manifest.json": b'[{"Config": "c.json"}]', "c.json": b"[1]"}, "c.json is not a JSON object"),
    ({"manifest.json": b'[{"Config": "c.json"}]', "c.json": b"{nope"}, "c.json is not JSON"),
    ({"manifest.json": b'[{"Config": "../../../etc/passwd"}]'}, "the archive has no ../../../etc/passwd"),
    ({"index.json": b"[]"}, "index.json is not a JSON object"),
    ({"index.json": b'{"manifests": [{}]}'}, "an index entry's digest is not a name"),
    ({"index.json": b'{"manifests": [{"digest": "sha256:aa"}]}', "blobs/sha256/aa": b'{"config": {}}'}, "a manifest's config's digest is not a name"),
    ({"index.json": b'{"manifests": [{"digest": "sha256:aa"}]}', "blobs/sha256/aa": b'{"config": {"digest": "sha256:bb"}, "layers": [7]}',
      "blobs/sha256/bb": CONFIG}, "a layer is not a JSON object"),
])
async def test_a_malformed_archive_is_one_config_error(tmp_path: Path, members: dict[str, bytes], says: str) -> None:
    """Each of these raised KeyError/TypeError/AttributeError (a traceback from `check FILE`)."""
    with pytest.raises(ConfigError, match=re.escape(says)):
        await read_archive(_save(tmp_path, members))


async def test_a_config_of_any_shape_names_no_command(tmp_path: Path) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": [1]}).encode()
    path = _save(tmp_path, {"manifest.json": b'[{"Config": "c.json", "Layers": []}]', "c.json": config})
    (p,) = (await read_archive(path)).platforms
    assert p.argv == () and p.entry.not_found


async def test_the_timeout_stops_a_gzip_bomb_in_an_archive(tmp_path: Path) -> None:
    """The archive's layer reads yield to the event loop, so --timeout can stop them (it never could)."""
    hdr = tarfile.TarInfo("filler")
    hdr.size = 512 * 1024 * 1024
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = c.compress(hdr.tobuf()) + b"".join(c.compress(b"\0" * (1 << 20)) for _ in range(512)) + c.flush()
    path = _save(tmp_path, {"manifest.json": b'[{"Config": "c.json", "Layers": ["l.tar"]}]', "c.json": CONFIG, "l.tar": bomb})
    (p,) = (await read_archive(path, timeout=1e-6)).platforms
    assert p.entry.binary.kind == "unreadable" and "the layers did not arrive within" in p.entry.binary.error, p


@pytest.mark.parametrize("script, cause", [
    (b"#!/bin/sh\r\necho hi\r\n", "crlf_shebang"),  # the kernel looks for "/bin/sh\r"
    (b"#!/usr/bin/env sh\r\necho hi\r\n", "crlf_shebang"),  # env looks for "sh\r"
    (b"#!/bin/sh\necho hi\n", ""),
])
async def test_a_script_saved_with_windows_line_endings_fails(tmp_path: Path, script: bytes, cause: str) -> None:
    """check passed a CRLF script as runnable: it followed "/bin/sh" where the kernel looks for "/bin/sh\\r"."""
    path = tmp_path / "crlf.tar"
    path.write_bytes(archive("crlf:1", [File("/bin/sh", elf(EM_X86_64)), File("/usr/bin/env", elf(EM_X86_64)), File("/app", script)],
                             architecture="amd64", entrypoint=["/app"]))
    (a,) = imagecheck.answer(await read_archive(path), [imagecheck.target_host("linux/amd64")])
    assert (a.status, a.verdict.cause) == ((runs.FAILS, cause) if cause else (runs.RUNS, ""))
    if cause:
        assert a.verdict.hint_id == "strip_crlf" and "the #! line of /app ends in a carriage return" in a.verdict.explanation


async def test_the_hint_names_the_saved_image_not_the_archive_file(tmp_path: Path) -> None:
    """The fix said `docker buildx build ... -t demo.tar --push .` (the file's path as an image name)."""
    path = tmp_path / "demo.tar"
    path.write_bytes(archive("enoexec-demo/arm64:latest", [File("/app", elf(EM_AARCH64))], architecture="arm64", entrypoint=["/app"]))
    (a,) = imagecheck.answer(await read_archive(path), [imagecheck.target_host("linux/amd64")])
    assert a.verdict.commands and all("demo.tar" not in c for c in a.verdict.commands), a.verdict.commands
    assert any("-t enoexec-demo/arm64:latest" in c for c in a.verdict.commands), a.verdict.commands


async def test_indexes_that_fan_out_are_refused_not_read_n_cubed_times(tmp_path: Path) -> None:
    """An index of 200 entries naming itself, nested 3 deep, made 8 million JSON reads (hours, no timeout applies)."""
    entries = json.dumps({"manifests": [{"digest": "sha256:aa"}] * 200}).encode()
    path = _save(tmp_path, {"index.json": entries, "blobs/sha256/aa": entries})
    with pytest.raises(ConfigError, match="its indexes name more than 1024 manifests"):
        await read_archive(path)


async def test_a_manifest_json_naming_too_many_images_is_refused(tmp_path: Path) -> None:
    """Each entry costs a config read and a full --timeout of its own: 100,000 of them fit in manifest.json."""
    items = json.dumps([{"Config": "c.json", "Layers": []}] * 1025).encode()
    with pytest.raises(ConfigError, match="manifest.json names more than 1024 images"):
        await read_archive(_save(tmp_path, {"manifest.json": items, "c.json": CONFIG}))
