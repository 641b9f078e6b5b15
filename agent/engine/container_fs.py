"""Read the head of a file inside a container through the Engine's archive endpoint.

Only the first few KiB are read: the tar stream is parsed as it arrives and the
HTTP response is closed as soon as the header of the file is in hand. Nothing
from the container is ever executed or written to the host's disk.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis import entrypoint
from agent.errors import ContainerGone, DockerUnavailable
from enoexec.judge import reading

logger = logging.getLogger(__name__)

HEAD_BYTES = 4096
# The end of a file (where an ELF keeps its section headers and .ARM.attributes) is
# read only when asked, and only from files up to this size: the archive endpoint
# streams the whole file to get there.
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


def _message(res: Any) -> str:
    """The engine's error message in a JSON error body, or ""."""
    try:
        return str(res.json().get("message", ""))
    except ValueError:
        return ""


class ContainerFiles:
    """Files of one container (running, stopped, or created and never started)."""

    def __init__(self, api: Any, container_id: str, *, head_bytes: int = HEAD_BYTES) -> None:
        self._api = api
        self._id = container_id
        self._head = head_bytes

    def _entry(self, path: str, tail: int = 0) -> tuple[str, bytes | str, int, int, bytes]:
        """(kind, value, mode, size, tail): ("file", head, ...) / ("link", target, ...) /
        ("dir", "", ...) / ("missing", "", ...) / ("other", "", mode, ...)."""
        url = self._api._url("/containers/{0}/archive", self._id)
        try:
            res = self._api._get(url, params={"path": path}, stream=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise DockerUnavailable(f"cannot read {path} from container {self._id[:12]}: {e}") from e
        try:
            if res.status_code == 404:
                if "no such container" in _message(res).lower():
                    raise ContainerGone(f"container {self._id[:12]} was removed while it was being read")
                return "missing", "", 0, -1, b""
            if res.status_code == 409:
                # "container is marked for removal" (docker run --rm): read the image instead.
                raise ContainerGone(f"container {self._id[:12]} is being removed: {_message(res)}")
            self._api._raise_for_status(res)
            res.raw.decode_content = True  # the engine may gzip the tar stream
            with tarfile.open(fileobj=res.raw, mode="r|") as tar:
                member = tar.next()
                if member is None:
                    return "missing", "", 0, -1, b""
                if member.issym():
                    return "link", member.linkname, 0, -1, b""
                if member.islnk():
                    return "link", "/" + member.linkname.lstrip("/"), 0, -1, b""
                if member.isdir():
                    return "dir", "", 0, -1, b""
                if not member.isreg():
                    return "other", "", member.mode, -1, b""
                f = tar.extractfile(member)
                head = f.read(self._head) if f else b""
                end = b""
                if f is not None and tail and self._head < member.size <= TAIL_MAX_FILE:
                    skip = max(0, member.size - tail - len(head))
                    while skip > 0:  # a tar stream only reads forward: read and drop
                        chunk = f.read(min(skip, 1 << 20))
                        if not chunk:
                            break
                        skip -= len(chunk)
                    end = f.read(tail)
                return "file", head, member.mode, member.size, end
        except docker.errors.APIError as e:
            detail = str(e.explanation or e)
            if "too many links" in detail:
                # The engine resolves the link while stat-ing it and fails on a loop
                # (evalSymlinksInScope): a property of the file, not an unreachable engine.
                return "error", f"{path}: too many levels of symbolic links", 0, -1, b""
            raise DockerUnavailable(f"cannot read {path} from container {self._id[:12]}: {e.explanation or e}") from e
        except (tarfile.TarError, OSError) as e:
            return "error", f"unreadable archive for {path}: {e}", 0, -1, b""
        finally:
            res.close()

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
