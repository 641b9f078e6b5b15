"""Follow the Docker Engine's event stream for container exits, forever.

The stream ends silently when the daemon restarts (docker-py turns socket
errors into ``StopIteration``) and the daemon skips subscribers that fall
behind, so the watcher reconnects with backoff, resubscribes with ``since=``
the last event it saw (the engine replays what happened in between, as far as
it still remembers), and calls ``on_connect`` after every (re)connection: the
agent reconciles there what even the replay could not give.

The watcher only reads and hands over: no Docker call is made for an event on
this thread, so one slow call never holds up the stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors
import requests.exceptions

from agent.delivery.backoff import Backoff
from agent.engine.exits import HELPER_LABEL, Exit, docker_since, event_time, exit_from_event

__all__ = ["Watcher", "exit_from_event"]

logger = logging.getLogger(__name__)

# Resubscribing a little before the last event costs a few duplicates (named
# alike, counted once) and covers clock steps between two events.
RESUME_OVERLAP = timedelta(seconds=1)


class Watcher:
    """Runs in its own thread; hands each non-zero exit to ``on_exit``, each
    created container's id to ``on_create`` and each started one's (with the
    time it started) to ``on_start``."""

    def __init__(
        self,
        api: Any,
        on_exit: Callable[[Exit], None],
        on_connect: Callable[[], None],
        *,
        stop: threading.Event,
        on_create: Callable[[str], None] | None = None,
        on_start: Callable[[str, datetime], None] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._on_exit = on_exit
        self._on_connect = on_connect
        self._on_create = on_create
        self._on_start = on_start
        self._stop = stop
        self._backoff = backoff or Backoff(base=0.2, cap=5.0)
        self._clock = clock
        self._stream: Any = None
        self._lock = threading.Lock()
        self.last_event: datetime | None = None

    def close(self) -> None:
        """Stop from another thread: closes the open stream so ``run`` returns."""
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.close()
                except Exception:  # noqa: BLE001 - closing a broken socket may raise anything
                    pass

    def _subscribe(self) -> Any:
        events = ["die", *(["create"] if self._on_create else []), *(["start"] if self._on_start else [])]
        filters = {"type": "container", "event": events}
        if self.last_event is None:
            self.last_event = self._clock()
            return self._api.events(decode=True, filters=filters)
        return self._api.events(decode=True, filters=filters, since=docker_since(self.last_event - RESUME_OVERLAP))

    def _dispatch(self, event: dict[str, Any]) -> None:
        self.last_event = max(self.last_event or event_time(event), event_time(event))
        if event.get("Action") == "start":
            attrs = (event.get("Actor") or {}).get("Attributes") or {}
            if self._on_start is not None and HELPER_LABEL not in attrs:
                self._on_start((event.get("Actor") or {}).get("ID") or event.get("id", ""), event_time(event))
            return
        if event.get("Action") == "create":
            attrs = (event.get("Actor") or {}).get("Attributes") or {}
            if self._on_create is not None and HELPER_LABEL not in attrs:
                self._on_create((event.get("Actor") or {}).get("ID") or event.get("id", ""))
            return
        exit = exit_from_event(event)
        if exit is not None and exit.exit_code != 0:
            self._on_exit(exit)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._api.ping()
                stream = self._subscribe()
                with self._lock:
                    self._stream = stream
                if self._stop.is_set():
                    break
                logger.info("docker event stream connected")
                self._backoff.reset()
                self._on_connect()
                for event in stream:
                    self._dispatch(event)
                if not self._stop.is_set():
                    logger.warning("docker event stream ended; reconnecting")
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                if self._stop.is_set():
                    break
                logger.warning("docker unavailable error=%s", str(e).splitlines()[0][:300])
            except Exception:  # the stream must never die for good
                if self._stop.is_set():
                    break
                logger.exception("docker event stream failed")
            finally:
                with self._lock:
                    self._stream = None
            self._stop.wait(self._backoff.next())
