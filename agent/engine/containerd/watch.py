"""Follow containerd's event stream (``Events/Subscribe``) for task exits, forever.

Filtered on the server to the namespaces the agent watches and three topics:
``/tasks/exit`` (an exit: container id, pid, exit status, ``exited_at``),
``/containers/create`` and ``/tasks/create`` (which carries the root filesystem's
mounts and the log URI, remembered for when the container is gone). Only the
exits of a task's init process count (an exec's exit is not a container's).

containerd keeps no event history, so a reconnect replays nothing: the watcher
calls ``on_connect`` after every (re)connection and the agent reconciles from
containerd's tasks there. No containerd call is made on this thread for an exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc

from agent.delivery.backoff import Backoff
from agent.engine.containerd.client import Envelope, decode
from agent.engine.exits import EPOCH, Exit
from agent.errors import ContainerdUnavailable
from enoexec.logsetup import Repeats

logger = logging.getLogger(__name__)

TOPICS = ("/tasks/exit", "/containers/create", "/tasks/create", "/tasks/start")


def filters(namespaces: Sequence[str], topics: Sequence[str] = TOPICS) -> list[str]:
    """containerd's filter syntax: alternatives are separate filters, ``,`` joins conditions."""
    return [f'topic=="{t}",namespace=="{ns}"' for ns in namespaces for t in topics]


def exited_at(ts: Any) -> datetime:
    """A protobuf Timestamp as a UTC datetime, to the microsecond (nanoseconds cut, as on Docker)."""
    return datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000) if ts.seconds else EPOCH


def exit_from_envelope(env: Envelope) -> Exit | None:
    """The container exit a ``/tasks/exit`` event tells of; ``None`` for an exec's exit or anything else."""
    if env.topic != "/tasks/exit" or env.event is None:
        return None
    e = env.event
    if e.id and e.id != e.container_id:
        return None  # an exec'd process, not the container's own
    return Exit(container_id=e.container_id, exit_code=int(e.exit_status), time=exited_at(e.exited_at))


class ContainerdWatcher:
    def __init__(
        self,
        client: Any,
        namespaces: Sequence[str],
        on_exit: Callable[[Exit], None],
        on_connect: Callable[[], None],
        *,
        stop: threading.Event,
        on_create: Callable[[str, str], None],
        on_task_create: Callable[[str, str, list[tuple[str, str, tuple[str, ...]]], str], None],
        on_namespace: Callable[[str, str], None],
        on_task_start: Callable[[str, str, datetime], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self._filters = filters(namespaces)
        self._on_exit = on_exit
        self._on_connect = on_connect
        self._on_create = on_create
        self._on_task_create = on_task_create
        self._on_namespace = on_namespace
        self._on_task_start = on_task_start
        self._stop = stop
        self._backoff = backoff or Backoff(base=0.2, cap=5.0)
        self._stream: Any = None
        self._lock = threading.Lock()
        self.last_event: datetime | None = None
        # containerd down for a while (a node being drained, k3s restarting): said once, then summarised.
        self._down = Repeats(logger, "containerd unavailable", every=300.0)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()

    def _dispatch(self, env: Envelope) -> None:
        self.last_event = datetime.now(UTC)
        e = env.event
        if e is None:
            return
        if env.topic == "/containers/create":
            self._on_create(env.namespace, e.id)
        elif env.topic == "/tasks/start":
            if self._on_task_start is not None and env.timestamp is not None:
                self._on_task_start(env.namespace, e.container_id, exited_at(env.timestamp))
        elif env.topic == "/tasks/create":
            mounts = [(m.type, m.source, tuple(m.options)) for m in e.rootfs]
            self._on_task_create(env.namespace, e.container_id, mounts, e.io.stdout)
        else:
            exit = exit_from_envelope(env)
            if exit is not None and exit.exit_code != 0:
                self._on_namespace(exit.container_id, env.namespace)
                self._on_exit(exit)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._client.ping()
                stream = self._client.subscribe(self._filters)
                with self._lock:
                    self._stream = stream
                if self._stop.is_set():
                    break
                logger.info("containerd event stream connected")
                self._down.recovered()
                self._backoff.reset()
                self._on_connect()
                for raw in stream:
                    self._dispatch(decode(raw))
                if not self._stop.is_set():
                    logger.warning("containerd event stream ended; reconnecting")
            except (grpc.RpcError, ContainerdUnavailable) as e:
                if self._stop.is_set():
                    break
                detail = e.details() if isinstance(e, grpc.RpcError) else str(e)  # type: ignore[attr-defined]
                self._down.failed(str(detail or e).splitlines()[0][:300], address=getattr(self._client, "address", ""))
            except Exception:  # the stream must never die for good
                if self._stop.is_set():
                    break
                logger.exception("containerd event stream failed")
            finally:
                with self._lock:
                    self._stream = None
            self._stop.wait(self._backoff.next())
