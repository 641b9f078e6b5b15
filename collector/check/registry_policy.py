"""Which hosts ``check`` may contact when it asks a registry for an image's platforms.

Pure. ``/api/v1/check`` fetches whatever registry an image reference names, then
follows that registry's Bearer realm and redirects; unchecked, anyone who can
reach the API could make the collector call internal addresses. Every URL the
look-up would open — the registry itself, its token realm, each redirect — must
match an entry of the operator's list (``--check-registries``):

- ``host`` matches that host on the scheme's default port (443, or 80 for plain HTTP);
- ``host:port`` matches exactly that port;
- ``*.domain`` matches any subdomain of ``domain`` (default port; ``*.domain:port`` too);
- a well-known registry name (``docker.io``, ``ghcr.io``...) stands for the hosts it
  needs: its registry, its token service and its blob CDN;
- ``default`` stands for every well-known registry; ``*`` allows every host
  (only on a network where the collector can reach nothing sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from collector.errors import RegistryRefused

# Public registries and the other hosts their look-ups are sent to (token realm, blob CDN).
WELL_KNOWN: dict[str, tuple[str, ...]] = {
    "docker.io": ("registry-1.docker.io", "index.docker.io", "auth.docker.io", "production.cloudflare.docker.com"),
    "ghcr.io": ("ghcr.io", "pkg-containers.githubusercontent.com"),
    "quay.io": ("quay.io", "*.quay.io"),
    "gcr.io": ("gcr.io", "*.gcr.io", "storage.googleapis.com"),
    "registry.k8s.io": ("registry.k8s.io", "*.pkg.dev"),
    "mcr.microsoft.com": ("mcr.microsoft.com", "*.data.mcr.microsoft.com"),
    "public.ecr.aws": ("public.ecr.aws",),
}
DEFAULT = "default"
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Pattern:
    host: str  # lowercase; "*.example.com" for subdomains, "*" for any host
    port: int | None  # None: the scheme's default port (any port for "*")

    def matches(self, host: str, port: int) -> bool:
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            host_ok = host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        else:
            host_ok = host == self.host
        return host_ok and (port in (443, 80) if self.port is None else port == self.port)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{_bracket(self.host)}:{self.port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class RegistryPolicy:
    patterns: tuple[Pattern, ...]
    source: str  # the setting as given, for messages

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return any(p.matches(host, port) for p in self.patterns)

    def check_url(self, url: str, what: str, *, plain_http: bool = False) -> None:
        """Raise RegistryRefused naming ``what`` and the host unless ``url`` may be opened.

        ``plain_http``: http:// is acceptable (the registry itself is spoken to over
        plain HTTP, a loopback test registry); otherwise only https:// is."""
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:  # a port that is no number ('+50317'), a broken [IPv6] host
            raise RegistryRefused(f"{what} {url!r} is not a valid URL; refused") from None
        if parts.scheme not in (("https", "http") if plain_http else ("https",)) or not parts.hostname:
            raise RegistryRefused(f"{what} {url!r} is not an HTTPS URL; refused")
        if not self.allows(parts.hostname, port):
            raise RegistryRefused(
                f"{what} is on {_bracket(parts.hostname)}:{port}, which --check-registries "
                f"({self.source or 'empty'}) does not allow; the operator can add it, or pass --platform"
            )

    @property
    def disabled(self) -> bool:
        return not self.patterns


def parse(value: str) -> RegistryPolicy:
    """Parse the comma-separated setting; ValueError names a bad entry."""
    patterns: list[Pattern] = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry or entry == "none":
            continue
        names = [n for hosts in WELL_KNOWN.values() for n in hosts] if entry == DEFAULT else list(WELL_KNOWN.get(entry, (entry,)))
        patterns.extend(_pattern(name, raw.strip()) for name in names)
    return RegistryPolicy(tuple(dict.fromkeys(patterns)), value.strip())


def _pattern(entry: str, raw: str) -> Pattern:
    host, port = entry, None
    if entry.startswith("["):  # [::1]:5000
        host, _, rest = entry[1:].partition("]")
        port = _port(rest[1:], raw) if rest.startswith(":") else None
    elif entry.count(":") == 1:
        host, _, text = entry.partition(":")
        port = _port(text, raw)
    label = host[2:] if host.startswith("*.") else host
    if host != "*" and (not label or any(not (c.isalnum() or c in ".-:") for c in label)):
        raise ValueError(f"{raw!r} is not a host, host:port, *.domain, a registry name or 'default'")
    return Pattern(host, port)


def _port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{raw!r}: the port must be a number from 1 to 65535")
    return int(text)
