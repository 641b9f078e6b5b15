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

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors
import requests.exceptions

from agent.diagnosis import entrypoint, judging, runtime_message
from agent.diagnosis.judging import FILE_ONLY, RUNTIME_MESSAGE
from agent.engine.binaries import BinaryReader, binary_facts, inspect_binary
from agent.engine.exits import HELPER_LABEL, Exit, alias_of, event_id, exit_key, parse_docker_time
from agent.engine.images import ImageInspector
from agent.errors import DockerUnavailable
from agent.model import ContainerFacts, Event, HostFacts
from enoexec.causes import EMULATED_WARNING
from enoexec.judge import lookalike

__all__ = [
    "FILE_ONLY", "HELPER_LABEL", "RUNTIME_MESSAGE", "Diagnoser", "Exit", "Outcome", "binary_facts", "event_id", "exit_key",
    "inspect_binary", "parse_docker_time",
]

logger = logging.getLogger(__name__)

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

    def emulated(self, container_id: str, when: datetime) -> Event | None:
        """The warning for a container that started and runs its entrypoint through
        QEMU (binfmt_misc), or ``None``. Costs nothing on a host that emulates nothing;
        else one inspect and one read of the entrypoint (cached per image)."""
        host = self._host()
        if not host.emulated_platforms:
            return None
        attrs = self._inspect(container_id)
        if attrs is None or HELPER_LABEL in ((attrs.get("Config") or {}).get("Labels") or {}):
            return None
        config = attrs.get("Config") or {}
        argv = entrypoint.argv(config.get("Entrypoint"), config.get("Cmd"))
        binary = self.binaries.read(
            attrs.get("Image", ""), argv, container_id=attrs["Id"], path_env=entrypoint.path_from_env(config.get("Env")),
            workdir=config.get("WorkingDir") or "/",
        )
        warning = lookalike.emulated(binary, host)
        if warning is None:
            return None
        ref = config.get("Image") or ""
        container = ContainerFacts(
            id=attrs["Id"], name=(attrs.get("Name") or "").lstrip("/"), exit_code=0, runtime_message="",
            finished_at=when, entrypoint=tuple(config.get("Entrypoint") or ()), cmd=tuple(config.get("Cmd") or ()),
        )
        return Event(
            event_id=emulated_event_id(host.host_id, attrs["Id"]), time=when, host=host, container=container,
            image=self._images.facts(ref, attrs.get("Image", ""), lookup_registry=False), binary=binary,
            cause=warning.cause, explanation=warning.explanation, evidence=FILE_ONLY, failure=EMULATED_WARNING,
        )

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
        log = ""
        if s.readable:
            log = self._log_tail(s.container_id, exit.time if exit.source == "event" else None) or ""
            failure = runtime_message.find(log, argv0, any_error=True)
            daemon_error = str(s.state.get("Error") or "")
            if failure is None and ours and "exec format error" in daemon_error.lower():
                # Older engines put the runtime's failure in State.Error instead of the log.
                failure = runtime_message.RuntimeFailure("daemon", "", daemon_error.strip()[:500])
        plan = judging.plan(exit.exit_code, failure, log, _ran(s.state) if ours else None)
        if plan is None:
            return None  # not of the family: no file is read
        if self._lookup_registry:  # in the background, while the entrypoint is read
            self._images.prefetch(s.config.get("Image") or exit.image_ref)
        binary = self.binaries.read(
            s.image_id, argv, container_id=s.container_id if s.readable else None,
            path_env=entrypoint.path_from_env(s.config.get("Env")), workdir=s.config.get("WorkingDir") or "/",
            named_path=failure.path if failure is not None else "", deep=plan.deep,
        )
        ref = s.config.get("Image") or exit.image_ref
        image = self._images.facts(ref, s.image_id, lookup_registry=False)
        verdict = judging.verdict(plan, binary, host, image)
        if verdict is None:
            return None
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
        diagnosis, failure_kind, evidence = verdict
        return Event(
            event_id=event_id(host.host_id, container.id, exit.time),
            time=exit.time,
            host=host,
            container=container,
            image=image,
            binary=binary,
            cause=diagnosis.cause,
            explanation=diagnosis.explanation,
            evidence=evidence,
            backfilled=exit.backfilled,
            failure=failure_kind,
        )


def _ran(state: dict[str, Any]) -> timedelta | None:
    """How long the container ran before this exit, from its state."""
    started = parse_docker_time(str(state.get("StartedAt") or ""))
    finished = parse_docker_time(str(state.get("FinishedAt") or ""))
    return finished - started if started is not None and finished is not None else None


def emulated_event_id(host_id: str, container_id: str) -> str:
    """One emulation warning per container, however often it restarts."""
    return hashlib.sha256(f"{host_id}\0{container_id}\0emulated".encode()).hexdigest()[:32]


def seen_keys(outcome: Outcome) -> tuple[str, ...]:
    """Every name of the exit, to remember in the seen-set."""
    return (outcome.key, *outcome.aliases)

