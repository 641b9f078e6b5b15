"""Turn one container exit into a diagnosed event, or decide it is not one.

This is the only module that combines Docker I/O with the pure judges:
``runtime_message`` (did the runtime say exec format error?), ``sniff`` (what is
the entrypoint file?) and ``classify`` (why did it fail?). Results are cached
per (image id, argv) so a crash loop costs one archive read.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis import classify, entrypoint, runtime_message, sniff
from agent.engine.container_fs import ContainerFiles, FileHead
from agent.engine.images import ImageInspector
from agent.errors import ContainerGone, DockerUnavailable
from agent.model import BinaryFacts, ContainerFacts, Event, HostFacts, ImageFacts

logger = logging.getLogger(__name__)

HELPER_LABEL = "io.enoexec.helper"


@dataclass(frozen=True)
class Exit:
    """A container exit, as seen in a ``die`` event or found by reconciliation."""

    container_id: str
    exit_code: int
    image_ref: str = ""
    name: str = ""
    time: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one exit: ``key`` names it for the agent's seen-set."""

    key: str
    event: Event | None = None


def _stamp(finished_at: datetime) -> str:
    return finished_at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def exit_key(container_id: str, finished_at: datetime) -> str:
    """Names one exit in the agent's seen-set."""
    return f"{container_id}@{_stamp(finished_at)}"


def event_id(host_id: str, container_id: str, finished_at: datetime) -> str:
    """Stable id of one exit: the same exit seen twice gets the same id."""
    return hashlib.sha256(f"{host_id}\0{container_id}\0{_stamp(finished_at)}".encode()).hexdigest()[:32]


def parse_docker_time(value: str) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds; keep microseconds."""
    if not value or value.startswith("0001-01-01"):
        return None
    value = value.rstrip("Z")
    if "." in value:
        head, frac = value.split(".", 1)
        digits = "".join(c for c in frac if c.isdigit())
        value = f"{head}.{digits[:6].ljust(6, '0')}"
    try:
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def binary_facts(head: FileHead, requested: str, source: str) -> BinaryFacts:
    if head.error:
        return BinaryFacts(head.path, "unreadable", source=source, requested_path=requested, error=head.error)
    s = sniff.sniff(head.data)
    return BinaryFacts(
        path=head.path,
        kind=s.kind.value,
        platform=s.platform,
        shebang=s.shebang,
        interpreter=s.interpreter,
        description=s.description,
        source=source,
        requested_path=requested,
        truncated=s.truncated,
        variant_guessed=s.variant_guessed,
    )


def inspect_binary(files: ContainerFiles, argv0: str, path_env: str, workdir: str, source: str) -> BinaryFacts:
    """Find and sniff the entrypoint; for a script, follow its interpreter."""
    requested, head = files.find(argv0, path_env, workdir)
    facts = binary_facts(head, requested, source)
    for _ in range(entrypoint.MAX_INTERPRETER_DEPTH):
        if facts.kind != "script":
            break
        interp = entrypoint.shebang_interpreter(facts.shebang)
        if not interp.startswith("/"):
            break
        inner = binary_facts(files.read(interp), interp, source)
        # The script is fine; its interpreter is what failed to execute.
        facts = replace(inner, shebang=facts.shebang, requested_path=requested)
    return facts


class Diagnoser:
    """Diagnoses exits on one Docker host."""

    def __init__(
        self,
        api: Any,
        host: Callable[[], HostFacts],
        *,
        images: ImageInspector | None = None,
        lookup_registry: bool = True,
        image_fallback: bool = True,
        cache_size: int = 512,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._api = api
        self._host = host
        self._images = images or ImageInspector(api)
        self._lookup_registry = lookup_registry
        self._image_fallback = image_fallback
        self._clock = clock
        self._cache: OrderedDict[tuple[str, tuple[str, ...]], BinaryFacts] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.archive_reads = 0

    # -- Docker access -------------------------------------------------------
    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            return self._api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            raise DockerUnavailable(f"cannot inspect container {container_id[:12]}: {e}") from e

    def _log_tail(self, container_id: str) -> str:
        try:
            out = self._api.logs(container_id, stdout=True, stderr=True, tail=5, timestamps=False)
        except docker.errors.NotFound:
            return ""
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            logger.info("cannot read logs container=%s error=%s", container_id[:12], e)
            return ""
        return out.decode("utf-8", errors="replace") if isinstance(out, bytes) else str(out)

    def _read_from_image(self, image_id: str, argv0: str, path_env: str, workdir: str) -> BinaryFacts:
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
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            return BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0, error=f"cannot create helper: {e}")
        try:
            return inspect_binary(ContainerFiles(self._api, helper["Id"]), argv0, path_env, workdir, "image")
        finally:
            try:
                self._api.remove_container(helper["Id"], force=True, v=True)
            except docker.errors.DockerException as e:
                logger.warning("helper container not removed id=%s error=%s", helper["Id"][:12], e)

    def _binary(self, image_id: str, argv: tuple[str, ...], container_id: str | None, path_env: str, workdir: str) -> BinaryFacts:
        key = (image_id, argv)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        self.archive_reads += 1
        argv0 = argv[0] if argv else ""
        facts: BinaryFacts | None = None
        if container_id:
            try:
                facts = inspect_binary(ContainerFiles(self._api, container_id), argv0, path_env, workdir, "container")
            except (ContainerGone, DockerUnavailable):
                facts = None  # read the same file from the image instead
        if facts is None and not self._image_fallback:
            facts = BinaryFacts(argv0, "unreadable", source="image", requested_path=argv0,
                                error="the container is gone and --no-image-fallback forbids reading the image")
        if facts is None:
            facts = self._read_from_image(image_id, argv0, path_env, workdir)
        if facts.kind != "unreadable":
            with self._lock:
                self._cache[key] = facts
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return facts

    # -- the decision -------------------------------------------------------
    def diagnose(self, exit: Exit) -> Outcome:
        """The diagnosed event for ``exit``; ``event`` is ``None`` if it is not an exec format error.

        Raises DockerUnavailable when the engine cannot be asked; the exit is then
        left for reconciliation.
        """
        attrs = self._inspect(exit.container_id)
        host = self._host()
        if attrs is not None:
            state = attrs.get("State") or {}
            finished = parse_docker_time(state.get("FinishedAt", "")) or exit.time or self._clock()
            key = exit_key(attrs["Id"], finished)
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            if exit.exit_code == 0 or HELPER_LABEL in labels:
                return Outcome(key)
            return Outcome(key, self._diagnose_container(attrs, exit, host, finished))
        finished = exit.time or self._clock()
        key = exit_key(exit.container_id, finished)
        if exit.exit_code == 0:
            return Outcome(key)
        return Outcome(key, self._diagnose_removed(exit, host))

    def _diagnose_container(self, attrs: dict[str, Any], exit: Exit, host: HostFacts, finished: datetime) -> Event | None:
        config = attrs.get("Config") or {}
        state = attrs.get("State") or {}
        argv = entrypoint.argv(config.get("Entrypoint"), config.get("Cmd"))
        argv0 = argv[0] if argv else ""
        failure = runtime_message.find(self._log_tail(attrs["Id"]), argv0)
        daemon_error = str(state.get("Error") or "")
        if failure is None and "exec format error" in daemon_error.lower():
            # Older engines put the runtime's failure in State.Error instead of the log.
            failure = runtime_message.RuntimeFailure("daemon", "", daemon_error.strip()[:500])
        if failure is None:
            return None
        if self._lookup_registry:  # in the background, while the entrypoint is read
            self._images.prefetch(config.get("Image") or exit.image_ref)
        exit_code = int(state.get("ExitCode", exit.exit_code))
        binary = self._binary(
            attrs.get("Image", ""), argv, attrs["Id"], entrypoint.path_from_env(config.get("Env")), config.get("WorkingDir") or "/"
        )
        container = ContainerFacts(
            id=attrs["Id"],
            name=(attrs.get("Name") or exit.name).lstrip("/"),
            exit_code=exit_code,
            runtime_message=failure.message,
            finished_at=finished,
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
        )
        image = self._images.facts(config.get("Image") or exit.image_ref, attrs.get("Image", ""), lookup_registry=self._lookup_registry)
        return self._event(host, container, image, binary, inferred=False)

    def _diagnose_removed(self, exit: Exit, host: HostFacts) -> Event | None:
        """The container is gone (``--rm``): judge from the image alone."""
        if exit.exit_code not in runtime_message.EXEC_FAILURE_EXIT_CODES or not exit.image_ref:
            return None
        image_attrs = self._images.inspect(exit.image_ref)
        if not image_attrs:
            return None
        if self._lookup_registry:
            self._images.prefetch(exit.image_ref)
        config = image_attrs.get("Config") or {}
        argv = entrypoint.argv(config.get("Entrypoint"), config.get("Cmd"))
        binary = self._binary(image_attrs["Id"], argv, None, entrypoint.path_from_env(config.get("Env")), config.get("WorkingDir") or "/")
        finished = exit.time or self._clock()
        container = ContainerFacts(
            id=exit.container_id,
            name=exit.name,
            exit_code=exit.exit_code,
            runtime_message="",
            finished_at=finished,
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            removed=True,
        )
        image = self._images.facts_from(exit.image_ref, image_attrs, lookup_registry=self._lookup_registry)
        return self._event(host, container, image, binary, inferred=True)

    def _event(self, host: HostFacts, container: ContainerFacts, image: ImageFacts, binary: BinaryFacts, *, inferred: bool) -> Event | None:
        verdict = classify.classify(binary, host, image)
        if verdict.cause == classify.RUNNABLE:
            # The kernel runs this file here: whatever printed the message, it was
            # not the runtime failing to execute it.
            logger.debug("not an exec format error container=%s reason=%s", container.id[:12], verdict.explanation)
            return None
        if inferred and verdict.cause == classify.UNKNOWN:
            return None  # no runtime message and no evidence: nothing to report
        return Event(
            event_id=event_id(host.host_id, container.id, container.finished_at),
            time=container.finished_at,
            host=host,
            container=container,
            image=image,
            binary=binary,
            cause=verdict.cause,
            explanation=verdict.explanation,
        )
