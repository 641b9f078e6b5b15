"""Ask an OCI/Docker registry which platforms an image reference offers.

Speaks the registry HTTP API v2 anonymously: on a ``401`` with a Bearer challenge it
fetches a token from the challenge's realm and retries. Every URL it opens — the
registry, the realm, each redirect (followed by hand, at most a few) — must be
allowed by a :class:`~collector.check.registry_policy.RegistryPolicy`; the token goes
only to the registry's own host, never along a redirect to another. Reads Docker manifest lists
and OCI indexes (skipping ``unknown/unknown`` attestation entries) and, for a single
manifest, the config blob's ``os``/``architecture``/``variant``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from collector.check.registry_policy import RegistryPolicy
from collector.errors import InvalidReference, RegistryError, RegistryRefused
from enoexec import platforms

logger = logging.getLogger(__name__)

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
_MAX_BODY = 4 * 1024 * 1024
_MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_DOMAIN = re.compile(
    r"(?:\[[0-9a-fA-F:]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port]; Docker Hub is registry-1.docker.io
    repository: str  # library/alpine
    tag: str  # "" when only a digest was given
    digest: str  # "" when none was given

    @property
    def reference(self) -> str:
        """What to ask the manifests endpoint for: the digest if any, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(ref: str) -> ImageRef:
    """Parse an image reference the way ``docker pull`` does."""
    text = ref.strip()
    name, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise _bad(ref, f"{digest!r} is not a digest like sha256:<64 hex digits>")
    tag = ""
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _bad(ref, f"{tag!r} is not a valid tag")
    registry, repository = _split_domain(name)
    if not _DOMAIN.fullmatch(registry):
        raise _bad(ref, f"{registry!r} is not a registry host")
    if len(repository) > 255 or not all(
        _PATH_COMPONENT.fullmatch(part) for part in repository.split("/")
    ):
        raise _bad(ref, "the repository must be lowercase letters, digits and . _ - separators")
    if not tag and not digest:
        tag = "latest"
    return ImageRef(registry, repository, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    is_domain = sep and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    registry, repository = (first, rest) if is_domain else (DOCKER_HUB, name)
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    return registry, repository


def _bad(ref: str, why: str) -> InvalidReference:
    return InvalidReference(f"invalid image reference {ref!r}: {why}")


async def fetch_platforms(
    ref: str,
    *,
    allowed: RegistryPolicy,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 10.0,
    insecure_registries: Collection[str] = ("localhost", "127.0.0.1"),
) -> tuple[str, ...]:
    """The OCI platforms ``ref`` offers, in the registry's order, attestations left out.

    Registries whose host is in ``insecure_registries`` (any port) are spoken to over
    plain HTTP, all others over HTTPS. The whole look-up is bounded by ``timeout``.
    RegistryRefused when ``allowed`` does not permit a URL it would open.
    """
    image = parse_reference(ref)
    base, insecure = endpoint(image, allowed, insecure_registries)
    own = session is None
    if session is None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    try:
        async with asyncio.timeout(timeout):
            return await _platforms(Client(session, image, base, allowed), image)
    except TimeoutError as e:
        raise RegistryError(
            f"registry {image.registry} did not answer within {timeout:g}s for {image}; "
            f"check the network, proxy settings and that the registry is up"
        ) from e
    except aiohttp.ClientError as e:
        raise RegistryError(
            f"could not reach registry {image.registry} for {image}: {e}; "
            f"check the host name, DNS, proxy settings and that the registry is up"
        ) from e
    finally:
        if own:
            await session.close()


def endpoint(image: ImageRef, allowed: RegistryPolicy, insecure_registries: Collection[str]) -> tuple[str, bool]:
    """The repository's base URL and whether it is plain HTTP; RegistryRefused unless ``allowed``."""
    host = image.registry.rsplit(":", 1)[0] if not image.registry.endswith("]") else image.registry
    insecure = host in insecure_registries or image.registry in insecure_registries
    base = f"{'http' if insecure else 'https'}://{image.registry}/v2/{image.repository}"
    if allowed.disabled:
        raise RegistryRefused("registry look-ups are disabled (--check-registries is empty); pass --platform")
    allowed.check_url(base, f"registry {image.registry}", plain_http=insecure)
    return base, insecure


async def _platforms(client: Client, image: ImageRef) -> tuple[str, ...]:
    manifest, content_type = await client.get_json(f"manifests/{image.reference}", _ACCEPT)
    media = manifest.get("mediaType") or content_type
    if media in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
        return _from_index(manifest.get("manifests") or [])
    if manifest.get("schemaVersion") == 1:  # legacy schema 1 names its architecture
        found = platforms.normalize("linux", str(manifest.get("architecture", "")))
        return (found,) if found else ()
    digest = (manifest.get("config") or {}).get("digest")
    if not isinstance(digest, str) or not digest:
        raise RegistryError(
            f"registry {image.registry} sent a manifest for {image} without a config digest "
            f"(media type {media!r}); check that the reference names an image"
        )
    config, _ = await client.get_json(f"blobs/{digest}", "*/*")
    found = platforms.normalize(
        str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant", ""))
    )
    return (found,) if found else ()


def _from_index(entries: list[Any]) -> tuple[str, ...]:
    out = []
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(platform, dict):
            continue
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        os_name, arch = str(platform.get("os", "")), str(platform.get("architecture", ""))
        if "unknown" in (os_name, arch):
            continue
        found = platforms.normalize(os_name, arch, str(platform.get("variant", "")))
        if found:
            out.append(found)
    return tuple(dict.fromkeys(out))


class Client:
    """GETs under one repository, with an anonymous Bearer token once one is demanded."""

    def __init__(self, session: aiohttp.ClientSession, image: ImageRef, base: str, allowed: RegistryPolicy) -> None:
        self._session = session
        self._image = image
        self._base = base
        self._origin = urlsplit(base)[:2]  # (scheme, netloc) the token belongs to
        self._plain = self._origin[0] == "http"  # a loopback registry: its realm and redirects may be http too
        self._allowed = allowed
        self._token = ""

    async def get_bytes(self, path: str, accept: str) -> tuple[bytes, str]:
        """The body (at most 4 MiB) and content type of ``path`` under the repository."""
        url = f"{self._base}/{path}"
        status, challenge, content_type, body = await self._get(url, accept)
        if status == 401 and not self._token and challenge.lower().startswith("bearer "):
            self._token = await self._fetch_token(challenge)
            status, challenge, content_type, body = await self._get(url, accept)
        self._raise_for_status(status, path)
        return body, content_type

    async def stream(self, path: str, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
        """A blob's bytes as they arrive (after the token and redirects), for reading only its start."""
        url = f"{self._base}/{path}"
        for _ in range(2 * _MAX_REDIRECTS + 2):
            headers = {"Accept": "*/*"}
            if self._token and urlsplit(url)[:2] == self._origin:
                headers["Authorization"] = f"Bearer {self._token}"
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status == 200:
                    async for data in resp.content.iter_chunked(chunk):
                        yield data
                    return
                challenge = resp.headers.get("WWW-Authenticate", "")
                status, target = resp.status, urljoin(url, resp.headers.get("Location", ""))
            if status == 401 and not self._token and challenge.lower().startswith("bearer "):
                self._token = await self._fetch_token(challenge)
            elif status in _REDIRECTS:
                self._allowed.check_url(target, f"a redirect from registry {self._image.registry}", plain_http=self._plain)
                url = target
            else:
                self._raise_for_status(status, path)
        raise RegistryError(f"registry {self._image.registry} redirected more than {_MAX_REDIRECTS} times for {path}")

    async def get_json(self, path: str, accept: str) -> tuple[dict[str, Any], str]:
        body, content_type = await self.get_bytes(path, accept)
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RegistryError(
                f"registry {self._image.registry} sent invalid JSON for {path} of {self._image}; "
                f"check that {self._image.registry} is an OCI registry and not a proxy's error page"
            ) from e
        if not isinstance(doc, dict):
            raise RegistryError(
                f"registry {self._image.registry} sent JSON that is not an object for {path}"
            )
        return doc, content_type

    async def _get(self, url: str, accept: str) -> tuple[int, str, str, bytes]:
        for _ in range(_MAX_REDIRECTS + 1):
            headers = {"Accept": accept}
            if self._token and urlsplit(url)[:2] == self._origin:
                headers["Authorization"] = f"Bearer {self._token}"
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status not in _REDIRECTS:
                    return await self._read(url, resp)
                target = urljoin(url, resp.headers.get("Location", ""))
            self._allowed.check_url(target, f"a redirect from registry {self._image.registry}", plain_http=self._plain)
            logger.debug("GET %s -> redirect %s", url, target)
            url = target
        raise RegistryError(f"registry {self._image.registry} redirected more than {_MAX_REDIRECTS} times for {url}")

    async def _read(self, url: str, resp: aiohttp.ClientResponse) -> tuple[int, str, str, bytes]:
        body = await resp.content.read(_MAX_BODY + 1)
        if len(body) > _MAX_BODY:
            raise RegistryError(f"registry {self._image.registry} sent more than {_MAX_BODY} bytes for {url}")
        challenge = resp.headers.get("WWW-Authenticate", "")
        logger.debug("GET %s -> %s %s", url, resp.status, resp.content_type)
        return resp.status, challenge, resp.content_type, body

    async def _fetch_token(self, challenge: str) -> str:
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _CHALLENGE_PARAM.finditer(challenge[len("bearer ") :])
        }
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise RegistryError(
                f"registry {self._image.registry} sent a Bearer challenge without a usable realm "
                f"({challenge!r}); check the registry's auth configuration"
            )
        self._allowed.check_url(realm, f"the token realm {realm!r} of registry {self._image.registry}", plain_http=self._plain)
        query = {"scope": params.get("scope") or f"repository:{self._image.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        async with self._session.get(realm, params=query, allow_redirects=False) as resp:
            body = await resp.content.read(_MAX_BODY)
            if resp.status != 200:
                raise RegistryError(
                    f"the token service {realm} of registry {self._image.registry} answered "
                    f"HTTP {resp.status} for anonymous pull of {self._image.repository}; "
                    f"the image may be private or the name misspelled"
                )
        try:
            doc = json.loads(body)
            token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else ""
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RegistryError(f"the token service {realm} sent invalid JSON") from e
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service {realm} sent no token")
        return token

    def _raise_for_status(self, status: int, path: str) -> None:
        if status == 200:
            return
        where = f"registry {self._image.registry}"
        if status == 404:
            raise RegistryError(
                f"{where} has no {'blob' if path.startswith('blobs/') else 'manifest'} "
                f"for {self._image} (HTTP 404); "
                f"check the repository name and tag, and whether it was deleted"
            )
        if status in (401, 403):
            raise RegistryError(
                f"{where} refused anonymous access to {self._image.repository} (HTTP {status}); "
                f"the image may be private or the name misspelled"
            )
        if status == 429:
            raise RegistryError(f"{where} rate-limited the look-up of {self._image}; try later")
        raise RegistryError(
            f"{where} answered HTTP {status} for {path} of {self._image}; "
            f"check the registry's status"
        )
