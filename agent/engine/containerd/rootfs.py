"""Read file heads from a container's root filesystem through the snapshotter's directories.

containerd's snapshotter names the directories a container's root filesystem is
made of (``Snapshots.Mounts``, and the ``rootfs`` of a ``/tasks/create`` event):
for overlay, ``upperdir`` over ``lowerdir=top:...:bottom``; for a single layer or
the native snapshotter, one bind mount. This module reads them as the kernel's
overlayfs would show them, without mounting anything: each path component is
looked up layer by layer with ``lstat`` (whiteouts and opaque directories hide
what is below), symlinks inside the container are resolved by us against the
container's root, never by the host, and at most ``head_bytes`` of a regular
file are read (``O_NOFOLLOW | O_NONBLOCK``). Nothing is written or executed.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.diagnosis import entrypoint
from agent.engine.file_reader import HEAD_BYTES, TAIL_MAX_FILE, Entry, FileReader

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def layer_dirs(mounts: Sequence[tuple[str, str, Sequence[str]]]) -> tuple[Path, ...]:
    """Directories of a root filesystem, top first, from (type, source, options) mounts."""
    out: list[Path] = []
    for kind, source, options in mounts:
        if kind == "overlay":
            upper = [o.split("=", 1)[1] for o in options if o.startswith("upperdir=")]
            lower = [o.split("=", 1)[1] for o in options if o.startswith("lowerdir=")]
            out += [Path(p) for p in upper]
            for spec in lower:
                out += [Path(p) for p in spec.split(":") if p]
        elif kind == "bind" or "bind" in options or "rbind" in options:
            out.append(Path(source))
    return tuple(out)


def lower_dirs(mounts: Sequence[tuple[str, str, Sequence[str]]]) -> tuple[Path, ...]:
    """The image's layers among a container's mounts (overlay's ``lowerdir``): they outlive the container."""
    out: list[Path] = []
    for kind, _source, options in mounts:
        if kind == "overlay":
            for o in options:
                if o.startswith("lowerdir="):
                    out += [Path(p) for p in o.split("=", 1)[1].split(":") if p]
    return tuple(out)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


class LayeredFiles(FileReader):
    """The files of a root filesystem made of ``layers`` (top first), as overlayfs shows them."""

    def __init__(self, layers: Sequence[Path], *, head_bytes: int = HEAD_BYTES,
                 lstat: Callable[[Path], os.stat_result] = os.lstat) -> None:
        self._layers = tuple(layers)
        self._head = head_bytes
        self._stat = lstat

    def _lstat(self, path: Path) -> os.stat_result | None:
        try:
            return self._stat(path)
        except OSError:
            return None

    @property
    def usable(self) -> bool:
        """Whether any of its directories can still be read (a removed container's upper dir is gone)."""
        return any(os.path.isdir(p) for p in self._layers)

    def _lookup(self, parts: Sequence[str]) -> tuple[Path, os.stat_result] | None:
        """The topmost layer's entry for ``parts``, honouring whiteouts and opaque directories."""
        for layer in self._layers:
            hidden = False
            for depth in range(1, len(parts)):  # ancestors in this layer
                st = self._lstat(layer.joinpath(*parts[:depth]))
                if st is None:
                    continue
                if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    hidden = True  # deleted or replaced by a file in this layer
                    break
            if hidden:
                return None
            path = layer.joinpath(*parts)
            st = self._lstat(path)
            if st is not None:
                return None if _is_whiteout(st) else (path, st)
            if any(_opaque(layer.joinpath(*parts[:d])) for d in range(1, len(parts))):
                return None  # an opaque directory hides the layers below
        return None

    def _entry(self, path: str, tail: int = 0) -> Entry:
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        resolved: list[str] = []
        links = 0
        while parts:
            name, parts = parts[0], parts[1:]
            if name == "..":
                resolved = resolved[:-1]
                continue
            found = self._lookup([*resolved, name])
            if found is None:
                return ("missing", "", 0, -1, b"")
            host_path, st = found
            if not parts:
                return self._final(host_path, st, tail)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > entrypoint.MAX_SYMLINKS:
                    return ("error", f"{path}: too many levels of symbolic links", 0, -1, b"")
                target = entrypoint.follow("/" + "/".join([*resolved, name]), os.readlink(host_path))
                parts = [p for p in target.split("/") if p] + parts
                resolved = []
                continue
            if not stat.S_ISDIR(st.st_mode):
                return ("missing", "", 0, -1, b"")  # ENOTDIR
            resolved.append(name)
        return ("dir", "", 0, -1, b"")

    def _final(self, host_path: Path, st: os.stat_result, tail: int = 0) -> Entry:
        if stat.S_ISLNK(st.st_mode):
            return ("link", os.readlink(host_path), 0, -1, b"")
        if stat.S_ISDIR(st.st_mode):
            return ("dir", "", 0, -1, b"")
        if not stat.S_ISREG(st.st_mode):
            return ("other", "", stat.S_IMODE(st.st_mode), -1, b"")
        try:
            fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return ("missing", "", 0, -1, b"")
            return ("error", f"cannot read {host_path}: {e.strerror}", 0, -1, b"")
        try:
            head = os.read(fd, self._head)
            end = b""
            if tail and len(head) < st.st_size <= TAIL_MAX_FILE:
                start = max(len(head), st.st_size - tail)  # as the archive reader: the bytes after the head
                end = os.pread(fd, st.st_size - start, start)
            return ("file", head, stat.S_IMODE(st.st_mode), st.st_size, end)
        finally:
            os.close(fd)
