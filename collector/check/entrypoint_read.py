"""Read the file an image's runtime would execute, per platform, from its config and layers.

Source-agnostic: a registry (:mod:`collector.check.registry_image`) or a local
archive (:mod:`collector.check.archive`) hands over each platform's config and
layer openers; this module works out argv (Entrypoint + Cmd), finds the file in
the layers (PATH walk, symlinks, whiteouts: :mod:`collector.check.rootfs`),
sniffs its head with the agent's sniffer, and follows a script's interpreter and
an ELF's loader the way the kernel would. Results are cached by manifest digest.
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
from enoexec.judge import sniff
from enoexec.judge.runs import MISSING_INTERPRETER, MISSING_LOADER, Entrypoint

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
        return BinaryFacts(found.path, "unreadable", source="image", requested_path=requested, error=found.error)
    s = sniff.sniff(found.head)
    return BinaryFacts(found.path, s.kind.value, s.platform, s.shebang, s.interpreter, s.description, "image",
                       requested, truncated=s.truncated, variant_guessed=s.variant_guessed)


async def read_entrypoint(rootfs: Rootfs, config: dict[str, Any]) -> tuple[tuple[str, ...], Entrypoint]:
    """Find and judge-ready the entrypoint in ``rootfs`` as runc and the kernel would."""
    argv, path_env, workdir = argv_of(config)
    requested, found = await rootfs.find(argv[0] if argv else "", path_env, workdir)
    binary = facts(found, requested)
    if found.missing:
        return argv, Entrypoint(binary, not_found=True)
    head = found.head
    for _ in range(MAX_INTERPRETER_DEPTH):
        if binary.kind != "script":
            break
        # As the kernel reads the #! line: a CR before the newline is part of the path ("/bin/sh\r").
        interp, cr_arg = sniff.kernel_interpreter(head), sniff.sniff(head).shebang_cr_arg
        if not interp.startswith("/"):
            break
        inner_found = await rootfs.read(interp)
        if inner_found.missing:
            return argv, Entrypoint(binary, missing=interp, missing_kind=MISSING_INTERPRETER)
        binary = replace(facts(inner_found, interp), shebang=binary.shebang, requested_path=requested)
        if cr_arg:  # "#!/usr/bin/env python3\r": env looks for "python3\r"
            return argv, Entrypoint(binary, missing=cr_arg, missing_kind=MISSING_INTERPRETER)
        head = inner_found.head
    if binary.kind == "elf" and binary.interpreter.startswith("/"):
        loader = await rootfs.read(binary.interpreter)
        if loader.missing:
            return argv, Entrypoint(binary, missing=binary.interpreter, missing_kind=MISSING_LOADER)
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
        return replace(hit, cached=True, bytes_read=0, layers_read_whole=(), seconds=0.0)

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
                        time.monotonic() - started)
    if cache is not None:
        cache.put(read)
    return read


def _unreadable(argv: Sequence[str], why: str) -> Entrypoint:
    path = argv[0] if argv else ""
    return Entrypoint(BinaryFacts(path, "unreadable", source="image", requested_path=path, error=why))
