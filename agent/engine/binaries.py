"""Read and sniff the file a container executes, from the container or its image.

The file is the one the runtime named in its message when it named one (runc
and crun name the path after their own ``PATH`` lookup), else ``argv[0]`` looked
up the way runc does. A container that is gone or going away (``--rm``) is read
from its image, through a never-started helper container, with the container's
own argv. Results are cached per (image id, argv, named path), so a crash loop
costs one archive read.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis import entrypoint
from agent.engine.container_fs import ContainerFiles, FileHead
from agent.engine.exits import HELPER_LABEL
from agent.engine.file_reader import FileReader
from agent.errors import ContainerGone, DockerUnavailable
from agent.model import BinaryFacts
from enoexec.judge import reading

logger = logging.getLogger(__name__)


TAIL_BYTES = reading.TAIL_BYTES
damage = reading.damage


def binary_facts(head: FileHead, requested: str, source: str) -> BinaryFacts:
    if head.error:
        return reading.unreadable(head.path, requested, source, head.error)
    return reading.facts(head.data, head.size, head.path, requested, source)


def inspect_binary(
    files: FileReader, argv0: str, path_env: str, workdir: str, source: str, named_path: str = "",
    *, deep: bool = False,
) -> BinaryFacts:
    """Find and sniff the entrypoint (``named_path`` when the runtime named it);
    for a script, follow its interpreter (as the kernel reads the ``#!`` line).

    ``deep`` (exits that look like a start failure, and the image inventory) also
    reads the ELF's program loader (does the image have it? which libc does the
    image have? is the loader marked for an x86-64 level?) and the end of a 32-bit
    ARM ELF (:mod:`enoexec.judge.reading` says how)."""
    if named_path.startswith("/"):
        requested, head = named_path, files.read(named_path)
    else:
        requested, head = files.find(named_path or argv0, path_env, workdir)
    facts = binary_facts(head, requested, source)
    for _ in range(entrypoint.MAX_INTERPRETER_DEPTH):
        interp = reading.next_interpreter(facts)  # for a script: its #! path as the kernel reads it
        if not interp:
            break
        inner_head = files.read(interp)
        facts = reading.through_interpreter(facts, binary_facts(inner_head, interp, source), inner_head.missing)
    if deep and facts.kind == "elf":
        facts = _deepen(files, facts)
    return facts


def _deepen(files: FileReader, facts: BinaryFacts) -> BinaryFacts:
    if reading.wants_tail(facts):
        whole = files.read(facts.path, tail=TAIL_BYTES)
        if not whole.error:
            facts = reading.with_tail(facts, whole.data, whole.tail, whole.size)
    loader_path = reading.loader_of(facts)
    if not loader_path:
        return facts
    loader = files.read(loader_path)
    if loader.missing:
        family, path = reading.other_loader(facts)
        return reading.without_loader(facts, family, bool(path) and not files.read(path).missing)
    return facts if loader.error else reading.with_loader(facts, loader.data)


class BinaryReader:
    """Reads entrypoints on one Docker host, with a bounded cache."""

    def __init__(self, api: Any, *, image_fallback: bool = True, cache_size: int = 512) -> None:
        self._api = api
        self._image_fallback = image_fallback
        self._cache: OrderedDict[tuple[str, tuple[str, ...], str, bool], BinaryFacts] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.archive_reads = 0

    def read(
        self,
        image_id: str,
        argv: tuple[str, ...],
        *,
        container_id: str | None,
        path_env: str,
        workdir: str,
        named_path: str = "",
        deep: bool = False,
    ) -> BinaryFacts:
        key = (image_id, argv, named_path, deep)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        self.archive_reads += 1
        argv0 = argv[0] if argv else ""
        facts: BinaryFacts | None = None
        if container_id:
            try:
                facts = inspect_binary(ContainerFiles(self._api, container_id), argv0, path_env, workdir, "container",
                                       named_path, deep=deep)
            except (ContainerGone, DockerUnavailable):
                facts = None  # read the same file from the image instead (DockerUnavailable if the engine is gone)
            if facts is not None and facts.kind == "unreadable":
                # A dead or removing container (--rm) answers "no such file" once its
                # root filesystem is unmounted: the image has the same file.
                facts = None
        if facts is None and not self._image_fallback:
            facts = BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0,
                                error="the container is gone and --no-image-fallback forbids reading the image")
        if facts is None:
            facts = self._read_from_image(image_id, argv0, path_env, workdir, named_path, deep)
        if facts.kind != "unreadable":
            with self._lock:
                self._cache[key] = facts
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return facts

    def _read_from_image(
        self, image_id: str, argv0: str, path_env: str, workdir: str, named_path: str, deep: bool
    ) -> BinaryFacts:
        """Create a never-started helper container from the image, read, remove it."""
        try:
            helper = self._api.create_container(
                image_id,
                entrypoint=["/enoexec-never-started"],
                command=[],
                labels={HELPER_LABEL: "1"},
                network_disabled=True,
            )
        except docker.errors.NotFound:
            return BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0, error=f"image {image_id[:19]} is gone")
        except docker.errors.APIError as e:
            return BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0, error=f"cannot create helper: {e}")
        except requests.exceptions.RequestException as e:
            raise DockerUnavailable(f"cannot create a helper container: {e}") from e
        try:
            return inspect_binary(ContainerFiles(self._api, helper["Id"]), argv0, path_env, workdir, "image", named_path,
                                  deep=deep)
        except ContainerGone as e:
            return BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0, error=str(e))
        finally:
            try:
                self._api.remove_container(helper["Id"], force=True, v=True)
            except docker.errors.DockerException as e:
                logger.warning("helper container not removed id=%s error=%s", helper["Id"][:12], e)
