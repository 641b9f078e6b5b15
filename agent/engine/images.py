"""Image facts from the Docker Engine: declared platform, digests, offered platforms.

The platforms a registry offers come from ``GET /distribution/{name}/json``,
which asks the registry through the daemon (so the daemon's credentials and
proxy apply). That question can take seconds (an air-gapped host's registry
never answers), so it never sits in the detection path: it runs on a small
pool of background threads, bounded by a timeout and a queue, and its result is
remembered (:mod:`agent.engine.lookup_cache`). A diagnosis starts the lookup as
soon as it knows an exit is a candidate (:meth:`ImageInspector.prefetch`) and
takes whatever is known when it needs the answer, waiting at most ``wait``
seconds; the daemon waits a few milliseconds, ``enoexec-agent diagnose`` waits
for the answer. A failure is "unknown", never raised.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import docker.errors
import requests.exceptions

from agent.engine.lookup_cache import LookupCache, registry_host
from agent.errors import DockerUnavailable
from agent.model import ImageFacts
from enoexec import platforms
from enoexec.logsetup import Repeats

logger = logging.getLogger(__name__)

# How long the daemon's diagnosis waits for a lookup it started moments before.
DAEMON_WAIT = 0.05


def declared_platform(image_attrs: dict[str, Any]) -> str:
    """``os/arch[/variant]`` from ``docker image inspect`` attributes."""
    return platforms.normalize(
        image_attrs.get("Os", "linux"), image_attrs.get("Architecture", ""), image_attrs.get("Variant", "")
    )


def platforms_from_distribution(data: dict[str, Any]) -> tuple[str, ...]:
    """Platforms listed by ``/distribution/{name}/json``, without attestation entries."""
    out = []
    for p in data.get("Platforms") or ():
        arch, os_name = p.get("architecture", ""), p.get("os", "")
        if not arch or arch == "unknown" or os_name == "unknown":
            continue
        out.append(platforms.normalize(os_name, arch, p.get("variant", "")))
    return tuple(sorted(set(out)))


def registry_refused(error: BaseException) -> bool:
    """Whether the registry answered (no such image, not allowed) rather than being unreachable."""
    status = getattr(error, "status_code", None)
    return isinstance(error, docker.errors.APIError) and status is not None and 400 <= status < 500


def _short(e: Exception) -> str:
    """The useful part of a Docker error: the engine's explanation, not the request URL."""
    explanation = getattr(e, "explanation", None)
    return str(explanation or e).splitlines()[0][:200]


class ImageInspector:
    """Looks images up; asks registries in the background and remembers their answers."""

    def __init__(
        self,
        api: Any,
        *,
        distribution_timeout: float = 5.0,
        wait: float | None = None,
        workers: int = 2,
        max_pending: int = 64,
        cache: LookupCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._timeout = distribution_timeout
        self._wait = distribution_timeout + 1.0 if wait is None else wait
        self._workers = workers
        self._cache = cache or LookupCache()
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self._queue: queue.Queue[str] = queue.Queue(maxsize=max_pending)
        self._threads: list[threading.Thread] = []
        self._host_locks: dict[str, threading.Lock] = {}
        self.lookups = 0  # questions actually sent to the daemon
        # An air-gapped host fails every lookup: say it once, then summarise hourly.
        self._registry_failures = Repeats(logger, "registry lookup failed", every=3600.0)

    def inspect(self, image: str) -> dict[str, Any] | None:
        try:
            return self._api.inspect_image(image)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as e:
            raise DockerUnavailable(f"cannot inspect image {image}: {e.explanation or e}") from e
        except requests.exceptions.RequestException as e:
            raise DockerUnavailable(f"cannot inspect image {image}: {e}") from e

    # -- the registry lookup -----------------------------------------------------
    def prefetch(self, ref: str) -> None:
        """Start looking ``ref`` up in the background unless it is known or under way."""
        self._start(ref)

    def available_platforms(self, ref: str, wait: float | None = None) -> tuple[str, ...] | None:
        """Platforms the registry offers for ``ref``; ``None`` when that is not known
        within ``wait`` seconds (default: this inspector's ``wait``)."""
        if not ref or ref.startswith("sha256:"):
            return None
        done = self._start(ref)
        if done is not None:
            done.wait(self._wait if wait is None else wait)
        with self._lock:
            known = self._cache.known(ref, self._clock())
        return known.platforms if known else None

    @property
    def pending(self) -> int:
        """Lookups queued or under way."""
        with self._lock:
            return len(self._pending)

    def _start(self, ref: str) -> threading.Event | None:
        """The event set when ``ref``'s lookup ends; ``None`` if known or not queued."""
        if not ref or ref.startswith("sha256:"):
            return None
        with self._lock:
            if self._cache.known(ref, self._clock()) is not None:
                return None
            if ref in self._pending:
                return self._pending[ref]
            try:
                self._queue.put_nowait(ref)
            except queue.Full:
                logger.debug("registry lookup queue full; image=%s left unknown for now", ref)
                return None
            done = self._pending[ref] = threading.Event()
            if len(self._threads) < self._workers:
                t = threading.Thread(target=self._work, name=f"registry-lookup-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
            return done

    def _work(self) -> None:
        while True:
            ref = self._queue.get()
            try:
                self._lookup(ref)
            except Exception:  # a worker must not die: later lookups would never run
                logger.exception("registry lookup failed image=%s", ref)
            finally:
                with self._lock:
                    done = self._pending.pop(ref, None)
                if done is not None:
                    done.set()

    def _lookup(self, ref: str) -> None:
        host = registry_host(ref)
        with self._lock:
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:  # one question at a time per registry: a dead one is asked once
            with self._lock:
                if self._cache.known(ref, self._clock()) is not None:
                    return
            self.lookups += 1
            try:
                url = self._api._url("/distribution/{0}/json", ref)
                res = self._api._get(url, timeout=self._timeout)
                self._api._raise_for_status(res)
                result = platforms_from_distribution(res.json()) or None
            except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError) as e:
                with self._lock:
                    if registry_refused(e) or isinstance(e, ValueError):
                        self._cache.answered(ref, None, self._clock())
                        logger.info("registry lookup refused image=%s error=%s", ref, _short(e))
                    else:
                        self._cache.unreachable(ref, self._clock())
                if not (registry_refused(e) or isinstance(e, ValueError)):
                    # An air-gapped host: said once, then summarised hourly.
                    self._registry_failures.failed(
                        "registry unreachable; asked again in 5 minutes, its images' platforms reported as not known",
                        registry=host, image=ref, error=_short(e),
                    )
                return
            with self._lock:
                self._cache.answered(ref, result, self._clock())
            self._registry_failures.recovered()

    # -- facts ---------------------------------------------------------------------
    def facts(self, ref: str, image_id: str = "", *, lookup_registry: bool = True) -> ImageFacts:
        """Image facts for ``ref`` (as the user named it) or, if gone, ``image_id``."""
        attrs = self.inspect(image_id or ref) or (self.inspect(ref) if image_id else None) or {}
        return self.facts_from(ref, attrs, image_id, lookup_registry=lookup_registry)

    def facts_from(
        self, ref: str, attrs: dict[str, Any], image_id: str = "", *, lookup_registry: bool = True
    ) -> ImageFacts:
        """Image facts from ``docker image inspect`` attributes already in hand."""
        return ImageFacts(
            ref=ref,
            id=attrs.get("Id", image_id),
            declared_platform=declared_platform(attrs) if attrs else "",
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
            available_platforms=self.available_platforms(ref) if lookup_registry else None,
        )
