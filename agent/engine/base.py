"""The engine boundary: what the agent needs from a container runtime, whichever it is.

cAdvisor's ``container/`` in small: each runtime is a sibling (the Docker Engine
in ``agent.engine`` itself, containerd in ``agent.engine.containerd``) behind this
one interface, and ``agent.engine.registry`` is the only place that knows them
all. Every engine yields the same things, so ``agent.diagnosis`` and the service
never learn which runtime they judge:

- ``Exit``: one container exit, named by the container id and the exit's own time;
- a ``Diagnoser`` over the engine's answers: container descriptions in one shape
  (see ``agent.engine.containerd.describe``), the end of the container's log, and
  files read through ``agent.engine.file_reader.FileReader``;
- host facts.

A third runtime (CRI-O, say) is a third sibling and one line in the registry.
Podman's and balena-engine's Docker-compatible sockets need none: they are the
Docker engine at another address.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.engine.exits import Exit
from agent.model import Event, HostFacts

if TYPE_CHECKING:
    import threading

    from agent.diagnosis.diagnose import Diagnoser


class Watch(Protocol):
    """Follows the engine's events in its own thread until ``close``."""

    last_event: datetime | None

    def run(self) -> None: ...

    def close(self) -> None: ...


class Engine(Protocol):
    name: str  # "docker", "containerd"
    address: str
    # Errors that mean "the engine cannot be asked now" (the exit is retried later).
    unavailable: tuple[type[BaseException], ...]

    def facts(self, host_id: str, proc_root: Path) -> HostFacts:
        """This host's facts with the engine's view when it answers, without otherwise."""

    def diagnoser(self, host: Callable[[], HostFacts], *, lookup_registry: bool, image_fallback: bool,
                  clock: Callable[[], datetime], daemon: bool = True) -> Diagnoser:
        """The one diagnosis, over this engine's answers."""

    def watcher(self, on_exit: Callable[[Exit], None], on_connect: Callable[[], None], *,
                stop: threading.Event, clock: Callable[[], datetime],
                on_start: Callable[[str, datetime], None] | None = None) -> Watch:
        """A watch handing every non-zero exit to ``on_exit`` and calling ``on_connect`` after each (re)connect;
        ``on_start`` hears of started containers where the engine tells (the emulation check)."""

    def replay_exits(self, since: datetime, until: datetime) -> list[Exit]:
        """Exits the engine's own event record holds for [since, until], oldest first ([] if it keeps none)."""

    def state_exits(self, since: datetime, until: datetime) -> list[Exit]:
        """Exits left in containers' (or tasks') state that finished in (since, until], oldest first."""

    def forget(self, container_id: str) -> None:
        """An exit of this container arrived: what was cached about its state is stale."""

    def reset(self) -> None:
        """The engine was (re)connected: nothing cached about container state holds."""

    def enrich(self, event: Event) -> Event:
        """Facts only this engine knows (a pod's identity), added to a diagnosed event."""

    def close(self) -> None: ...
