"""The file-reading interface every engine gives diagnosis (fsspec's AbstractFileSystem, in small).

An engine implements one method, ``_entry(path, tail)``: what is at ``path`` inside
the container's root filesystem, without following a final symlink. ``read``
(follow symlinks inside the container, bounded) and ``find`` (look ``argv[0]`` up
the way runc does) are the same for every engine, so the file diagnosis judges is
found alike whether Docker's archive endpoint or containerd's snapshot directories
answer. Only the head of a file (and its tail when asked) is ever read; nothing is
executed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from agent.diagnosis import entrypoint
from enoexec.judge import reading

HEAD_BYTES = 4096
# The end of a file (where an ELF keeps its section headers and .ARM.attributes) is
# read only when asked, and only from files up to this size: the archive endpoint
# streams the whole file to get there (the one bound check's reader uses too).
TAIL_MAX_FILE = reading.TAIL_MAX_FILE


@dataclass(frozen=True)
class FileHead:
    """What was found at a path: its bytes, or why there are none."""

    path: str  # the path finally read, after symlinks
    data: bytes = b""
    error: str = ""  # "" when data is valid
    missing: bool = False
    mode: int = 0  # permission bits of a regular file, FIFO or device
    size: int = -1  # the file's size from its tar header; -1 unknown
    tail: bytes = b""  # its last bytes, when asked for and the file is longer than the head
    directory: bool = False

    @property
    def executable(self) -> bool:
        """What Go's ``exec.LookPath`` (runc) accepts: any non-directory with an
        execute bit (a FIFO or device too: runc then fails to execute it)."""
        return not self.missing and not self.directory and bool(self.mode & 0o111)


# What ``_entry`` answers: (kind, value, mode, size, tail) with kind "file" (value: the head),
# "link" (value: the target), "dir", "missing", "other" (mode: its bits) or "error" (value: why).
Entry = tuple[str, bytes | str, int, int, bytes]


class FileReader(abc.ABC):
    """Reads the heads of files inside one container's root filesystem."""

    @abc.abstractmethod
    def _entry(self, path: str, tail: int = 0) -> Entry:
        """What is at ``path`` (symlinks in its directories resolved, the last one not)."""

    def read(self, path: str, *, max_links: int = entrypoint.MAX_SYMLINKS, tail: int = 0) -> FileHead:
        """The head of ``path`` (and its last ``tail`` bytes), following symlinks
        inside the container.

        Raises ContainerGone if the container disappears meanwhile."""
        current = path
        for _ in range(max_links + 1):
            kind, value, mode, size, end = self._entry(current, tail)
            if kind == "file" and isinstance(value, bytes):
                return FileHead(current, value, mode=mode, size=size, tail=end)
            if kind == "link":
                current = entrypoint.follow(current, str(value))
                continue
            if kind == "missing":
                return FileHead(current, error=f"{current}: no such file", missing=True)
            if kind == "dir":
                return FileHead(current, error=f"{current} is a directory", directory=True)
            if kind == "error":
                return FileHead(current, error=str(value))
            return FileHead(current, error=f"{current} is not a regular file", mode=mode)
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
