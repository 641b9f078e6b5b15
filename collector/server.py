"""Run the collector: the gRPC server and the HTTP API in one event loop.

Shutdown: stop accepting, give open streams a bounded grace period, then cancel.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from datetime import timedelta

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from collector import auth, listen
from collector.check import imagecheck
from collector.check import registry as image_registry
from collector.check.entrypoint_read import EntrypointCache
from collector.config import CollectorConfig
from collector.errors import ConfigError, StoreError
from collector.http.api import Api
from collector.http.json_errors import JsonErrorsRunner
from collector.http.metrics import FleetCollector
from collector.ingest.agent_resources import AgentResourcesCollector, BuildInfoCollector, ResourceBoard
from collector.ingest.host_cap import HostCap
from collector.ingest.inventory import InventoryBoard, UnrunnableImagesCollector
from collector.ingest.presence import Presence
from collector.ingest.service import CollectorService, utcnow
from collector.ingest.stats import Stats
from collector.ingest.writer import GroupWriter
from collector.replica import ReplicaLease
from collector.store.store import Store
from enoexec.sdnotify import Notifier
from enoexec.v1 import enoexec_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

CHECK_READS = 4  # images read from registries at once by /api/v1/check

GRACE = 5.0
PRUNE_EVERY = 3600.0
HOST_CAP_REFRESH = 30.0  # seconds between re-reads of the known hosts behind --max-hosts
MAX_MESSAGE = 4 * 1024 * 1024

# Agents ping every 60 s (see agent.sender); permit pings every 30 s or more.
SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 120_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_connection_idle_ms", 15 * 60_000),
    # gRPC sets SO_REUSEPORT by default: a second collector on the same port would
    # start silently and take half the fleet into another database.
    ("grpc.so_reuseport", 0),
)


def server_credentials(config: CollectorConfig) -> grpc.ServerCredentials | None:
    """mTLS when a CA is given (client certificates required), else server-only TLS."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=config.tls_ca.read_bytes() if config.tls_ca else None,
        require_client_auth=config.tls_ca is not None,
    )


def http_ssl_context(config: CollectorConfig) -> ssl.SSLContext | None:
    if config.http_tls_cert is None or config.http_tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.http_tls_cert, config.http_tls_key)
    return ctx


class _ClientErrors(logging.Filter):
    """aiohttp logs a malformed request (a header over 8 KiB, garbage on the port)
    at error level with a traceback; it is the client's fault, answered with a
    400, so log one debug line instead and let no client flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg, record.args = "bad http request peer=%s status=%s error=%s", (
                record.args[0] if isinstance(record.args, tuple) and record.args else "?", exc.code, exc.message.splitlines()[0][:200])
            record.exc_info = record.exc_text = None
            return logger.isEnabledFor(logging.DEBUG)
        return True


http_logger = logging.getLogger("collector.http")
http_logger.addFilter(_ClientErrors())


class Collector:
    def __init__(self, config: CollectorConfig, *, store: Store | None = None, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        # Before the store opens: a collector that cannot listen leaves no database behind.
        listen.check_free("--grpc-listen", config.grpc_listen)
        listen.check_free("--http-listen", config.http_listen)
        self.store = store or Store(config.db, replica_id=config.replica_id)
        self.stats = Stats()
        self.presence = Presence()
        self.registry = registry or CollectorRegistry()
        self.registry.register(
            FleetCollector(self.store, self.stats, self.presence, max_image_labels=config.max_image_labels)
        )
        self.resources = ResourceBoard()
        self.host_cap = HostCap(config.max_hosts)
        self.lease = ReplicaLease(self.store, self.store.replica_id)
        self.registry.register(AgentResourcesCollector(self.resources))
        self.inventory = InventoryBoard()
        self.registry.register(UnrunnableImagesCollector(self.inventory, max_image_labels=config.max_image_labels))
        self.registry.register(BuildInfoCollector())
        self.tokens = auth.load_tokens(config.tokens_file) if config.tokens_file else None
        self.http_tokens = auth.load_tokens(config.http_token_file, "--http-token-file") if config.http_token_file else None
        self.grpc_port = 0
        self.http_port = 0

    async def _prune(self) -> None:
        while True:
            try:
                n = await asyncio.to_thread(self.store.prune, utcnow() - timedelta(days=self.config.retention_days))
                if n:
                    logger.info("retention pruned events=%d", n)
            except StoreError as e:
                logger.warning("retention prune failed error=%s", e)
            await asyncio.sleep(PRUNE_EVERY)

    async def _expire_hosts(self) -> None:
        """Forget hosts silent for --host-expiry, so their AgentDown alerts clear."""
        expiry = timedelta(seconds=self.config.host_expiry)
        every = min(60.0, max(1.0, self.config.host_expiry / 4))
        while True:
            try:
                gone = await asyncio.to_thread(self.store.expire_hosts, utcnow() - expiry)
                for host_id in gone:
                    self.host_cap.discard(host_id)
                    logger.info("host expired host_id=%s silent_for_more_than=%s", host_id, expiry)
            except StoreError as e:
                logger.warning("host expiry failed error=%s", e)
            await asyncio.sleep(every)

    async def _refresh_host_cap(self) -> None:
        """Hosts other replicas admitted, or that were retired, count from the next read."""
        while True:
            await asyncio.sleep(HOST_CAP_REFRESH)
            try:
                stored = await asyncio.to_thread(self.store.host_ids)
            except StoreError:
                continue  # the writer and /readyz say it; the book stays as it was
            self.host_cap.refresh([*stored, *self.presence.local()])

    async def run(self, stop: asyncio.Event, notify: Notifier | None = None) -> None:
        notify = notify or Notifier()
        try:
            await asyncio.to_thread(self.lease.claim)
        except ConfigError:
            await asyncio.to_thread(self.store.close)
            raise
        await asyncio.to_thread(self.store.disconnect_all)
        self.host_cap.refresh(await asyncio.to_thread(self.store.host_ids))
        writer = GroupWriter(self.store, self.presence, host_flush_seconds=self.config.host_flush_seconds)
        writing = asyncio.create_task(writer.run(), name="group-writer")
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_CollectorServicer_to_server(
            CollectorService(
                self.stats, self.presence, writer, max_batch_events=self.config.max_batch_events,
                tokens=self.tokens, agent_rate=self.config.agent_rate, agent_burst=self.config.agent_burst,
                max_streams=self.config.max_streams, hello_timeout=self.config.hello_timeout,
                resources=self.resources, inventory=self.inventory, host_cap=self.host_cap,
            ),
            server,
        )
        # grpc.health.v1 (Kubernetes gRPC probes, grpc_health_probe, meshes): SERVING while
        # the collector takes streams, NOT_SERVING from the moment it starts draining.
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        creds = server_credentials(self.config)
        try:
            if creds is None:
                self.grpc_port = server.add_insecure_port(self.config.grpc_listen)
            else:
                self.grpc_port = server.add_secure_port(self.config.grpc_listen, creds)
        except RuntimeError:
            writer.stop()
            await writing
            await asyncio.to_thread(self.lease.release)
            raise ConfigError(listen.cannot_listen("--grpc-listen", self.config.grpc_listen)) from None
        await server.start()
        for service in ("", HEALTH_SERVICE):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

        policy = self.config.check_registries
        entrypoints = EntrypointCache()
        reading = asyncio.Semaphore(CHECK_READS)  # a burst of checks does not read a burst of layers

        async def read_image(ref: str) -> imagecheck.ImageRead:
            async with reading:
                return await imagecheck.read_registry(ref, allowed=policy, cache=entrypoints,
                                                      max_bytes=self.config.check_max_bytes, timeout=self.config.check_timeout)

        api = Api(
            self.store, self.registry, lookup_platforms=lambda ref: image_registry.fetch_platforms(ref, allowed=policy),
            read_image=read_image,
            tokens=self.http_tokens, protect_metrics=self.config.protect_metrics, presence=self.presence, resources=self.resources,
            inventory=self.inventory,
            on_forget=self.host_cap.discard, writer_failure=lambda: writer.failure,
        )
        runner = JsonErrorsRunner(api.app(), access_log=None, shutdown_timeout=GRACE, logger=http_logger)
        await runner.setup()
        host, port = listen.split(self.config.http_listen)
        site = web.TCPSite(runner, host or None, port, ssl_context=http_ssl_context(self.config), reuse_port=False)
        try:
            await site.start()
        except OSError as e:
            await server.stop(0)
            await runner.cleanup()
            writer.stop()
            await writing
            await asyncio.to_thread(self.lease.release)
            raise ConfigError(listen.cannot_listen("--http-listen", self.config.http_listen, e)) from None
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - aiohttp keeps the bound port here
        self.http_port = sockets[0].getsockname()[1] if sockets else port
        logger.info(
            "collector started grpc=%s grpc_port=%d http=%s http_port=%d db=%s replica_id=%s tls=%s",
            self.config.grpc_listen, self.grpc_port, self.config.http_listen, self.http_port,
            _redact(self.config.db), self.config.replica_id, creds is not None,
        )
        if self.http_tokens is None and not _loopback(host):
            logger.warning("the JSON API on %s needs no token: anyone who reaches it can read the fleet, "
                           "retire hosts and run 'check'; set --http-token-file", self.config.http_listen)
        tasks = [asyncio.create_task(self._prune(), name="prune"),
                 asyncio.create_task(self._refresh_host_cap(), name="host-cap"),
                 asyncio.create_task(self.lease.run(), name="replica-lease")]
        if self.config.host_expiry > 0:
            tasks.append(asyncio.create_task(self._expire_hosts(), name="expire-hosts"))
        tasks.append(asyncio.create_task(notify.watchdog(), name="watchdog"))  # pings while this loop turns
        notify.ready(f"grpc port {self.grpc_port}, http port {self.http_port}")
        try:
            await stop.wait()
        finally:
            notify.stopping()
            logger.info("collector stopping")
            api.draining = True
            await health_servicer.enter_graceful_shutdown()
            for task in tasks:
                task.cancel()
            await server.stop(GRACE)
            await runner.cleanup()
            writer.stop()
            await writing
            await asyncio.to_thread(self.store.disconnect_all)
            try:
                await asyncio.to_thread(self.lease.release)
            except StoreError as e:  # the id is taken over once its lease stands still
                logger.warning("replica lease not released error=%s", e)
            await asyncio.to_thread(self.store.close)
            logger.info("collector stopped")


HEALTH_SERVICE = "enoexec.v1.Collector"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _redact(url: str) -> str:
    """A database URL without its password, for logs."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
