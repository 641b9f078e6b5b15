"""Find the file a runtime would execute in an image, reading its layers only as far as needed.

An image's filesystem is its layers stacked, the top one first: a path is what
the highest layer that says anything about it says — a file, a directory, a
symlink (followed from the top again), a whiteout (``.wh.NAME``: deleted), or an
opaque directory (``.wh..wh..opq``: nothing below it shows through). Each layer
is streamed once, and only until it has answered: a file's first bytes end the
walk, while "this layer does not have it" needs the layer read whole (the answer
then says which layers were). A layer's stream is kept open between questions, so
a PATH walk or a symlink read from the same layers costs nothing twice.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from collector.check.tarwalk import DIR, FILE, HARDLINK, SYMLINK, Entry, LayerWalk, norm
from enoexec.judge import reading, sniff

MAX_SYMLINKS = 40
HEAD_BYTES = 4096
MAX_ENTRIES = 1_000_000  # per layer: more is refused rather than held in memory
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Opener = Callable[[], AsyncIterator[bytes]]  # a layer blob's compressed bytes, from its start


class RootfsError(Exception):
    """A layer could not be read (its message says why)."""


@dataclass
class Budget:
    """Bytes read so far across one check, and the most it may read."""

    limit: int
    read: int = 0
    whole: list[str] = field(default_factory=list)  # "digest (N bytes)" of layers read to their end
    to_end: list[str] = field(default_factory=list)  # "path (N bytes)" of files read to their end (their tail)

    def take(self, n: int) -> None:
        self.read += n
        if self.read > self.limit:
            raise RootfsError(f"stopped after reading {self.read} bytes of layers (the limit is {self.limit})")


@dataclass(frozen=True)
class Found:
    """Where a path led: a file and its head, or why there is none."""

    path: str  # the path finally reached, after symlinks
    head: bytes = b""
    mode: int = 0
    size: int = -1
    tail: bytes = b""  # its last bytes, when asked for and it is a 32-bit ARM ELF (see ``needs_tail``)
    error: str = ""  # "" when ``head`` is the file's
    missing: bool = False
    is_dir: bool = False

    @property
    def executable(self) -> bool:
        """What runc's ``exec.LookPath`` accepts: a regular file with an execute bit."""
        return not self.error and bool(self.mode & 0o111)


def needs_tail(head: bytes, size: int) -> bool:
    """Read this file to its end? A 32-bit ARM ELF (up to ``reading.TAIL_MAX_FILE``) whose head
    does not say its variant: its ``.ARM.attributes`` sit near the end."""
    if not len(head) < size <= reading.TAIL_MAX_FILE:
        return False
    s = sniff.sniff(head)
    return s.kind == sniff.Kind.ELF and s.platform.startswith("linux/arm/") and s.variant_guessed


class Layer:
    """What one layer says, learned by streaming it as far as questions need."""

    def __init__(self, digest: str, size: int, opener: Opener, budget: Budget) -> None:
        self.digest, self.size = digest, size
        self._open, self._budget = opener, budget
        self.entries: dict[str, Entry] = {}
        self.whiteouts: set[str] = set()
        self.opaque: set[str] = set()
        self.complete = False
        self._wanted: set[str] = set()
        self._tails: set[str] = set()
        self._stream: AsyncIterator[bytes] | None = None
        self._walk: LayerWalk | None = None
        self._pending: list[Entry] = []

    async def answer(self, path: str, tail: bool = False) -> tuple[str, Entry | None]:
        """("file"|"dir"|"symlink"|"hardlink", entry) / ("redirect", entry of an ancestor symlink) /
        ("gone", None) / ("notdir", None) / ("absent", None): look lower. ``tail``: a file
        that ``needs_tail`` comes with its last bytes."""
        self._wanted.add(path)
        if tail:
            self._tails.add(path)
        while True:
            said = self._says(path)
            if said is not None:
                kind, entry = said
                if kind == FILE and entry is not None and (entry.head is None or (
                        tail and entry.tail is None and needs_tail(entry.head, entry.size))):
                    await self._reread()  # passed before it was asked for (or its end was)
                    continue
                return said
            if self.complete:
                under_opaque = any(path.startswith(d.rstrip("/") + "/") for d in self.opaque)
                return ("gone", None) if under_opaque else ("absent", None)
            await self._advance()

    def _says(self, path: str) -> tuple[str, Entry | None] | None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:i])
            if ancestor in self.whiteouts:
                return "gone", None
            e = self.entries.get(ancestor)
            if e is not None:
                if e.type == SYMLINK:
                    return "redirect", e
                if e.type != DIR:
                    return "notdir", None
        if path in self.whiteouts:
            return "gone", None
        e = self.entries.get(path)
        return (e.type, e) if e is not None else None

    async def _reread(self) -> None:
        self._stream, self._walk, self.complete = None, None, False
        self.entries.clear()
        self.whiteouts.clear()
        self.opaque.clear()
        await self._advance()

    async def _advance(self) -> None:
        """Read until at least one more entry is known, or the layer ends."""
        if self._walk is None:
            self._walk = LayerWalk(lambda p: p in self._wanted, HEAD_BYTES,
                                   lambda p, head, size: p in self._tails and needs_tail(head, size), reading.TAIL_BYTES)
            self._stream = self._open().__aiter__()
        assert self._stream is not None
        while True:
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                if self._walk.cut_short:  # not "no such file": the blob ended inside an entry
                    raise RootfsError(f"layer {self.digest} is truncated: it ends inside a file or header") from None
                self._finish()
                return
            self._budget.take(len(chunk))
            got = False
            for entry in self._walk.feed(chunk):
                self._record(entry)
                got = True
            if self._walk.ended:
                self._finish()
                return
            if got:
                return

    async def aclose(self) -> None:
        """Let go of a stream left open (the walk stopped early): its connection is released."""
        stream, self._stream = self._stream, None
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()

    def _finish(self) -> None:
        if not self.complete:
            self.complete = True
            said = f"{self.digest} ({self.size} bytes)"
            if said not in self._budget.whole:
                self._budget.whole.append(said)
            self._stream = None

    def _record(self, entry: Entry) -> None:
        directory, name = posixpath.split(entry.path)
        if name == ".wh..wh..opq":
            self.opaque.add(directory)
        elif name.startswith(".wh."):
            self.whiteouts.add(norm(posixpath.join(directory, name[4:])))
        else:
            if len(self.entries) >= MAX_ENTRIES:
                raise RootfsError(f"layer {self.digest} has more than {MAX_ENTRIES} entries")
            self.entries[entry.path] = entry


def follow(link_path: str, target: str) -> str:
    """Where the symlink at ``link_path`` pointing at ``target`` leads, inside the image."""
    base = posixpath.dirname(link_path) if not target.startswith("/") else "/"
    return norm(posixpath.join(base, target))


class Rootfs:
    """An image's stacked layers (given bottom first, as manifests list them)."""

    def __init__(self, layers: Sequence[tuple[str, int, Opener]], budget: Budget) -> None:
        self.budget = budget
        self._top_first = [Layer(d, s, o, budget) for d, s, o in reversed(layers)]

    async def aclose(self) -> None:
        for layer in self._top_first:
            await layer.aclose()

    async def read(self, path: str, *, tail: bool = False) -> Found:
        """The head of ``path``, following symlinks; never raises for a missing file.
        ``tail``: a 32-bit ARM ELF whose head does not say its variant is read to its
        end for its last ``reading.TAIL_BYTES`` (said in ``Budget.to_end``)."""
        current, start, hops = norm(path), 0, 0
        while hops <= MAX_SYMLINKS:
            for i in range(start, len(self._top_first)):
                kind, entry = await self._top_first[i].answer(current, tail)
                if kind == "absent":
                    continue
                if kind in ("gone", "notdir"):
                    return Found(current, error=f"{current}: no such file", missing=True)
                assert entry is not None
                if kind == FILE:
                    if entry.tail is not None and f"{current} ({entry.size} bytes)" not in self.budget.to_end:
                        self.budget.to_end.append(f"{current} ({entry.size} bytes)")
                    return Found(current, entry.head or b"", entry.mode, entry.size, entry.tail or b"")
                if kind == DIR:
                    return Found(current, error=f"{current} is a directory", is_dir=True)
                if kind == "redirect":  # an ancestor is a symlink: rewrite the path through it
                    rest = current[len(entry.path):]
                    current, start = norm(follow(entry.path, entry.linkname) + rest), 0
                elif kind == SYMLINK:
                    current, start = follow(current, entry.linkname), 0
                elif kind == HARDLINK:  # names a file of this layer (or one below)
                    current, start = norm(entry.linkname), i
                else:
                    return Found(current, error=f"{current} is not a regular file")
                hops += 1
                break
            else:
                return Found(current, error=f"{current}: no such file", missing=True)
        return Found(current, error=f"{path}: too many levels of symbolic links (>{MAX_SYMLINKS})")

    async def find(self, argv0: str, path_env: str = DEFAULT_PATH, workdir: str = "/", *,
                   tail: bool = False) -> tuple[str, Found]:
        """Look ``argv0`` up as runc does (Go's ``exec.LookPath``): a name with a slash is
        taken as it is; a bare name is searched in ``PATH``, passing over directories,
        files without an execute bit and what cannot be read. Returns (requested, found)."""
        if not argv0:
            return "", Found("", error="the image names no entrypoint or command", missing=True)
        if "/" in argv0:
            target = norm(posixpath.join(workdir or "/", argv0))
            return target, await self.read(target, tail=tail)
        first: tuple[str, Found] | None = None
        last = Found(argv0, error=f"{argv0}: executable file not found in $PATH", missing=True)
        for directory in path_env.split(":"):
            candidate = norm(posixpath.join(workdir or "/", directory or ".", argv0))
            found = await self.read(candidate, tail=tail)
            if found.executable:
                return candidate, found
            if first is None and not found.missing:
                first = (candidate, found)
        return first or (argv0, last)
