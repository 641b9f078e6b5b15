"""Build Docker images from scratch: a docker-archive tarball with a
manifest.json, an image config naming the platform, and one layer; loaded with
``docker load``. No registry is needed."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EM_386, EM_ARM, EM_X86_64, EM_AARCH64, EM_S390, EM_PPC64, EM_RISCV = 3, 40, 62, 183, 22, 21, 243


def elf(machine: int, *, bits: int = 64, little: bool = True) -> bytes:
    """A minimal ELF executable header with one PT_LOAD program header.

    With a foreign ``e_machine`` the kernel answers execve() with ENOEXEC: a
    genuine exec format error.
    """
    end = "<" if little else ">"
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1, 0]) + b"\0" * 8
    if bits == 64:
        hdr = ident + struct.pack(end + "HHIQQQIHHHHHH", 2, machine, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0)
        ph = struct.pack(end + "IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 120, 120, 0x1000)
    else:
        hdr = ident + struct.pack(end + "HHIIIIIHHHHHH", 2, machine, 1, 0x8054, 52, 0, 0x05000400 if machine == EM_ARM else 0, 52, 32, 1, 0, 0, 0)
        ph = struct.pack(end + "IIIIIIII", 1, 0, 0x8000, 0x8000, 84, 84, 5, 0x1000)
    return hdr + ph


def pe() -> bytes:
    body = bytearray(b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40))
    body += b"PE\0\0" + struct.pack("<HH", 0x8664, 1) + b"\0" * 16
    return bytes(body)


@dataclass(frozen=True)
class File:
    path: str
    data: bytes = b""
    mode: int = 0o755
    link: str = ""  # symlink target
    fifo: bool = False  # a named pipe (with ``mode``) instead of a regular file


def _layer(files: Sequence[File]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for f in files:
            parts = f.path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(ti)
            ti = tarfile.TarInfo(f.path.strip("/"))
            if f.link:
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, f.link, 0o777
                tar.addfile(ti)
            elif f.fifo:
                ti.type, ti.mode = tarfile.FIFOTYPE, f.mode
                tar.addfile(ti)
            else:
                ti.size, ti.mode = len(f.data), f.mode
                tar.addfile(ti, io.BytesIO(f.data))
    return buf.getvalue()


def archive(
    tag: str,
    files: Sequence[File],
    *,
    architecture: str,
    variant: str = "",
    os: str = "linux",
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    labels: Mapping[str, str] | None = None,
) -> bytes:
    """A ``docker load``-able tarball holding one image."""
    layer = _layer(files)
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": os,
        "config": {"Env": list(env), "Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "enoexec tests"}],
    }
    if variant:
        config["variant"] = variant
    if entrypoint is not None:
        config["config"]["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        config["config"]["Cmd"] = list(cmd)
    cfg = json.dumps(config, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((cfg_name, cfg), ("layer.tar", layer), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out.getvalue()
