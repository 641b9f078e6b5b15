"""Read the file an image's runtime would execute, per platform, from its config and layers.

Source-agnostic: a registry (:mod:`collector.check.registry_image`) or a local
archive (:mod:`collector.check.archive`) hands over each platform's config and
layer openers; this module works out argv (Entrypoint + Cmd), finds the file in
the layers (PATH walk, symlinks, whiteouts: :mod:`collector.check.rootfs`),
sniffs its head with the agent's sniffer, and follows a script's interpreter and
an ELF's loader the way the kernel would, with the agent's own steps
(:mod:`enoexec.judge.reading`); a 32-bit ARM ELF is read to its end for its
``.ARM.attributes`` (files up to 64 MiB, said in ``files_read_to_end``). Results are cached by manifest digest.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from collector.check.rootfs import DEFAULT_PATH, Budget, Found, Opener, Rootfs, RootfsError
from collector.check.tarwalk import TarWalkError
from collector.errors import RegistryError, RegistryRefused
from enoexec.facts import BinaryFacts
from enoexec.judge import reading
from enoexec.judge.runs import Entrypoint

MAX_INTERPRETER_DEPTH = 4  # binfmt_script's own recursion limit
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class PlatformImage:
    """One platform of an image, as a source hands it over."""

    platform: str  # as declared (index entry or config)
    manifest_digest: str
    config: dict[str, Any]
    layers: tuple[tuple[str, int, Opener], ...]  # (digest, compressed size, opener), bottom first


@dataclass(frozen=True)
class PlatformRead:
    """What the entrypoint of one platform turned out to be, and what it cost."""

    platform: str
    manifest_digest: str
    argv: tuple[str, ...]
    entry: Entrypoint
    bytes_read: int
    layers_read_whole: tuple[str, ...]
    seconds: float
    cached: bool = False
    files_read_to_end: tuple[str, ...] = ()  # "path (N bytes)": 32-bit ARM ELFs read for their .ARM.attributes


def argv_of(config: dict[str, Any]) -> tuple[tuple[str, ...], str, str]:
    """(argv, PATH, working directory) from an image config's ``config`` section."""
    c = config.get("config") if isinstance(config, dict) else None
    c = c if isinstance(c, dict) else {}  # an image config is untrusted JSON: any shape may come
    entry, cmd, env = c.get("Entrypoint") or [], c.get("Cmd") or [], c.get("Env") or []
    argv = tuple(str(a) for a in [*(entry if isinstance(entry, list) else []), *(cmd if isinstance(cmd, list) else [])])
    path = next((str(e)[5:] for e in (env if isinstance(env, list) else []) if str(e).startswith("PATH=")), DEFAULT_PATH)
    return argv, path, str(c.get("WorkingDir") or "/")


def facts(found: Found, requested: str) -> BinaryFacts:
    if found.error:
        return reading.unreadable(found.path, requested, "image", found.error)
    return reading.facts(found.head, found.size, found.path, requested, "image")


async def read_entrypoint(rootfs: Rootfs, config: dict[str, Any]) -> tuple[tuple[str, ...], Entrypoint]:
    """Find the entrypoint in ``rootfs`` as runc and the kernel would, and read what it
    needs the way the agent does (:mod:`enoexec.judge.reading`): a script's interpreter,
    an ELF's loader (and the other libc's when it is missing), an ARM ELF's end."""
    argv, path_env, workdir = argv_of(config)
    requested, found = await rootfs.find(argv[0] if argv else "", path_env, workdir, tail=True)
    binary = facts(found, requested)
    if found.missing:
        return argv, Entrypoint(binary, not_found=True)
    for _ in range(MAX_INTERPRETER_DEPTH):
        interp = reading.next_interpreter(binary)
        if not interp:
            break
        found = await rootfs.read(interp, tail=True)
        binary = reading.through_interpreter(binary, facts(found, interp), found.missing)
    if reading.wants_tail(binary) and found.tail:
        binary = reading.with_tail(binary, found.head, found.tail, found.size)
    loader_path = reading.loader_of(binary)
    if loader_path:
        loader = await rootfs.read(loader_path)
        if loader.missing:
            family, other = reading.other_loader(binary)
            binary = reading.without_loader(binary, family, bool(other) and not (await rootfs.read(other)).missing)
        elif not loader.error:
            binary = reading.with_loader(binary, loader.head)
    return argv, Entrypoint(binary)


class EntrypointCache:
    """Platform reads by manifest digest (a digest names its content, so an entry never goes stale)."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._items: OrderedDict[str, PlatformRead] = OrderedDict()

    def get(self, digest: str) -> PlatformRead | None:
        """A cached read, marked as such: it cost nothing this time."""
        hit = self._items.get(digest)
        if hit is None:
            return None
        self._items.move_to_end(digest)
        return replace(hit, cached=True, bytes_read=0, layers_read_whole=(), seconds=0.0, files_read_to_end=())

    def put(self, read: PlatformRead) -> None:
        if not read.manifest_digest or read.entry.binary.kind == "unreadable":
            return  # a failure to read may be the network's: ask again next time
        self._items[read.manifest_digest] = read
        self._items.move_to_end(read.manifest_digest)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


async def read_platform(
    image: PlatformImage, *, cache: EntrypointCache | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> PlatformRead:
    """Read one platform's entrypoint within ``max_bytes`` and ``timeout``; failures become
    an ``unreadable`` binary saying why (the answer for that platform is then "unknown")."""
    hit = cache.get(image.manifest_digest) if cache is not None else None
    if hit is not None:
        return hit
    started = time.monotonic()
    budget = Budget(max_bytes)
    rootfs = Rootfs(image.layers, budget)
    argv: tuple[str, ...] = argv_of(image.config)[0]
    try:
        async with asyncio.timeout(timeout):
            argv, entry = await read_entrypoint(rootfs, image.config)
    except TimeoutError:
        entry = _unreadable(argv, f"the layers did not arrive within {timeout:.0f}s ({budget.read} bytes read)"
                            if timeout >= 1 else f"the layers did not arrive within {timeout:.2g}s ({budget.read} bytes read)")
    except RegistryRefused:
        raise
    except (RootfsError, TarWalkError, RegistryError) as e:
        entry = _unreadable(argv, str(e))
    finally:
        await rootfs.aclose()
    read = PlatformRead(image.platform, image.manifest_digest, argv, entry, budget.read, tuple(budget.whole),
                        time.monotonic() - started, files_read_to_end=tuple(budget.to_end))
    if cache is not None:
        cache.put(read)
    return read


def _unreadable(argv: Sequence[str], why: str) -> Entrypoint:
    path = argv[0] if argv else ""
    return Entrypoint(BinaryFacts(path, "unreadable", source="image", requested_path=path, error=why))
