"""One inventory pass: list the host's images, read the entrypoint of those not read before, judge all.

Reading is the cost (a never-started helper container per image); it is done
once per image id and kept, so a pass over a host whose images did not change
is one ``GET /images/json`` and a few pure judgements. Judging again is cheap,
so a change of host facts (a binfmt_misc emulator added) is seen at the next
pass. Images that left the host leave the report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import docker.errors
import requests.exceptions

from agent.engine.binaries import BinaryReader
from agent.errors import DockerUnavailable
from agent.inventory.judge import Unrunnable, command, judge
from enoexec.facts import BinaryFacts, HostFacts

logger = logging.getLogger(__name__)

MAX_REPORTED = 500  # unrunnable images per report; the rest are counted, not named


class Inventory:
    def __init__(self, api: Any, host: Callable[[], HostFacts], *, reader: BinaryReader | None = None,
                 stop: threading.Event | None = None) -> None:
        self._api = api
        self._stop = stop or threading.Event()  # set: finish the image in hand (removing its helper), then return
        self._host = host
        self._reader = reader or BinaryReader(api, cache_size=64)
        self._read: dict[str, tuple[dict[str, Any], BinaryFacts]] = {}  # image id -> (inspect, entrypoint facts)
        self._lock = threading.Lock()
        self.unrunnable: tuple[Unrunnable, ...] | None = None  # None until the first pass ends
        self.images_judged = 0
        self.reads = 0  # images whose entrypoint was read (the costly part), since start

    def scan(self) -> bool:
        """One pass; True when the report changed. Raises Docker's errors (the caller retries)."""
        with self._lock:
            listed = self._api.images()
            present: dict[str, str] = {}
            for item in listed:
                tags = [t for t in item.get("RepoTags") or [] if t and t != "<none>:<none>"]
                if tags:  # an untagged layer or a dangling image: nothing would run it by name
                    present[item["Id"]] = sorted(tags)[0]
            for gone in set(self._read) - set(present):
                del self._read[gone]
            for image_id in present:
                if self._stop.is_set():
                    return False
                if image_id not in self._read:
                    read = self._read_one(image_id)
                    if read is not None:
                        self._read[image_id] = read
            host = self._host()
            found = []
            for image_id, name in sorted(present.items(), key=lambda kv: kv[1]):
                if image_id in self._read:
                    attrs, binary = self._read[image_id]
                    verdict = judge(name, image_id, attrs, binary, host)
                    if verdict is not None:
                        found.append(verdict)
            report = tuple(found[:MAX_REPORTED])
            changed = report != self.unrunnable
            self.unrunnable, self.images_judged = report, len(present)
        if changed:
            logger.info("image inventory images=%d unrunnable=%d%s", len(present), len(report),
                        "".join(f" {u.image}={u.cause}" for u in report[:5]))
        return changed

    def _read_one(self, image_id: str) -> tuple[dict[str, Any], BinaryFacts] | None:
        try:
            attrs = self._api.inspect_image(image_id)
        except docker.errors.NotFound:
            return None  # removed meanwhile
        argv, path_env, workdir = command(attrs)
        if not argv:
            return None  # nothing to run until `docker run` names a command
        self.reads += 1
        try:
            # deep: also read the ELF's program loader (PT_INTERP), as check does, so a musl binary
            # in a glibc image is found before it runs; one more small read per image id.
            binary = self._reader.read(image_id, argv, container_id=None, path_env=path_env, workdir=workdir, deep=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException, DockerUnavailable) as e:
            logger.debug("inventory read failed image=%s error=%s", image_id[:19], e)
            return None
        if binary.kind == "unreadable" and not binary.error.endswith("no such file"):
            return None  # try again at the next pass
        return attrs, binary
