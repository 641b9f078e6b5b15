"""Read and sniff the file a containerd container executes, from its snapshot directories.

The same lookup and sniffing as on Docker (``agent.engine.binaries.inspect_binary``
over the ``FileReader`` interface), with the same cache per (image id, argv,
named path): a crash loop costs one read. A container whose snapshot is gone is
read from its image's layers, as the snapshotter mounted them for it; no helper
container or view snapshot is ever made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from agent.engine.binaries import inspect_binary
from agent.engine.containerd.containers import ContainerdContainers
from agent.model import BinaryFacts


class SnapshotBinaryReader:
    def __init__(self, containers: ContainerdContainers, *, cache_size: int = 512) -> None:
        self._containers = containers
        self._cache: OrderedDict[tuple[str, tuple[str, ...], str, bool], BinaryFacts] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.archive_reads = 0

    def read(self, image_id: str, argv: tuple[str, ...], *, container_id: str | None, path_env: str, workdir: str,
             named_path: str = "", deep: bool = False) -> BinaryFacts:
        key = (image_id, argv, named_path, deep)
        with self._lock:
            if image_id and key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        self.archive_reads += 1
        argv0 = argv[0] if argv else ""
        files, source = (self._containers.files(container_id), "container") if container_id else (None, "")
        if files is None:
            files, source = self._containers.image_files(image_id), "image"
        if files is None:
            return BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0,
                               error="neither the container's snapshot nor its image's layers can be read here")
        facts = inspect_binary(files, argv0, path_env, workdir, source, named_path, deep=deep)
        if facts.kind != "unreadable" and image_id:  # no image id: no key that names this file
            with self._lock:
                self._cache[key] = facts
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return facts
