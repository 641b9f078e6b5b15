"""Image facts from the Docker Engine: declared platform, digests, offered platforms.

The platforms a registry offers come from ``GET /distribution/{name}/json``,
which asks the registry through the daemon (so the daemon's credentials and
proxy apply). It is bounded by a timeout, cached, and a failure is recorded as
"unknown", never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import docker.errors
import requests.exceptions

from agent.errors import DockerUnavailable
from agent.model import ImageFacts
from enoexec import platforms
from enoexec.logsetup import Repeats

logger = logging.getLogger(__name__)


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


def _short(e: Exception) -> str:
    """The useful part of a Docker error: the engine's explanation, not the request URL."""
    explanation = getattr(e, "explanation", None)
    return str(explanation or e).splitlines()[0][:200]


class ImageInspector:
    """Looks images up, with a cache for the registry's answer."""

    def __init__(
        self,
        api: Any,
        *,
        distribution_timeout: float = 5.0,
        cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._timeout = distribution_timeout
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[str, ...] | None]] = {}
        self._lock = threading.Lock()
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

    def available_platforms(self, ref: str) -> tuple[str, ...] | None:
        """Platforms the registry offers for ``ref``; ``None`` when that cannot be known."""
        if not ref or ref.startswith("sha256:"):
            return None
        now = self._clock()
        with self._lock:
            hit = self._cache.get(ref)
            if hit and now - hit[0] < self._ttl:
                return hit[1]
        result: tuple[str, ...] | None
        try:
            url = self._api._url("/distribution/{0}/json", ref)
            res = self._api._get(url, timeout=self._timeout)
            self._api._raise_for_status(res)
            result = platforms_from_distribution(res.json()) or None
        except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError) as e:
            self._registry_failures.failed(
                "cannot ask the registry which platforms images offer; they are reported as not known",
                image=ref, error=_short(e),
            )
            result = None
        else:
            self._registry_failures.recovered()
        with self._lock:
            self._cache[ref] = (now, result)
        return result

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
