"""Finding the entrypoint in stacked layers: whiteouts, symlinks, PATH, streaming only what is needed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import AsyncIterator, Sequence

import pytest

from collector.check.entrypoint_read import PlatformImage, read_platform
from collector.check.imagecheck import target_host
from collector.check.rootfs import Budget, Rootfs
from collector.check.tarwalk import LayerWalk
from enoexec import causes
from enoexec.facts import ImageFacts
from enoexec.judge import runs
from enoexec.judge.runs import MISSING_INTERPRETER, MISSING_LOADER
from tests import elfs
from tests.images import EM_AARCH64, EM_X86_64, elf
from tests.unit.test_sniff import SHT_ARM_ATTRIBUTES, arm_attributes, build_elf

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
    assert read.entry.missing == "/bin/bash" and verdict(read, "linux/arm64").cause == MISSING_INTERPRETER


def verdict(read, platform: str, **host) -> runs.Verdict:  # noqa: ANN001
    h = target_host(platform)
    return runs.judge(read.entry, type(h)(**{**h.__dict__, **host}), ImageFacts("app:1", "sha256:m", read.platform))


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
    assert read.entry.missing == "/lib/ld-linux-aarch64.so.1"
    assert (read.entry.binary.libc, read.entry.binary.image_libc) == ("glibc", "")
    v = verdict(read, "linux/arm64")
    assert (v.cause, v.hint_id) == (MISSING_LOADER, "add_loader") and "glibc program loader" in v.explanation


# -- the look-alikes check names before anything runs, read the agent's way (enoexec.judge.reading) --


def amd_image(*items: Item) -> PlatformImage:
    blobs = Blobs(layer(list(items)))
    layers = tuple((f"sha256:{i}", len(b), blobs.opener(i)) for i, b in enumerate(blobs.blobs))
    return PlatformImage("linux/amd64", "sha256:m", {"config": {"Entrypoint": ["/app"]}}, layers)


async def test_a_glibc_program_in_a_musl_image_says_which_libc_the_image_has() -> None:
    read = await read_platform(amd_image(("app", elfs.program(interp="/lib64/ld-linux-x86-64.so.2"), 0o755),
                                         ("lib/ld-musl-x86_64.so.1", elfs.program(), 0o755)))
    b = read.entry.binary
    assert (b.missing, b.libc, b.image_libc) == ("/lib64/ld-linux-x86-64.so.2", "glibc", "musl")
    v = verdict(read, "linux/amd64")
    assert v.cause == MISSING_LOADER and "the image has musl's loader instead" in v.explanation and "gcompat" in "".join(v.commands)


async def test_a_crlf_shebang_is_crlf_not_a_missing_interpreter() -> None:
    read = await read_platform(amd_image(("app", b"#!/bin/sh\r\necho hi\r\n", 0o755), ("bin/sh", elfs.program(), 0o755)))
    assert read.entry.missing == "/bin/sh\r"
    v = verdict(read, "linux/amd64")
    assert (v.status, v.cause, v.hint_id) == (runs.FAILS, causes.CRLF_SHEBANG, "strip_crlf") and "carriage return" in v.explanation


async def test_env_with_a_crlf_argument_is_crlf() -> None:
    read = await read_platform(amd_image(("app", b"#!/usr/bin/env python3\r\n", 0o755), ("usr/bin/env", elfs.program(), 0o755)))
    assert verdict(read, "linux/amd64").cause == causes.CRLF_SHEBANG and read.entry.missing == "python3\r"


async def test_an_x86_64_v3_binary_or_loader_fails_on_a_v2_host_only() -> None:
    read = await read_platform(amd_image(("app", elfs.program(isa_level=3), 0o755)))
    assert read.entry.binary.isa_level == 3
    v = verdict(read, "linux/amd64", cpu_level="x86-64-v2")
    assert (v.cause, v.hint_id) == (causes.CPU_LEVEL, "match_cpu_level") and "x86-64-v3" in v.explanation
    assert verdict(read, "linux/amd64", cpu_level="x86-64-v3").status == runs.RUNS
    assert verdict(read, "linux/amd64").status == runs.RUNS  # a host of unknown level: nothing said
    loader = "/lib64/ld-linux-x86-64.so.2"
    read = await read_platform(amd_image(("app", elfs.program(interp=loader), 0o755), (loader[1:], elfs.program(isa_level=3), 0o755)))
    assert read.entry.binary.isa_level == 3 and verdict(read, "linux/amd64", cpu_level="x86-64-v2").cause == causes.CPU_LEVEL


async def test_an_elf_cut_short_and_a_zeroed_file_are_corrupt() -> None:
    whole = elfs.program(message=b"x" * 200)
    read = await read_platform(amd_image(("app", whole[:150], 0o755)))
    v = verdict(read, "linux/amd64")
    assert (v.cause, v.hint_id) == (causes.CORRUPT_FILE, "repull_image") and "past the end of the file (150 bytes)" in v.explanation
    read = await read_platform(amd_image(("app", bytes(9000), 0o755)))
    assert verdict(read, "linux/amd64").cause == causes.CORRUPT_FILE


async def test_4k_aligned_segments_fail_on_a_16k_page_host() -> None:
    read = await read_platform(amd_image(("app", elfs.program(align=0x1000), 0o755)))
    v = verdict(read, "linux/amd64", page_size=16384)
    assert (v.cause, v.hint_id) == (causes.PAGE_SIZE, "match_page_size")
    assert verdict(read, "linux/amd64", page_size=4096).status == runs.RUNS


def arm_elf(cpu_arch: int, filler: int = 200_000) -> bytes:
    """A 32-bit ARM ELF whose .ARM.attributes and section headers lie past its first 4 KiB."""
    return build_elf(40, 32, sections=((1, os.urandom(filler)), (SHT_ARM_ATTRIBUTES, arm_attributes(cpu_arch))))


async def test_an_arm_elf_is_read_to_its_end_for_its_attributes_and_says_so() -> None:
    v7 = arm_elf(10)
    blobs = Blobs(layer([("bin/app", v7, 0o755), ("after", os.urandom(300_000), 0o644)]))
    image = PlatformImage("linux/arm/v6", "sha256:m", {"config": {"Entrypoint": ["/bin/app"]}},
                          (("sha256:0", len(blobs.blobs[0]), blobs.opener(0)),))
    read = await read_platform(image)
    b = read.entry.binary
    assert (b.platform, b.variant_guessed) == ("linux/arm/v7", False)
    assert read.files_read_to_end == (f"/bin/app ({len(v7)} bytes)",)
    assert len(v7) < read.bytes_read < len(v7) + 200_000  # the file, not the rest of the layer
    v = verdict(read, "linux/arm/v6")  # an ARMv6 core (Pi Zero)
    assert (v.cause, v.hint_id) == (causes.CPU_LEVEL, "match_cpu_level") and "armv6" in v.explanation
    assert verdict(read, "linux/arm/v7").status == runs.RUNS


async def test_an_armv6_elf_runs_on_an_armv6_target() -> None:
    blobs = Blobs(layer([("bin/app", arm_elf(6), 0o755)]))
    image = PlatformImage("linux/arm/v6", "sha256:m", {"config": {"Entrypoint": ["/bin/app"]}},
                          (("sha256:0", len(blobs.blobs[0]), blobs.opener(0)),))
    read = await read_platform(image)
    assert read.entry.binary.platform == "linux/arm/v6" and verdict(read, "linux/arm/v6").status == runs.RUNS


async def test_other_files_are_not_read_to_their_end() -> None:
    big = elfs.program() + os.urandom(500_000)
    blobs = Blobs(layer([("app", big, 0o755)], compress=False))
    image = PlatformImage("linux/amd64", "sha256:m", {"config": {"Entrypoint": ["/app"]}},
                          (("sha256:0", len(blobs.blobs[0]), blobs.opener(0)),))
    read = await read_platform(image)
    assert read.files_read_to_end == () and read.bytes_read < 64 * 1024


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
