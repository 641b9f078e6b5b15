"""Finding the entrypoint in stacked layers: whiteouts, symlinks, PATH, streaming only what is needed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import AsyncIterator, Sequence

import pytest

from collector.check.entrypoint_read import PlatformImage, read_platform
from collector.check.rootfs import Budget, Rootfs
from collector.check.tarwalk import LayerWalk
from enoexec.judge.runs import MISSING_INTERPRETER, MISSING_LOADER
from tests.images import EM_AARCH64, EM_X86_64, elf

Item = tuple[str, bytes | str | None, int]  # (path, data | symlink target ("->x") | None for a dir, mode)


def layer(items: Sequence[Item], *, compress: bool = True, pax: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT) as tar:
        for path, data, mode in items:
            ti = tarfile.TarInfo(path)
            ti.mode = mode
            if data is None:
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif isinstance(data, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


class Blobs:
    """Layer blobs served in small chunks, counting what was sent."""

    def __init__(self, *blobs: bytes, chunk: int = 1024) -> None:
        self.blobs, self.chunk, self.sent = list(blobs), chunk, [0] * len(blobs)

    def opener(self, i: int):  # noqa: ANN201
        async def stream() -> AsyncIterator[bytes]:
            data = self.blobs[i]
            for pos in range(0, len(data), self.chunk):
                self.sent[i] += len(data[pos : pos + self.chunk])
                yield data[pos : pos + self.chunk]
        return stream

    def rootfs(self, limit: int = 1 << 30) -> Rootfs:
        return Rootfs([(f"sha256:{i}", len(b), self.opener(i)) for i, b in enumerate(self.blobs)], Budget(limit))


ARM = elf(EM_AARCH64)
AMD = elf(EM_X86_64)


async def test_the_top_layer_answers_without_reading_a_large_lower_one() -> None:
    base = layer([("bin", None, 0o755), ("big", os.urandom(2_000_000), 0o644), ("app", ARM, 0o755)])
    top = layer([("app", AMD, 0o755)])
    blobs = Blobs(base, top)
    found = await blobs.rootfs().read("/app")
    assert found.head.startswith(AMD[:20]) and found.executable
    assert blobs.sent[0] == 0 and blobs.sent[1] == len(top)


async def test_a_whiteout_in_the_top_layer_deletes_the_binary() -> None:
    blobs = Blobs(layer([("usr/bin/app", AMD, 0o755)]), layer([("usr/bin/.wh.app", b"", 0o644)]))
    found = await blobs.rootfs().read("/usr/bin/app")
    assert found.missing


async def test_an_opaque_directory_hides_what_is_below() -> None:
    blobs = Blobs(layer([("opt/app", AMD, 0o755)]), layer([("opt", None, 0o755), ("opt/.wh..wh..opq", b"", 0o644)]))
    assert (await blobs.rootfs().read("/opt/app")).missing


async def test_a_symlink_into_a_lower_layer_is_followed_from_the_top() -> None:
    blobs = Blobs(layer([("opt/real/app", ARM, 0o755)]), layer([("usr/local/bin/app", "../../../opt/real/app", 0o777)]))
    found = await blobs.rootfs().read("/usr/local/bin/app")
    assert found.path == "/opt/real/app" and found.head.startswith(ARM[:20])


async def test_a_symlinked_directory_on_the_way() -> None:
    blobs = Blobs(layer([("usr/bin/sh", AMD, 0o755), ("bin", "usr/bin", 0o777)]))
    found = await blobs.rootfs().read("/bin/sh")
    assert found.path == "/usr/bin/sh" and not found.error


async def test_a_symlink_loop_is_bounded() -> None:
    blobs = Blobs(layer([("a", "b", 0o777), ("b", "a", 0o777)]))
    assert "too many levels" in (await blobs.rootfs().read("/a")).error


async def test_path_walk_skips_files_without_exec_bit_and_directories() -> None:
    blobs = Blobs(layer([("usr/local/bin/app", None, 0o755), ("usr/sbin/app", AMD, 0o644), ("bin/app", ARM, 0o755)]))
    requested, found = await blobs.rootfs().find("app", "/usr/local/bin:/usr/sbin:/bin")
    assert requested == "/bin/app" and found.head.startswith(ARM[:20])


async def test_a_file_passed_before_it_was_asked_for_is_read_again() -> None:
    blobs = Blobs(layer([("bin/real", ARM, 0o755), ("bin/app", "real", 0o777)]))
    found = await blobs.rootfs().read("/bin/app")
    assert found.head.startswith(ARM[:20])


async def test_long_names_plain_tar_and_pax() -> None:
    deep = "d/" * 80 + "app"
    for blob in (layer([(deep, AMD, 0o755)], compress=False), layer([(deep, AMD, 0o755)], pax=True)):
        found = await Blobs(blob).rootfs().read("/" + deep)
        assert found.head.startswith(AMD[:20]), found


async def test_the_byte_budget_stops_the_walk() -> None:
    blobs = Blobs(layer([("noise", os.urandom(300_000), 0o644)]), layer([("x", b"1", 0o644)]))
    image = PlatformImage("linux/amd64", "sha256:m", {"config": {"Entrypoint": ["/app"]}},
                          tuple((f"sha256:{i}", len(b), blobs.opener(i)) for i, b in enumerate(blobs.blobs)))
    read = await read_platform(image, max_bytes=100_000)
    assert read.entry.binary.kind == "unreadable" and "stopped after reading" in read.entry.binary.error


def platform_image(blobs: Blobs, config: dict) -> PlatformImage:
    layers = tuple((f"sha256:{i}", len(b), blobs.opener(i)) for i, b in enumerate(blobs.blobs))
    return PlatformImage("linux/arm64", "sha256:m", {"config": config}, layers)


async def test_a_script_whose_interpreter_is_missing() -> None:
    blobs = Blobs(layer([("app.sh", b"#!/bin/bash\necho hi\n", 0o755)]))
    read = await read_platform(platform_image(blobs, {"Entrypoint": ["/app.sh"]}))
    assert read.entry.missing == "/bin/bash" and read.entry.missing_kind == MISSING_INTERPRETER


async def test_a_script_is_judged_by_its_interpreter() -> None:
    blobs = Blobs(layer([("app.sh", b"#!/bin/sh\necho hi\n", 0o755), ("bin/sh", AMD, 0o755)]))
    read = await read_platform(platform_image(blobs, {"Cmd": ["/app.sh"]}))
    assert read.entry.binary.platform == "linux/amd64" and read.entry.binary.shebang == "/bin/sh"


async def test_an_elf_whose_loader_is_missing() -> None:
    import struct

    # A PT_INTERP program header naming /lib/ld-linux-aarch64.so.1, inside the bytes read.
    interp = b"/lib/ld-linux-aarch64.so.1\0"
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, EM_AARCH64, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 3, 4, 120, 0, 0, len(interp), len(interp), 1)
    blobs = Blobs(layer([("app", hdr + ph + interp, 0o755)]))
    read = await read_platform(platform_image(blobs, {"Entrypoint": ["/app"]}))
    assert read.entry.missing_kind == MISSING_LOADER and read.entry.missing == "/lib/ld-linux-aarch64.so.1"


def test_layer_walk_stops_yielding_once_the_file_head_is_in() -> None:
    blob = layer([("app", AMD + b"\0" * 10_000, 0o755), ("later", b"x", 0o644)])
    walk = LayerWalk(lambda p: p == "/app", head_bytes=64)
    got = [e for i in range(0, len(blob), 100) for e in walk.feed(blob[i : i + 100])]
    assert got[0].path == "/app" and got[0].head == (AMD + b"\0" * 10_000)[:64]


@pytest.mark.parametrize("bad", [b"\x28\xb5\x2f\xfd" + b"\0" * 600, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x07" + bytes(20)])
def test_unreadable_layers_say_so(bad: bytes) -> None:
    from collector.check.tarwalk import TarWalkError

    with pytest.raises(TarWalkError):
        list(LayerWalk(lambda p: True).feed(bad))
