"""Walk a layer blob as it arrives: gunzip and parse tar incrementally. Sans-IO, pure.

Feed compressed chunks to :class:`LayerWalk`; it yields each tar entry as soon as
its header is in hand, or — for an entry whose head was asked for — as soon as its
first ``head_bytes`` are. The caller stops feeding whenever it knows enough, so a
file at the front of a layer costs a few KiB however large the layer is. Handles
ustar and GNU names, PAX ``path``/``linkpath``, gzip (also several members) and
uncompressed tar; anything else is a :class:`TarWalkError`.
"""

from __future__ import annotations

import posixpath
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

BLOCK = 512
MAX_META = 1024 * 1024  # a PAX or GNU long-name record larger than this is refused
_STEP = 256 * 1024  # decompress at most this much per step, so a gzip bomb never sits in memory

FILE, DIR, SYMLINK, HARDLINK, OTHER = "file", "dir", "symlink", "hardlink", "other"
_TYPES = {b"0": FILE, b"\0": FILE, b"7": FILE, b"5": DIR, b"2": SYMLINK, b"1": HARDLINK}


class TarWalkError(ValueError):
    """The blob is not a gzip or plain tar stream we can read."""


@dataclass(frozen=True)
class Entry:
    path: str  # absolute, normalised: "/usr/bin/app"
    type: str  # FILE, DIR, SYMLINK, HARDLINK or OTHER
    mode: int = 0
    size: int = 0
    linkname: str = ""
    head: bytes | None = None  # the first bytes, when they were asked for
    tail: bytes | None = None  # the last bytes, when asked for and ``want_tail`` took the head


def norm(name: str) -> str:
    """``./usr/bin/`` -> ``/usr/bin``; never above ``/``."""
    return "/" + posixpath.normpath("/" + name).lstrip("/") if name.strip("./") else "/"


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space] or b"0")
        if length <= 0:
            break
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


WantTail = Callable[[str, bytes, int], bool]  # (path, head, size): read this file to its end?


class TarParser:
    """Push parser over uncompressed tar bytes.

    A file whose head was asked for is yielded once its head is in hand; when
    ``want_tail`` takes that head, only once its last ``tail_bytes`` are (the
    whole file passes through, ``tail_bytes`` of it kept)."""

    def __init__(self, want_head: Callable[[str], bool], head_bytes: int, want_tail: WantTail | None = None,
                 tail_bytes: int = 0) -> None:
        self._want = want_head
        self._head_bytes = head_bytes
        self._want_tail = want_tail
        self._tail_bytes = tail_bytes
        self._buf = bytearray()
        self._skip = 0  # data (and padding) bytes of the current entry still to pass over
        self._data_left = 0  # of those, the entry's own data bytes
        self._capture: tuple[Entry, bytearray, int] | None = None  # entry, head so far, bytes wanted
        self._tailing: tuple[Entry, bytes, bytearray] | None = None  # entry, head, last bytes so far
        self._meta: tuple[bytes, int] | None = None  # (type, size) of a PAX/GNU record being collected
        self._override: dict[str, str] = {}
        self.ended = False

    @property
    def inside_entry(self) -> bool:
        """Stopped part-way through a header, a metadata record or a file's data."""
        return bool(self._buf or self._skip or self._meta is not None or self._capture is not None)

    def feed(self, data: bytes) -> Iterator[Entry]:
        self._buf += data
        while not self.ended:
            if self._skip:
                n = min(self._skip, len(self._buf))
                if not n:
                    return
                own = min(n, self._data_left)  # of the entry's data, not its padding
                if self._capture is not None:
                    entry, head, wanted = self._capture
                    head += self._buf[: min(n, wanted - len(head))]
                    if len(head) >= wanted:
                        self._capture = None
                        if self._want_tail is not None and self._want_tail(entry.path, bytes(head), entry.size):
                            self._tailing = (entry, bytes(head), bytearray())
                        else:
                            yield Entry(entry.path, entry.type, entry.mode, entry.size, entry.linkname, bytes(head))
                if self._tailing is not None:
                    entry, head_bytes, last = self._tailing
                    last += self._buf[:own]
                    if len(last) > 2 * self._tail_bytes:
                        del last[: len(last) - self._tail_bytes]
                    if own == self._data_left:
                        self._tailing = None
                        yield Entry(entry.path, entry.type, entry.mode, entry.size, entry.linkname, head_bytes,
                                    bytes(last[-self._tail_bytes :]))
                self._data_left -= own
                del self._buf[:n]
                self._skip -= n
                continue
            if self._meta is not None:
                kind, size = self._meta
                padded = -(-size // BLOCK) * BLOCK
                if len(self._buf) < padded:
                    return
                record = bytes(self._buf[:size])
                del self._buf[:padded]
                self._meta = None
                if kind == b"x":
                    pax = _pax(record)
                    if "path" in pax:
                        self._override["path"] = pax["path"]
                    if "linkpath" in pax:
                        self._override["linkpath"] = pax["linkpath"]
                elif kind == b"L":
                    self._override["path"] = _text(record)
                elif kind == b"K":
                    self._override["linkpath"] = _text(record)
                continue
            if len(self._buf) < BLOCK:
                return
            header = bytes(self._buf[:BLOCK])
            del self._buf[:BLOCK]
            yield from self._header(header)

    def _header(self, header: bytes) -> list[Entry]:
        """The entries a header completes (none, or one unless its head is still to come)."""
        if header == bytes(BLOCK):
            self.ended = True
            return []
        try:
            size = _octal(header[124:136])
            mode = _octal(header[100:108])
        except ValueError as e:
            raise TarWalkError(f"not a tar header ({e})") from None
        typeflag = header[156:157]
        if typeflag in (b"x", b"L", b"K", b"g"):
            if size > MAX_META:
                raise TarWalkError(f"a tar metadata record of {size} bytes")
            if typeflag == b"g":
                self._skip = -(-size // BLOCK) * BLOCK
            else:
                self._meta = (typeflag, size)
            return []
        name = _text(header[0:100])
        if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
            name = _text(header[345:500]) + "/" + name
        name = self._override.pop("path", name)
        linkname = self._override.pop("linkpath", _text(header[157:257]))
        kind = _TYPES.get(typeflag, OTHER)
        if kind in (SYMLINK, HARDLINK, DIR):
            size = 0
        entry = Entry(norm(name), kind, mode & 0o7777, size, linkname)
        self._skip = -(-size // BLOCK) * BLOCK
        self._data_left = size
        if kind == FILE and self._want(entry.path):
            wanted = min(size, self._head_bytes)
            if wanted == 0:
                return [Entry(entry.path, FILE, entry.mode, size, "", b"")]
            self._capture = (entry, bytearray(), wanted)
            return []
        return [entry]


class LayerWalk:
    """Compressed layer bytes in, tar entries out (see the module's docstring)."""

    def __init__(self, want_head: Callable[[str], bool], head_bytes: int = 4096, want_tail: WantTail | None = None,
                 tail_bytes: int = 0) -> None:
        self._tar = TarParser(want_head, head_bytes, want_tail, tail_bytes)
        self._gzip: bool | None = None
        self._inflate = zlib.decompressobj(wbits=31)

    @property
    def ended(self) -> bool:
        return self._tar.ended

    @property
    def cut_short(self) -> bool:
        """The bytes fed so far stop inside an entry (or a gzip stream): a truncated blob, if no more come."""
        return not self._tar.ended and (self._tar.inside_entry or bool(self._gzip and not self._inflate.eof))

    def feed(self, chunk: bytes) -> Iterator[Entry]:
        if self._gzip is None:
            if not chunk:
                return
            self._gzip = chunk[:2] == b"\x1f\x8b"
            if not self._gzip and chunk[:4] == b"\x28\xb5\x2f\xfd":
                raise TarWalkError("a zstd-compressed layer, which this check cannot read yet")
        if not self._gzip:
            yield from self._tar.feed(chunk)
            return
        data = chunk
        while data and not self._tar.ended:
            try:
                out = self._inflate.decompress(data, _STEP)
            except zlib.error as e:
                raise TarWalkError(f"corrupt gzip stream ({e})") from None
            yield from self._tar.feed(out)
            if self._inflate.unconsumed_tail:
                data = self._inflate.unconsumed_tail
            elif self._inflate.eof and self._inflate.unused_data:
                data = self._inflate.unused_data  # a second gzip member
                self._inflate = zlib.decompressobj(wbits=31)
            else:
                data = b""
