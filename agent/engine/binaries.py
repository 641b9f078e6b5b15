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
from dataclasses import replace
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis import entrypoint
from agent.engine.container_fs import ContainerFiles, FileHead
from agent.engine.exits import HELPER_LABEL
from agent.engine.file_reader import FileReader
from agent.errors import ContainerGone, DockerUnavailable
from agent.model import BinaryFacts
from enoexec import platforms
from enoexec.judge import elf_facts, libc, sniff

logger = logging.getLogger(__name__)


TAIL_BYTES = 64 * 1024  # the end of a 32-bit ARM ELF, for its .ARM.attributes


def damage(s: sniff.Sniff, size: int) -> str:
    """Why an ELF of ``size`` bytes is cut short, from its headers; "" when it is not."""
    if s.kind != sniff.Kind.ELF or size < 0:
        return ""
    if s.phdr_end > size:
        return f"its program headers end at byte {s.phdr_end}, past the end of the file ({size} bytes)"
    if s.load_end > size:
        return f"its loadable segments end at byte {s.load_end}, past the end of the file ({size} bytes)"
    return ""


def binary_facts(head: FileHead, requested: str, source: str) -> BinaryFacts:
    if head.error:
        return BinaryFacts(head.path, "unreadable", source=source, requested_path=requested, error=head.error)
    s = sniff.sniff(head.data)
    if s.kind == sniff.Kind.ZEROS and head.size > len(head.data):
        s = replace(s, description=f"{s.description} (the first {len(head.data)} of {head.size} bytes read)")
    return BinaryFacts(
        size=head.size,
        damage=damage(s, head.size),
        isa_level=s.isa_level,
        load_align=s.load_align,
        libc=libc.family(s.interpreter),
        path=head.path,
        kind=s.kind.value,
        platform=s.platform,
        shebang=s.shebang,
        interpreter=s.interpreter or s.shebang_path,
        missing=s.shebang_cr_arg,  # what the interpreter (env, a shell) will look for and not find
        description=s.description,
        source=source,
        requested_path=requested,
        truncated=s.truncated,
        variant_guessed=s.variant_guessed,
    )


def inspect_binary(
    files: FileReader, argv0: str, path_env: str, workdir: str, source: str, named_path: str = "",
    *, deep: bool = False,
) -> BinaryFacts:
    """Find and sniff the entrypoint (``named_path`` when the runtime named it);
    for a script, follow its interpreter (as the kernel reads the ``#!`` line).

    ``deep`` (only for exits that look like a start failure) also reads the ELF's
    program loader (does the image have it? which libc does the image have? is
    the loader marked for an x86-64 level?) and the end of a 32-bit ARM ELF."""
    if named_path.startswith("/"):
        requested, head = named_path, files.read(named_path)
    else:
        requested, head = files.find(named_path or argv0, path_env, workdir)
    facts = binary_facts(head, requested, source)
    for _ in range(entrypoint.MAX_INTERPRETER_DEPTH):
        if facts.kind != "script":
            break
        interp = facts.interpreter  # for a script: its #! path as the kernel reads it
        if not interp.startswith("/"):
            break
        inner_head = files.read(interp)
        inner = binary_facts(inner_head, interp, source)
        # The script is fine; its interpreter is what failed to execute.
        facts = replace(inner, shebang=facts.shebang, requested_path=requested,
                        missing=interp if inner_head.missing else facts.missing)
    if deep and facts.kind == "elf":
        facts = _deepen(files, facts)
    return facts


def _deepen(files: FileReader, facts: BinaryFacts) -> BinaryFacts:
    if facts.platform.startswith("linux/arm/") and facts.variant_guessed and facts.path:
        whole = files.read(facts.path, tail=TAIL_BYTES)
        arch = elf_facts.arm_cpu_arch(whole.data, whole.tail, whole.size) if not whole.error else None
        if arch is not None:
            facts = replace(facts, platform=platforms.from_elf(platforms.EM_ARM, 32, True,
                                                               platforms.arm_variant_from_cpu_arch(arch)),
                            variant_guessed=False, description=facts.description.replace(", variant guessed", ""))
    if not facts.interpreter.startswith("/"):
        return facts
    loader = files.read(facts.interpreter)
    if loader.missing:
        family, path = libc.other_loader(facts.interpreter, facts.platform)
        has_other = bool(path) and not files.read(path).missing
        return replace(facts, missing=facts.interpreter, image_libc=family if has_other else "")
    if not loader.error:
        needed = sniff.sniff(loader.data).isa_level
        if needed > facts.isa_level:
            facts = replace(facts, isa_level=needed)
    return facts


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
