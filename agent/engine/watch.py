"""Follow the Docker Engine's event stream for container exits, forever.

The stream ends silently when the daemon restarts (docker-py turns socket
errors into ``StopIteration``) and the daemon skips subscribers that fall
behind, so the watcher reconnects with backoff and calls ``on_connect`` after
every (re)connection: the agent reconciles there what the stream missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import docker.errors
import requests.exceptions

from agent.delivery.backoff import Backoff
from agent.diagnosis.diagnose import HELPER_LABEL, Exit

logger = logging.getLogger(__name__)


def exit_from_event(event: dict[str, Any]) -> Exit | None:
    """The exit described by a ``die`` event, or ``None`` for anything else."""
    if event.get("Type") != "container" or event.get("Action") != "die":
        return None
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    if HELPER_LABEL in attrs:
        return None
    try:
        code = int(attrs.get("exitCode", "0"))
    except ValueError:
        return None
    nanos = event.get("timeNano")
    when = (
        datetime.fromtimestamp(int(nanos) / 1e9, tz=timezone.utc)
        if nanos
        else datetime.fromtimestamp(int(event.get("time", 0)), tz=timezone.utc)
    )
    return Exit(
        container_id=actor.get("ID") or event.get("id", ""),
        exit_code=code,
        image_ref=attrs.get("image", ""),
        name=attrs.get("name", ""),
        time=when,
    )


class Watcher:
    """Runs in its own thread; hands each non-zero exit to ``on_exit``."""

    def __init__(
        self,
        api: Any,
        on_exit: Callable[[Exit], None],
        on_connect: Callable[[], None],
        *,
        stop: threading.Event,
        backoff: Backoff | None = None,
    ) -> None:
        self._api = api
        self._on_exit = on_exit
        self._on_connect = on_connect
        self._stop = stop
        self._backoff = backoff or Backoff(base=0.2, cap=5.0)
        self._stream: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop from another thread: closes the open stream so ``run`` returns."""
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.close()
                except Exception:  # noqa: BLE001 - closing a broken socket may raise anything
                    pass

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._api.ping()
                stream = self._api.events(decode=True, filters={"type": "container", "event": "die"})
                with self._lock:
                    self._stream = stream
                if self._stop.is_set():
                    break
                logger.info("docker event stream connected")
                self._backoff.reset()
                self._on_connect()
                for event in stream:
                    exit = exit_from_event(event)
                    if exit is not None and exit.exit_code != 0:
                        self._on_exit(exit)
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
