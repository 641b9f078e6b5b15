"""The collector's HTTP side: /metrics, health, and the JSON API (aiohttp).

Handlers validate their query parameters (a bad value is a 400 with a message)
and call the store in a worker thread; they only convert data.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from collector import auth
from collector.check import imagecheck
from collector.check.registry import parse_reference
from collector.errors import InvalidReference, RegistryError, RegistryRefused, StoreError
from collector.http import check_view, hints_view
from collector.ingest import ingest
from collector.ingest.agent_resources import ResourceBoard, resources_json
from collector.ingest.inventory import InventoryBoard, images_json
from collector.ingest.presence import Presence, overlay
from collector.store.store import Store
from enoexec import limits, platforms
from enoexec.causes import CAUSES, FAILURES
from enoexec.logsetup import Repeats

logger = logging.getLogger(__name__)

MAX_LIMIT = 1000
HOSTS_PAGE = 1000  # hosts per /api/v1/hosts page unless ?limit= says otherwise
MAX_HOSTS_LIMIT = 10_000
MAX_PARAM = 512
PROBE_EVERY = 1.0  # seconds between write probes behind /readyz

PlatformLookup = Callable[[str], Any]  # async: ref -> tuple[str, ...]
ImageReader = Callable[[str], Awaitable[imagecheck.ImageRead]]  # ref -> every platform's entrypoint


class BadRequest(ValueError):
    pass


def _known(query: Mapping[str, str], known: set[str], path: str) -> None:
    """A parameter the endpoint does not take is a 400, never silently ignored (``check?target=`` is not --target)."""
    unknown = sorted(set(query) - known)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; {path} takes " + (", ".join(sorted(known)) or "none"))


def _param(query: Mapping[str, str], name: str) -> str | None:
    getall = getattr(query, "getall", None)  # aiohttp's MultiDict: ?failure=a&failure=b
    if getall is not None and len(getall(name, [])) > 1:
        raise BadRequest(f"{name}: given {len(getall(name))} times; give it once")
    value = query.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_PARAM or not value.isprintable():
        raise BadRequest(f"{name}: too long or not printable")
    return value


def parse_events_query(query: Mapping[str, str]) -> dict[str, Any]:
    """Filters for /api/v1/events; BadRequest names the bad parameter."""
    known = {"limit", "host", "image", "cause", "failure", "since"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
    out: dict[str, Any] = {"limit": 100}
    limit = _param(query, "limit")
    if limit is not None:
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_LIMIT:
            raise BadRequest(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
        out["limit"] = int(limit)
    for name in ("host", "image"):
        out[name] = _param(query, name)
    cause = _param(query, "cause")
    if cause is not None and cause not in CAUSES:
        raise BadRequest(f"cause: expected one of {', '.join(sorted(CAUSES))}, got {cause!r}")
    out["cause"] = cause
    failure = _param(query, "failure")
    if failure is not None and failure not in FAILURES:
        raise BadRequest(f"failure: expected one of {', '.join(sorted(FAILURES))}, got {failure!r}")
    out["failure"] = failure
    since = _param(query, "since")
    if since is not None:
        out["since"] = parse_time(since)
    return out


def parse_hosts_query(query: Mapping[str, str]) -> tuple[int, str]:
    """(limit, cursor) for /api/v1/hosts; BadRequest names the bad parameter."""
    known = {"limit", "cursor"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
    limit = _param(query, "limit")
    if limit is not None and (not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_HOSTS_LIMIT):
        raise BadRequest(f"limit: expected a whole number from 1 to {MAX_HOSTS_LIMIT}, got {limit!r}")
    return (int(limit) if limit is not None else HOSTS_PAGE), _param(query, "cursor") or ""


def parse_time(value: str) -> datetime:
    """RFC 3339 (``2026-11-28T00:00:00Z``) or Unix seconds."""
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), tz=UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC now: a time whose UTC form leaves datetime's range (0001-01-01T00:00+01:00) is refused here.
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"since: expected RFC 3339 time or Unix seconds, got {value!r}") from None


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def host_json(h: Any) -> dict[str, Any]:
    facts = h.facts or {}
    return {
        "host_id": h.host_id,
        "platform": h.platform,
        "kernel": facts.get("kernel_release", ""),
        "kernel_machine": facts.get("kernel_machine", ""),
        "docker_version": facts.get("docker_version", ""),
        "engine": facts.get("engine", "") or ("docker" if facts.get("docker_version") else ""),
        "engine_version": facts.get("engine_version", "") or facts.get("docker_version", ""),
        "emulated_platforms": list(container_emulated(facts)),
        "runnable_platforms": facts.get("runnable_platforms", []),
        "can_run_32bit": bool(facts.get("can_run_32bit", False)),
        "first_seen": _iso(h.first_seen),
        "last_seen": _iso(h.last_seen),
        "connected": h.connected,
        "spool_events": h.spool_events,
        "dropped_total": h.dropped_total,
        "facts": facts,
    }


def container_emulated(facts: dict[str, Any]) -> tuple[str, ...]:
    """Platforms a host emulates inside containers: enabled binfmt_misc entries with
    the F flag (the JSON twin of ``agent.model.HostFacts.emulated_platforms``)."""
    return tuple(sorted({
        e.get("platform", "") for e in facts.get("emulators", [])
        if e.get("enabled") and e.get("platform") and "F" in e.get("flags", "")
    }))


def _http_error(e: web.HTTPException, request: web.Request) -> str:
    if e.status == 404:
        return f"no such path {request.path!r}; see /api/v1/events, /api/v1/hosts, /api/v1/hints, /api/v1/check, /api/v1/images"
    if e.status == 405:
        return f"method {request.method} is not allowed on {request.path}; allowed: {e.headers.get('Allow', '')}"
    return e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason


class Api:
    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry,
        *,
        lookup_platforms: PlatformLookup,
        read_image: ImageReader | None = None,
        tokens: auth.Tokens | None = None,
        protect_metrics: bool = False,
        resources: ResourceBoard | None = None,
        presence: Presence | None = None,
        inventory: InventoryBoard | None = None,
        on_forget: Callable[[str], None] = lambda host_id: None,
        writer_failure: Callable[[], str] = lambda: "",
    ) -> None:
        self._inventory = inventory or InventoryBoard()
        self._writer_failure = writer_failure
        self._store_failures = Repeats(logger, "API reads failing", every=300.0)
        self._on_forget = on_forget
        self._resources = resources or ResourceBoard()
        self._store = store
        self._presence = presence or Presence()
        self._registry = registry
        self._lookup = lookup_platforms
        self._read_image = read_image
        self._tokens = tokens
        self._protect_metrics = protect_metrics
        self.draining = False  # set at shutdown: /readyz says 503 so balancers move away
        self._probe_lock = asyncio.Lock()
        self._probed_at = float("-inf")
        self._probe_error = ""

    def _needs_token(self, path: str) -> bool:
        if self._tokens is None:
            return False
        return path.startswith("/api/") or (self._protect_metrics and path == "/metrics")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024, middlewares=[self._errors, self._auth])
        app.add_routes([
            web.get("/metrics", self.metrics),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/api/v1/events", self.events),
            web.get("/api/v1/hosts", self.hosts),
            web.get("/api/v1/hints", self.hints),
            web.get("/api/v1/check", self.check),
            web.get("/api/v1/images", self.images),
            web.delete("/api/v1/hosts/{host_id}", self.forget_host),
        ])
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Every error is a JSON object ``{"error": "..."}``, unknown paths and methods too."""
        try:
            response = await handler(request)
            if self._store_failures.failing and request.path.startswith("/api/"):
                self._store_failures.recovered("working again")
            return response
        except BadRequest as e:
            return web.json_response({"error": str(e)}, status=400)
        except StoreError as e:
            self._store_failures.failed(str(e), path=request.path)
            return web.json_response({"error": "store unavailable"}, status=503)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            headers = {k: v for k, v in e.headers.items() if k in ("Allow", "WWW-Authenticate")}
            return web.json_response({"error": _http_error(e, request)}, status=e.status, headers=headers)
        except Exception as e:  # a bug: one line at ERROR (the traceback at DEBUG), a JSON 500 to the client
            logger.error("request failed path=%s error=%s: %s", request.path, type(e).__name__, str(e)[:200])
            logger.debug("request failed path=%s", request.path, exc_info=True)
            return web.json_response({"error": f"the collector failed on {request.path}; see its log"}, status=500)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if self._needs_token(request.path):
            token = auth.bearer(request.headers.items())
            if token is None or self._tokens is None or self._tokens.host_for(token) is None:
                return web.json_response(
                    {"error": "this endpoint needs 'Authorization: Bearer <token>' with a token from --http-token-file"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="enoexec"'},
                )
        return await handler(request)

    async def metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready when the writer's last transaction committed and the store commits a
        write (not merely answers), probed at most once a second."""
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        async with self._probe_lock:
            if time.monotonic() - self._probed_at >= PROBE_EVERY:
                try:
                    await asyncio.to_thread(self._store.probe_write)
                    self._probe_error = ""
                except StoreError as e:
                    self._probe_error = str(e)
                self._probed_at = time.monotonic()
        # The writer's own last result first: a probe can commit in free pages while
        # the writer cannot grow the file.
        error = self._writer_failure() or self._probe_error
        if error:
            return web.json_response({"status": "unavailable", "error": error}, status=503)
        return web.json_response({"status": "ready"})

    async def events(self, request: web.Request) -> web.Response:
        q = parse_events_query(request.query)
        rows = await asyncio.to_thread(lambda: self._store.events(**q))
        return web.json_response({"events": rows})

    async def hosts(self, request: web.Request) -> web.Response:
        """One page of hosts by host id; ``next_cursor`` (null on the last page) is
        the ``cursor`` that fetches the next."""
        limit, cursor = parse_hosts_query(request.query)
        stored = await asyncio.to_thread(lambda: self._store.hosts(limit=limit, after=cursor))
        rows = overlay(stored, self._presence.local(), after=cursor, limit=limit)
        next_cursor = rows[-1].host_id if len(rows) >= limit else None
        return web.json_response({"hosts": [self._with_resources(host_json(h)) for h in rows], "next_cursor": next_cursor})

    def _with_resources(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The agent's own report, while it is connected: ``spool_writable`` is null when unknown."""
        r = self._resources.get(doc["host_id"])
        doc["spool_writable"] = r.spool_writable if r is not None else None
        doc["agent_resources"] = resources_json(r)
        return doc

    async def hints(self, request: web.Request) -> web.Response:
        _known(request.query, set(), "/api/v1/hints")
        groups = await asyncio.to_thread(self._store.hint_groups)
        return web.json_response({"hints": [hints_view.group_json(g) for g in groups]})

    async def images(self, request: web.Request) -> web.Response:
        """Images on connected agents' hosts that cannot run there, grouped by image, cause and host platform."""
        if request.query:
            raise BadRequest(f"unknown parameter {sorted(request.query)[0]!r}; /api/v1/images takes none")
        return web.json_response({"images": images_json(self._inventory.snapshot())})

    async def forget_host(self, request: web.Request) -> web.Response:
        host_id = request.match_info["host_id"]
        if not limits.valid_host_id(host_id):
            raise BadRequest(f"host_id: {host_id!r} is not a host id (letters, digits and . _ : @ -)")
        local = self._presence.local().get(host_id)
        if local is not None and local.connected:
            outcome = "connected"
        else:
            outcome = await asyncio.to_thread(
                lambda: self._store.forget_host(host_id, released_here=local is not None))
        if outcome == "unknown" and local is not None:
            outcome = "forgotten"  # known here only: not yet written to the store
        if outcome != "connected":
            self._presence.forget(host_id)  # a disconnect not yet written must not bring it back
        if outcome == "unknown":
            return web.json_response({"error": f"no host {host_id!r} is known"}, status=404)
        if outcome == "connected":
            return web.json_response(
                {"error": f"host {host_id!r} is connected: stop its agent first (a running agent would register again)"},
                status=409,
            )
        self._on_forget(host_id)
        logger.info("host forgotten host_id=%s peer=%s", host_id, request.remote)
        return web.json_response({"host_id": host_id, "forgotten": True})

    async def check(self, request: web.Request) -> web.Response:
        _known(request.query, {"image", "platform"}, "/api/v1/check")
        image = _param(request.query, "image")
        if image is None:
            raise BadRequest("image: required, e.g. /api/v1/check?image=nginx:1.27")
        try:
            parse_reference(image)
        except InvalidReference as e:
            raise BadRequest(f"image: {e}") from None
        wanted = request.query.getall("platform", [])
        offered: list[str] = []
        for p in wanted:
            norm = platforms.parse(p)
            if not (ingest.valid_platform(norm) and platforms.is_known(norm)):
                raise BadRequest(f"platform: expected os/arch[/variant] with a known architecture, such as linux/arm64, got {p!r}")
            offered.append(norm)
        hosts = overlay(await asyncio.to_thread(self._store.hosts), self._presence.local())
        facts = [imagecheck.host_facts(h.host_id, h.platform, h.facts or {}) for h in hosts]
        recorded: list[dict[str, Any]] = []
        for name in imagecheck.names_of(image):  # "nginx" and "nginx:latest" are one image
            recorded += await asyncio.to_thread(functools.partial(self._store.events, image=name, limit=1000))
        seen = imagecheck.seen_from_events(recorded)
        if offered:
            answers = imagecheck.label_answer(offered, facts, seen, image)
            return web.json_response(check_view.answer_json(image, answers, platforms=offered, source="query", seen=seen))
        if self._read_image is None:  # label only: the registry's platforms
            try:
                offered = list(await self._lookup(image))
            except RegistryRefused as e:
                return web.json_response({"error": str(e)}, status=403)
            except RegistryError as e:
                return web.json_response({"error": str(e)}, status=502)
            answers = imagecheck.label_answer(offered, facts, seen, image)
            return web.json_response(check_view.answer_json(image, answers, platforms=offered, source="registry", seen=seen))
        try:
            read = await self._read_image(image)
        except RegistryRefused as e:
            return web.json_response({"error": str(e)}, status=403)
        except RegistryError as e:
            return web.json_response({"error": str(e)}, status=502)
        answers = imagecheck.answer(read, facts, seen)
        return web.json_response(check_view.answer_json(
            image, answers, platforms=[p.platform for p in read.platforms], source="registry", read=read, seen=seen))
