"""Fuzz the parsers of untrusted image bytes: the ELF sniffer and its facts
(program headers, notes, ARM attributes), the layer walker and the archive
reader. Whatever the bytes, each returns an answer or raises its own error
type (TarWalkError, ConfigError), never anything else, and reads only what it
was given (a slice past the end would surface as IndexError/struct.error).
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import tarfile
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.check.archive import read_archive
from collector.check.entrypoint_read import PlatformImage, read_platform
from collector.check.tarwalk import LayerWalk, TarWalkError
from collector.errors import ConfigError
from enoexec.causes import CAUSES
from enoexec.facts import BinaryFacts, Emulator, HostFacts, ImageFacts
from enoexec.judge import classify, elf_facts, lookalike, runs, sniff

U16, U32, U64 = st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
# Offsets and counts that point inside, at the edge of, and far past a small file.
near = st.one_of(st.integers(0, 600), st.sampled_from([2**16 - 1, 2**31, 2**32 - 1]))


@st.composite
def elf_files(draw: st.DrawFn) -> bytes:
    """An ELF header with every field drawn, program/section headers pointing anywhere, then noise."""
    cls = draw(st.sampled_from([1, 2]))
    order = draw(st.sampled_from(["<", ">"]))
    ident = b"\x7fELF" + bytes([cls, 1 if order == "<" else 2, 1, 0]) + b"\0" * 8
    machine = draw(st.sampled_from([3, 40, 62, 183, 243, draw(U16)]))
    if cls == 2:
        hdr = struct.pack(order + "HHIQQQIHHHHHH", draw(U16), machine, 1, draw(U64), draw(near), draw(near), draw(U32),
                          64, draw(st.sampled_from([56, 0, 1, draw(U16)])), draw(st.sampled_from([1, 2, 0xFFFF, draw(U16)])),
                          draw(st.sampled_from([64, 40, draw(U16)])), draw(st.sampled_from([1, 3, 0xFFFF, draw(U16)])), 0)
    else:
        hdr = struct.pack(order + "HHIIIIIHHHHHH", draw(U16), machine, 1, draw(U32), draw(near), draw(near), draw(U32),
                          52, draw(st.sampled_from([32, 0, draw(U16)])), draw(st.sampled_from([1, 2, 0xFFFF, draw(U16)])),
                          draw(st.sampled_from([40, draw(U16)])), draw(st.sampled_from([1, 3, 0xFFFF, draw(U16)])), 0)
    # Program headers, notes and attribute sections with lengths that overflow.
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        piece = draw(st.sampled_from(["phdr", "note", "attrs", "raw"]))
        if piece == "phdr":
            fields = [draw(st.sampled_from([1, 3, 4, 0x6474E553, draw(U32)])), draw(U32)]
            fields += [draw(near) for _ in range(6)] if cls == 2 else []
            body += (struct.pack(order + "IIQQQQQQ", *fields) if cls == 2
                     else struct.pack(order + "IIIIIIII", fields[0], draw(near), draw(near), 0, draw(near), draw(near), fields[1], draw(near)))
        elif piece == "note":
            body += struct.pack(order + "III", draw(near), draw(near), 5) + b"GNU\0"
            body += struct.pack(order + "II", 0xC0008002, draw(near)) + draw(st.binary(max_size=12))
        elif piece == "attrs":
            body += b"A" + struct.pack(order + "I", draw(near)) + b"aeabi\0" + bytes([1]) + struct.pack(order + "I", draw(near))
            body += draw(st.binary(max_size=16)) + bytes([6, draw(st.integers(0, 255))])
        else:
            body += draw(st.binary(max_size=64))
    data = ident + hdr + body
    return data[: draw(st.integers(4, len(data)))] if draw(st.booleans()) else data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elf_files())
def test_elf_parsers_answer_whatever_the_headers_say(data: bytes) -> None:
    s = sniff.sniff(data)
    assert s.kind == sniff.Kind.ELF
    elf_facts.load_layout(data)
    assert 0 <= elf_facts.x86_isa_needed(data) <= 4
    cut = len(data) // 2
    elf_facts.arm_cpu_arch(data[:cut], data[cut:], len(data))
    elf_facts.arm_cpu_arch(data[:cut], data[-8:], 2**32)  # a tail far from the head


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256), st.sampled_from(["<", ">"]))
def test_arm_attributes_of_any_bytes(body: bytes, order: str) -> None:
    arch = elf_facts.cpu_arch_of_attributes(b"A" + body, order)
    assert arch is None or arch >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_sniff_any_bytes(data: bytes) -> None:
    sniff.sniff(data)
    sniff.kernel_interpreter(b"#!" + data)


def _walk(stream: bytes, chunk: int) -> int:
    walk, n = LayerWalk(lambda _path: True, head_bytes=64), 0
    for i in range(0, len(stream), chunk):
        for entry in walk.feed(stream[i : i + chunk]):
            assert entry.path.startswith("/") and "/../" not in entry.path + "/"
            assert entry.head is None or len(entry.head) <= 64
            n += 1
        if walk.ended:
            break
    return n


def _tar_header(name: bytes, size: bytes, typeflag: bytes, link: bytes = b"") -> bytes:
    h = bytearray(512)
    h[0 : len(name[:100])] = name[:100]
    h[100:108] = b"0000644\0"
    h[124:136] = size[:12].ljust(12, b"\0")
    h[156:157] = typeflag[:1]
    h[157 : 157 + len(link[:100])] = link[:100]
    h[257:263] = b"ustar\0"
    return bytes(h)


tar_headers = st.builds(
    _tar_header,
    st.sampled_from([b"app", b"../../etc/passwd", b"/abs", b"./a/../../b", b"\xff\xfe", b""]),
    st.one_of(st.sampled_from([b"77777777777\0", b"00000000010\0", b"zz\0", b"\x80" + b"\xff" * 11, b""]), st.binary(max_size=12)),
    st.sampled_from([b"0", b"2", b"1", b"5", b"x", b"L", b"K", b"g", b"\0", b"?"]),
    st.sampled_from([b"", b"/", b"../../..", b"app"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(tar_headers, st.binary(max_size=700)), max_size=5), st.booleans(), st.sampled_from([1, 7, 512, 4096]))
def test_layer_walk_raises_only_its_own_error(parts: list[bytes], gzipped: bool, chunk: int) -> None:
    stream = b"".join(parts)
    if gzipped:
        stream = zlib.compress(stream, wbits=31)[: len(stream) + 20]
    try:
        _walk(stream, chunk)
    except TarWalkError:
        pass


def test_gzip_bomb_is_walked_in_bounded_steps() -> None:
    """A layer that inflates 1 MiB -> 256 MiB: no step holds more than a step's output."""
    hdr = tarfile.TarInfo("big")
    hdr.size = 256 * 1024 * 1024
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    comp = c.compress(hdr.tobuf()) + b"".join(c.compress(b"\0" * (1 << 20)) for _ in range(256)) + c.flush()
    assert len(comp) < 1 << 20
    walk = LayerWalk(lambda _p: False)
    entries = [e for i in range(0, len(comp), 65536) for e in walk.feed(comp[i : i + 65536])]
    assert [e.path for e in entries] == ["/big"]
    assert len(walk._tar._buf) < 1 << 20  # the parser skipped the data; it never buffered it


# docker save archives whose manifest and config say anything at all.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.sampled_from(["c.json", "l.tar", "../c.json"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
        st.sampled_from(["Config", "Layers", "RepoTags", "config", "Entrypoint", "Cmd", "Env", "architecture", "os",
                         "manifests", "digest", "layers"]), inner, max_size=4)),
    max_leaves=10,
)


def _archive(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=json_values, config=json_values, index=st.booleans(), raw=st.booleans())
def test_archive_reader_raises_only_config_error(tmp_path: Path, manifest: object, config: object, index: bool, raw: bool) -> None:
    members = {"c.json": b"{nope" if raw else json.dumps(config).encode(), "l.tar": b"",
               ("index.json" if index else "manifest.json"): json.dumps(manifest).encode(),
               "blobs/sha256/x": json.dumps(config).encode()}
    path = tmp_path / "a.tar"
    path.write_bytes(_archive(members))
    try:
        asyncio.run(read_archive(path))
    except ConfigError as e:
        assert "\n" not in str(e)


# Stacked layers of files, directories, symlinks (absolute, relative, climbing above /, looping),
# hardlinks and whiteouts over a few names: finding any path or command ends, and says "no such
# file", a loop, or the file, never anything but RootfsError/TarWalkError.
NAMES = ["/app", "/bin", "/bin/sh", "/usr/bin/env", "/a", "/a/b", "/.wh.app", "/bin/.wh..wh..opq"]
TARGETS = ["/app", "app", "../../../../app", "/a/b", "b", ".", "..", "/", "/bin/sh", "/a", "/nowhere", "a/../a"]


@st.composite
def stacked_layers(draw: st.DrawFn) -> list[bytes]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in draw(st.lists(st.sampled_from(NAMES), max_size=6)):
                ti = tarfile.TarInfo(name.lstrip("/"))
                kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink"]))
                if kind == "file":
                    data = draw(st.sampled_from([b"", b"#!/bin/sh\r\n", b"#!/a/b\n", b"\x7fELF\x02\x01\x01", b"\0" * 64]))
                    ti.size, ti.mode = len(data), draw(st.sampled_from([0o755, 0o644]))
                    tar.addfile(ti, io.BytesIO(data))
                    continue
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                else:
                    ti.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                    ti.linkname = draw(st.sampled_from(TARGETS))
                tar.addfile(ti)
        raw = buf.getvalue()
        out.append(zlib.compress(raw, wbits=31) if draw(st.booleans()) else raw)
    return out


@settings(max_examples=200, deadline=None)
@given(stacked_layers(), st.sampled_from(["/app", "app", "sh", "env", "/a/b", "", "../../app"]))
def test_finding_a_command_in_hostile_layers_ends(layers: list[bytes], argv0: str) -> None:
    def opener(blob: bytes) -> Callable[[], AsyncIterator[bytes]]:
        async def stream() -> AsyncIterator[bytes]:
            for i in range(0, len(blob), 100):
                yield blob[i : i + 100]
        return stream

    config = {"config": {"Entrypoint": [argv0] if argv0 else [], "Env": ["PATH=/bin:/usr/bin:/a"]}}
    image = PlatformImage("linux/amd64", "sha256:x", config, tuple((f"l{i}", len(b), opener(b)) for i, b in enumerate(layers)))
    read = asyncio.run(read_platform(image, max_bytes=1 << 20, timeout=60))
    binary = read.entry.binary
    assert binary.kind != "unreadable" or binary.error, read  # an unreadable answer says why


# The judges over whatever facts a hostile image and a strange host give: a verdict, never an exception.
PLATFORMS = ["", "linux/amd64", "linux/arm64", "linux/arm/v6", "linux/arm/v7", "linux/386", "linux/riscv64", "windows/amd64",
             "linux/arm", "bogus", "linux/arm64/v8"]
PATHS = ["", "/app", "/bin/sh\r", "python3\r", "/lib/ld-musl-x86_64.so.1", "/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-armhf.so.3",
         "\x1b[2J", "../../x", "/" + "a" * 300]
binaries = st.builds(
    BinaryFacts, st.sampled_from(PATHS), st.sampled_from([k.value for k in sniff.Kind] + ["unreadable"]),
    platform=st.sampled_from(PLATFORMS), shebang=st.sampled_from(PATHS), interpreter=st.sampled_from(PATHS),
    error=st.sampled_from(["", "x: no such file", "the layers did not arrive within 3s"]), truncated=st.booleans(),
    variant_guessed=st.booleans(), size=st.sampled_from([-1, 0, 52, 4096, 2**40]), missing=st.sampled_from(PATHS),
    libc=st.sampled_from(["", "musl", "glibc"]), image_libc=st.sampled_from(["", "musl", "glibc"]),
    isa_level=st.integers(0, 9), load_align=st.sampled_from([0, 1, 4096, 65536, 2**63]),
    damage=st.sampled_from(["", "cut short"]), requested_path=st.sampled_from(PATHS),
)
hosts = st.builds(
    HostFacts, st.sampled_from(["h", ""]), st.sampled_from(PLATFORMS), page_size=st.sampled_from([0, 4096, 16384, 65536]),
    can_run_32bit=st.booleans(), runnable_platforms=st.lists(st.sampled_from(PLATFORMS), max_size=3).map(tuple),
    cpu_level=st.sampled_from(["", "x86-64-v1", "x86-64-v3", "x86-64-v9", "armv6", "bogus"]),
    emulators=st.lists(st.builds(Emulator, st.just("qemu"), st.sampled_from(PLATFORMS), st.just("/q"),
                                 st.sampled_from(["", "F", "FPOC"]), st.booleans()), max_size=2).map(tuple),
)


@settings(max_examples=400, deadline=None)
@given(binaries, hosts, st.sampled_from(list(lookalike.Trigger)), st.sampled_from(["", "cpu does not support x86-64-v3",
       "<jemalloc>: Unsupported system page size", "cpu does not support x86-64-v99"]),
       st.sampled_from(["", "linux/amd64", "linux/arm64"]), st.booleans(), st.booleans(), st.booleans())
def test_the_judges_answer_any_facts(binary: BinaryFacts, host: HostFacts, trigger: lookalike.Trigger, words: str,
                                     declared: str, missing: bool, not_found: bool, crlf: bool) -> None:
    image = ImageFacts("app:1", "sha256:x", declared_platform=declared)
    found = lookalike.judge(binary, host, trigger, words)
    assert found is None or found.cause in CAUSES
    lookalike.emulated(binary, host)
    d = classify.classify(binary, host, image)
    assert d.cause in CAUSES or d.cause == classify.RUNNABLE
    if missing:
        binary = replace(binary, missing="/bin/sh\r" if crlf else (binary.interpreter or "/lib/ld-musl-x86_64.so.1"))
    entry = runs.Entrypoint(binary, not_found=not_found)
    v = runs.judge(entry, host, image)
    assert v.status in (runs.RUNS, runs.FAILS, runs.UNKNOWN)
    assert v.status != runs.FAILS or v.cause
