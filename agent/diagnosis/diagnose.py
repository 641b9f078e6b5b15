"""Turn one container exit into a diagnosed event, or decide it is not one.

This is the only module that combines Docker I/O with the pure judges:
``runtime_message`` (did the runtime say it could not execute the file, and
which file?), ``sniff`` (what is that file?) and ``classify`` (why did it fail?).

Evidence, strongest first (recorded in ``Event.evidence``):

- ``runtime_message``: the runtime's (or tini's) own line says exec format error.
  The file it names is judged; a file the kernel runs here clears it.
- ``file_only``: no such line can be read (``--log-driver none``, ``--rm``,
  output glued onto the line, tini reporting execvp's fallback): the exit code is
  one the runtime gives exec failures *and* the entrypoint is a file the kernel
  refuses (foreign ELF, no shebang, BOM, PE, empty...). Anything less is not
  reported.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis import classify, entrypoint, runtime_message
from agent.engine.binaries import BinaryReader, binary_facts, inspect_binary
from agent.engine.exits import HELPER_LABEL, Exit, alias_of, event_id, exit_key, parse_docker_time
from agent.engine.images import ImageInspector
from agent.errors import DockerUnavailable
from agent.model import BinaryFacts, ContainerFacts, Event, HostFacts, ImageFacts

__all__ = [
    "HELPER_LABEL", "Diagnoser", "Exit", "Outcome", "binary_facts", "event_id", "exit_key",
    "inspect_binary", "parse_docker_time",
]

logger = logging.getLogger(__name__)

RUNTIME_MESSAGE = "runtime_message"
FILE_ONLY = "file_only"
LOG_TAIL = 20
# How long the diagnosis of a vanished container waits for its create-time inspect.
REMEMBER_WAIT = 2.0
# The container's own log lines end before its die event; the margin only covers rounding.
LOG_UNTIL_MARGIN = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Outcome:
    """What became of one exit: ``key`` (and ``aliases``) name it for the agent's seen-set."""

    key: str
    event: Event | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Subject:
    """What is known of the exited container: its own config, or its image's."""

    container_id: str
    image_id: str
    config: dict[str, Any]
    state: dict[str, Any]
    name: str
    readable: bool  # its files and logs may still be read
    auto_remove: bool = False


class Diagnoser:
    """Diagnoses exits on one Docker host."""

    def __init__(
        self,
        api: Any,
        host: Callable[[], HostFacts],
        *,
        images: ImageInspector | None = None,
        binaries: BinaryReader | None = None,
        lookup_registry: bool = True,
        image_fallback: bool = True,
        cache_size: int = 512,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._host = host
        self._images = images or ImageInspector(api)
        self._lookup_registry = lookup_registry
        self._clock = clock
        self.binaries = binaries or BinaryReader(api, image_fallback=image_fallback, cache_size=cache_size)
        # Inspect results of auto-removed containers, taken at create: their argv
        # once ``--rm`` has removed them.
        self._known: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._known_size = cache_size
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @property
    def archive_reads(self) -> int:
        return self.binaries.archive_reads

    # -- Docker access -------------------------------------------------------
    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            return self._api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            raise DockerUnavailable(f"cannot inspect container {container_id[:12]}: {e}") from e

    def expect(self, container_id: str) -> None:
        """A create event arrived: ``remember`` will follow (called on the event thread)."""
        with self._lock:
            self._pending[container_id] = threading.Event()

    def remember(self, container_id: str) -> None:
        """Keep the config of a just-created ``--rm`` container for when it is gone."""
        try:
            attrs = self._inspect(container_id)
        except DockerUnavailable as e:
            logger.debug("created container not inspected container=%s error=%s", container_id[:12], e)
            attrs = None
        with self._lock:
            if attrs is not None and (attrs.get("HostConfig") or {}).get("AutoRemove"):
                self._known[container_id] = attrs
                while len(self._known) > self._known_size:
                    self._known.popitem(last=False)
            done = self._pending.pop(container_id, None)
        if done is not None:
            done.set()

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._known.pop(container_id, None)

    def _log_tail(self, container_id: str, until: datetime | None) -> str | None:
        """The end of the container's log up to ``until``; ``None`` when it cannot be read
        (``--log-driver none`` answers 501, a container marked for removal 409)."""
        kw: dict[str, Any] = {"until": (until + LOG_UNTIL_MARGIN).timestamp()} if until else {}
        try:
            out = self._api.logs(container_id, stdout=True, stderr=True, tail=LOG_TAIL, timestamps=False, **kw)
        except docker.errors.APIError as e:
            logger.debug("cannot read logs container=%s error=%s", container_id[:12], e)
            return None
        except requests.exceptions.RequestException as e:
            raise DockerUnavailable(f"cannot read the logs of container {container_id[:12]}: {e}") from e
        return out.decode("utf-8", errors="replace") if isinstance(out, bytes) else str(out)

    # -- the decision -------------------------------------------------------
    def diagnose(self, exit: Exit) -> Outcome:
        """The diagnosed event for ``exit``; ``event`` is ``None`` if it is not an exec format error.

        Raises DockerUnavailable when the engine cannot be asked; the exit is then
        left for reconciliation.
        """
        attrs = self._inspect(exit.container_id)
        with self._lock:
            pending = self._pending.get(exit.container_id)
        if attrs is None and pending is not None:
            pending.wait(REMEMBER_WAIT)  # its create-time inspect is under way
        with self._lock:
            known = self._known.pop(exit.container_id, None)
        state = (attrs or {}).get("State") or {}
        finished = parse_docker_time(state.get("FinishedAt", ""))
        if exit.time is None:  # asked about a container, not an exit: name it by its state
            when = finished or self._clock()
            exit = Exit(exit.container_id, exit.exit_code, exit.image_ref, exit.name, when, source="state")
            if attrs is not None:
                exit = Exit(attrs["Id"], exit.exit_code, exit.image_ref, exit.name, when, source="state")
        alias = alias_of(exit, finished)
        outcome = Outcome(exit.key, None, (alias,) if alias else ())
        labels = ((attrs or known or {}).get("Config") or {}).get("Labels") or {}
        if exit.exit_code == 0 or HELPER_LABEL in labels:
            return outcome
        subject = self._subject(exit, attrs, known)
        if subject is None:
            return outcome
        ours = exit.source == "state" or bool(alias)  # the state read belongs to this exit
        return Outcome(outcome.key, self._judge(exit, subject, self._host(), ours), outcome.aliases)

    def _subject(self, exit: Exit, attrs: dict[str, Any] | None, known: dict[str, Any] | None) -> _Subject | None:
        if attrs is not None or known is not None:
            a = attrs or known or {}
            return _Subject(a["Id"], a.get("Image", ""), a.get("Config") or {}, a.get("State") or {},
                            (a.get("Name") or exit.name).lstrip("/"), readable=attrs is not None,
                            auto_remove=bool((a.get("HostConfig") or {}).get("AutoRemove")))
        if not exit.image_ref:
            return None
        image_attrs = self._images.inspect(exit.image_ref)
        if not image_attrs:
            return None
        # Gone before it could be inspected: the image's default argv is the best left.
        return _Subject(exit.container_id, image_attrs["Id"], image_attrs.get("Config") or {}, {}, exit.name,
                        readable=False, auto_remove=True)

    def _judge(self, exit: Exit, s: _Subject, host: HostFacts, ours: bool) -> Event | None:
        assert exit.time is not None
        argv = entrypoint.argv(s.config.get("Entrypoint"), s.config.get("Cmd"))
        argv0 = argv[0] if argv else ""
        failure: runtime_message.RuntimeFailure | None = None
        if s.readable:
            log = self._log_tail(s.container_id, exit.time if exit.source == "event" else None)
            failure = runtime_message.find(log or "", argv0)
            daemon_error = str(s.state.get("Error") or "")
            if failure is None and ours and "exec format error" in daemon_error.lower():
                # Older engines put the runtime's failure in State.Error instead of the log.
                failure = runtime_message.RuntimeFailure("daemon", "", daemon_error.strip()[:500])
        if failure is not None and failure.enoexec and not failure.glued:
            evidence, decisive_only = RUNTIME_MESSAGE, False
        elif failure is not None and failure.enoexec:
            evidence, decisive_only = RUNTIME_MESSAGE, True
        elif exit.exit_code in runtime_message.EXEC_FAILURE_EXIT_CODES:
            evidence, decisive_only = FILE_ONLY, True
        else:
            return None
        if self._lookup_registry:  # in the background, while the entrypoint is read
            self._images.prefetch(s.config.get("Image") or exit.image_ref)
        binary = self.binaries.read(
            s.image_id, argv, container_id=s.container_id if s.readable else None,
            path_env=entrypoint.path_from_env(s.config.get("Env")), workdir=s.config.get("WorkingDir") or "/",
            named_path=failure.path if failure is not None else "",
        )
        ref = s.config.get("Image") or exit.image_ref
        image = self._images.facts(ref, s.image_id, lookup_registry=False)
        verdict = classify.classify(binary, host, image)
        if verdict.cause == classify.RUNNABLE:
            # The kernel runs this file here: whatever printed the message, it was
            # not the runtime failing to execute it.
            logger.debug("not an exec format error container=%s reason=%s", s.container_id[:12], verdict.explanation)
            return None
        if decisive_only and verdict.cause == classify.UNKNOWN:
            return None  # no runtime message and no deciding file: nothing to report
        if self._lookup_registry:
            image = replace(image, available_platforms=self._images.available_platforms(ref))
        container = ContainerFacts(
            id=s.container_id,
            name=s.name,
            exit_code=exit.exit_code,
            runtime_message=failure.message if failure is not None else "",
            finished_at=(parse_docker_time(s.state.get("FinishedAt", "")) if ours else None) or exit.time,
            entrypoint=tuple(s.config.get("Entrypoint") or ()),
            cmd=tuple(s.config.get("Cmd") or ()),
            removed=not s.readable or s.auto_remove,
        )
        return self._event(exit, host, container, image, binary, evidence)

    def _event(self, exit: Exit, host: HostFacts, container: ContainerFacts, image: ImageFacts, binary: BinaryFacts,
               evidence: str) -> Event | None:
        assert exit.time is not None
        verdict = classify.classify(binary, host, image)
        if verdict.cause == classify.RUNNABLE:
            return None
        return Event(
            event_id=event_id(host.host_id, container.id, exit.time),
            time=exit.time,
            host=host,
            container=container,
            image=image,
            binary=binary,
            cause=verdict.cause,
            explanation=verdict.explanation,
            evidence=evidence,
            backfilled=exit.backfilled,
        )


def seen_keys(outcome: Outcome) -> tuple[str, ...]:
    """Every name of the exit, to remember in the seen-set."""
    return (outcome.key, *outcome.aliases)

