"""The runtime's words for a containerd container: the end of its log file.

For a pod, the kubelet has the CRI plugin write each attempt's output to
``/var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log``, one line per
record in the CRI format ``<RFC 3339 time> <stdout|stderr> <P|F> <text>`` (``P``
a partial line continued by the next record, ``F`` its end):

    2026-12-05T00:33:58.439309176Z stderr F exec /app: exec format error

For a plain containerd task started with a ``file://`` log URI, the file holds
the raw output. Only the last ``TAIL_BYTES`` of either are read.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

TAIL_BYTES = 64 * 1024
STREAMS = ("stdout", "stderr")


def tail_bytes(path: Path, limit: int = TAIL_BYTES) -> bytes | None:
    """The last ``limit`` bytes of ``path``; ``None`` when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def cri_text(data: bytes) -> str:
    """The output a CRI log holds, one line per record (partial records joined), both streams."""
    lines: list[str] = []
    partial: dict[str, list[str]] = {}
    for raw in data.decode("utf-8", errors="replace").split("\n"):
        fields = raw.split(" ", 3)
        if len(fields) < 3 or fields[1] not in STREAMS:
            continue  # a cut first line, or not a CRI record
        stream, tag = fields[1], fields[2]
        content = fields[3] if len(fields) > 3 else ""
        if tag == "P":
            partial.setdefault(stream, []).append(content)
            continue
        lines.append("".join(partial.pop(stream, [])) + content)
    lines += ["".join(rest) for rest in partial.values()]
    return "\n".join(lines)


def file_uri_path(uri: str) -> Path | None:
    """The file a ``file:///path`` log URI names; ``None`` for fifos, ``binary://`` loggers and the rest."""
    if not uri.startswith("file://"):
        return None
    path = unquote(urlparse(uri).path)
    return Path(path) if path.startswith("/") else None


def cri_log(path: Path) -> str | None:
    data = tail_bytes(path)
    return None if data is None else cri_text(data)


def raw_log(path: Path) -> str | None:
    data = tail_bytes(path)
    return None if data is None else data.decode("utf-8", errors="replace")
