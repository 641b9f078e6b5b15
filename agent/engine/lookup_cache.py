"""What the agent remembers about registry lookups, and when it asks again.

Pure and clock-driven, so it is tested with literals. Three kinds of memory:

- an answer (the platforms a registry offers for one reference) is kept for
  ``answer_ttl``;
- a refusal about one reference (the registry answered "no such manifest",
  "unauthorized") is kept for ``answer_ttl`` too: asking again will not help soon;
- an unreachable registry (timeout, refused connection, the daemon's 5xx) is
  remembered *per registry host* for ``retry_interval``: an air-gapped host asks
  each registry once per interval, not once per image.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCKER_HUB = "docker.io"


def registry_host(ref: str) -> str:
    """The registry a reference names, as Docker reads it (``alpine`` -> ``docker.io``)."""
    name = ref.split("@", 1)[0]
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return DOCKER_HUB


@dataclass(frozen=True)
class Known:
    """What is known about one reference now: ``platforms`` is ``None`` when unknown."""

    platforms: tuple[str, ...] | None


class LookupCache:
    """Remembers answers per reference and unreachable registries per host."""

    def __init__(self, *, answer_ttl: float = 3600.0, retry_interval: float = 300.0, max_entries: int = 4096) -> None:
        self._answer_ttl = answer_ttl
        self._retry = retry_interval
        self._max = max_entries
        self._answers: dict[str, tuple[float, tuple[str, ...] | None]] = {}
        self._down: dict[str, float] = {}

    def known(self, ref: str, now: float) -> Known | None:
        """The remembered result for ``ref``, or ``None`` when it should be looked up."""
        hit = self._answers.get(ref)
        if hit is not None and now - hit[0] < self._answer_ttl:
            return Known(hit[1])
        down_since = self._down.get(registry_host(ref))
        if down_since is not None and now - down_since < self._retry:
            return Known(None)
        return None

    def answered(self, ref: str, platforms: tuple[str, ...] | None, now: float) -> None:
        """The registry answered about ``ref`` (``None``: it refused or listed nothing)."""
        if len(self._answers) >= self._max and ref not in self._answers:
            oldest = min(self._answers, key=lambda k: self._answers[k][0])
            del self._answers[oldest]
        self._answers[ref] = (now, platforms)
        self._down.pop(registry_host(ref), None)

    def unreachable(self, ref: str, now: float) -> None:
        """The registry of ``ref`` could not be asked: do not ask it again for a while."""
        self._down[registry_host(ref)] = now

    def host_down(self, ref: str, now: float) -> bool:
        """Whether ``ref``'s registry is remembered as unreachable."""
        since = self._down.get(registry_host(ref))
        return since is not None and now - since < self._retry
