"""Read the head of a file inside a container through the Engine's archive endpoint.

Only the first few KiB are read: the tar stream is parsed as it arrives and the
HTTP response is closed as soon as the header of the file is in hand. Nothing
from the container is ever executed or written to the host's disk.
"""

from __future__ import annotations

import logging
import tarfile
from typing import Any

import docker.errors
import requests.exceptions

from agent.engine.file_reader import HEAD_BYTES, TAIL_MAX_FILE, Entry, FileHead, FileReader
from agent.errors import ContainerGone, DockerUnavailable

__all__ = ["HEAD_BYTES", "TAIL_MAX_FILE", "ContainerFiles", "FileHead"]

logger = logging.getLogger(__name__)

def _message(res: Any) -> str:
    """The engine's error message in a JSON error body, or ""."""
    try:
        return str(res.json().get("message", ""))
    except ValueError:
        return ""


class ContainerFiles(FileReader):
    """Files of one container (running, stopped, or created and never started), through the Engine's archive endpoint."""

    def __init__(self, api: Any, container_id: str, *, head_bytes: int = HEAD_BYTES) -> None:
        self._api = api
        self._id = container_id
        self._head = head_bytes

    def _entry(self, path: str, tail: int = 0) -> Entry:
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
