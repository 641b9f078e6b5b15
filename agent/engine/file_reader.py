"""The file-reading interface every engine gives diagnosis (fsspec's AbstractFileSystem, in small).

An engine implements one method, ``_entry(path)``: what is at ``path`` inside the
container's root filesystem, without following a final symlink. ``read`` (follow
symlinks inside the container, bounded) and ``find`` (look ``argv[0]`` up the way
runc does) are the same for every engine, so the file diagnosis judges is found
alike whether Docker's archive endpoint or containerd's snapshot directories
answer. Only the head of a file is ever read; nothing is executed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from agent.diagnosis import entrypoint

HEAD_BYTES = 4096

# What ``_entry`` answers: ("file", head, mode), ("link", target, 0), ("dir", "", 0),
# ("missing", "", 0), ("other", "", 0) or ("error", message, 0).
Entry = tuple[str, bytes | str, int]


@dataclass(frozen=True)
class FileHead:
    """What was found at a path: its bytes, or why there are none."""

    path: str  # the path finally read, after symlinks
    data: bytes = b""
    error: str = ""  # "" when data is valid
    missing: bool = False
    mode: int = 0  # permission bits of a regular file

    @property
    def executable(self) -> bool:
        """What Go's ``exec.LookPath`` (runc) accepts: a file with an execute bit."""
        return not self.error and bool(self.mode & 0o111)


class FileReader(abc.ABC):
    """Reads the heads of files inside one container's root filesystem."""

    @abc.abstractmethod
    def _entry(self, path: str) -> Entry:
        """What is at ``path`` (symlinks in its directories resolved, the last one not)."""

    def read(self, path: str, *, max_links: int = entrypoint.MAX_SYMLINKS) -> FileHead:
        """The head of ``path``, following symlinks inside the container.

        Raises ContainerGone if the container disappears meanwhile."""
        current = path
        for _ in range(max_links + 1):
            kind, value, mode = self._entry(current)
            if kind == "file" and isinstance(value, bytes):
                return FileHead(current, value, mode=mode)
            if kind == "link":
                current = entrypoint.follow(current, str(value))
                continue
            if kind == "missing":
                return FileHead(current, error=f"{current}: no such file", missing=True)
            if kind == "dir":
                return FileHead(current, error=f"{current} is a directory")
            if kind == "error":
                return FileHead(current, error=str(value))
            return FileHead(current, error=f"{current} is not a regular file")
        return FileHead(current, error=f"{path}: too many levels of symbolic links (>{max_links})")

    def find(self, argv0: str, path_env: str, workdir: str = "/") -> tuple[str, FileHead]:
        """Look ``argv0`` up like the runtime does; returns (requested path, head).

        A bare name is searched in ``PATH`` the way runc's ``exec.LookPath`` does:
        directories, FIFOs, devices, files without an execute bit and symlink
        loops are passed over. A name with a slash is taken as it is.
        """
        last = FileHead(argv0, error=f"{argv0}: empty entrypoint", missing=True)
        found = entrypoint.candidates(argv0, path_env, workdir)
        if "/" in argv0:
            return (found[0], self.read(found[0])) if found else (argv0, last)
        first: tuple[str, FileHead] | None = None
        for candidate in found:
            head = self.read(candidate)
            if head.executable:
                return candidate, head
            if first is None and not head.missing:
                first = (candidate, head)
            last = head
        return first or (argv0, last)
