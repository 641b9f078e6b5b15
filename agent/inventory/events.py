"""Follow the Docker Engine's image events (pull, load, tag, import, untag, delete) to trigger an inventory pass.

Like :mod:`agent.engine.watch`, the stream is treated as lossy: it is
resubscribed with backoff, and every (re)connection triggers a full pass, so
what happened while it was down is caught by comparing image ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import docker.errors
import requests.exceptions

from agent.delivery.backoff import Backoff

logger = logging.getLogger(__name__)

ACTIONS = ("pull", "load", "tag", "import", "untag", "delete")


class ImageEvents:
    """Runs in its own thread; calls ``changed`` on every image event and after every (re)connection."""

    def __init__(self, api: Any, changed: Callable[[], None], *, stop: threading.Event, backoff: Backoff | None = None) -> None:
        self._api, self._changed, self._stop = api, changed, stop
        self._backoff = backoff or Backoff(base=0.5, cap=30.0)
        self._stream: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
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
                stream = self._api.events(decode=True, filters={"type": "image", "event": list(ACTIONS)})
                with self._lock:
                    self._stream = stream
                if self._stop.is_set():
                    break
                self._backoff.reset()
                self._changed()
                for _event in stream:
                    self._changed()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                if self._stop.is_set():
                    break
                logger.debug("image event stream unavailable error=%s", str(e).splitlines()[0][:300])
            except Exception:  # the stream must never die for good
                if self._stop.is_set():
                    break
                logger.exception("image event stream failed")
            finally:
                with self._lock:
                    self._stream = None
            self._stop.wait(self._backoff.next())
