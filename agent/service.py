"""The agent daemon: watch Docker, diagnose exits, spool them, stream them.

Threads: the Docker event stream (blocking docker-py) runs in its own thread
and hands exits to the asyncio loop; diagnosis and spool writes run in worker
threads; the gRPC stream runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import docker
import docker.errors
import grpc
import requests.exceptions

from agent.config import AgentConfig
from agent.delivery import wire
from agent.delivery.sender import Sender
from agent.delivery.spool import Spool
from agent.diagnosis.diagnose import Diagnoser, Exit, Outcome, exit_key
from agent.engine.reconcile import missed_exits
from agent.engine.watch import Watcher
from agent.errors import DockerUnavailable
from agent.host import hostfacts
from agent.model import HostFacts
from enoexec.sdnotify import Notifier

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "reconcile_checkpoint"
FIRST_RUN_LOOKBACK = timedelta(hours=1)
SEEN_RETENTION = timedelta(days=7)
SHUTDOWN_GRACE = 5.0
FACTS_REFRESH = 60.0


def docker_client(url: str) -> docker.APIClient:
    """A client for the engine at ``url``; DockerUnavailable says how to fix a failure."""
    try:
        return docker.APIClient(base_url=url, version="auto", timeout=30)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        reason = str(e).splitlines()[0][:200]
        raise DockerUnavailable(
            f"cannot reach the Docker Engine at {url} ({reason}); is dockerd running? set --docker-host or DOCKER_HOST"
        ) from e


def gather_facts(api: Any, host_id: str, proc_root: Path = Path("/proc")) -> HostFacts:
    """Host facts with the Docker Engine's view when it answers, without otherwise."""
    info: dict[str, Any] | None = None
    version: dict[str, Any] | None = None
    try:
        info, version = api.info(), api.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        logger.warning("docker facts unavailable error=%s", str(e).splitlines()[0][:200])
    return hostfacts.gather(host_id=host_id or None, proc_root=proc_root, docker_info=info, docker_version=version)


def credentials(config: AgentConfig) -> grpc.ChannelCredentials | None:
    """TLS verifying the collector with the CA, presenting a client certificate if configured."""
    if config.insecure or config.tls_ca is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=config.tls_ca.read_bytes(),
        private_key=config.tls_key.read_bytes() if config.tls_key else None,
        certificate_chain=config.tls_cert.read_bytes() if config.tls_cert else None,
    )


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        api: Any | None = None,
        spool: Spool | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.config = config
        self.api = api or docker_client(config.docker_host)
        self.spool = spool or Spool(
            config.state_dir / "spool.db", max_events=config.spool_max_events, max_bytes=config.spool_max_bytes
        )
        self._clock = clock
        self._proc_root = config.proc_root
        self.host = gather_facts(self.api, config.host_id, self._proc_root)
        self._binfmt = hostfacts.binfmt_signature(self._proc_root)
        self.diagnoser = Diagnoser(
            self.api, lambda: self.host, lookup_registry=config.lookup_registry,
            image_fallback=config.image_fallback, clock=clock,
        )
        self.sender = Sender(
            config.collector,
            self.spool,
            lambda: wire.host_pb(self.host),
            credentials=credentials(config),
            token=config.token(),
            batch_size=config.batch_size,
            heartbeat_interval=config.heartbeat_interval,
        )
        self._stop_thread = threading.Event()
        self._exits: asyncio.Queue[Exit] = asyncio.Queue()
        self._reconcile_now = asyncio.Event()

    # -- handling one exit ----------------------------------------------------
    async def handle(self, exit: Exit) -> Outcome | None:
        try:
            outcome = await asyncio.to_thread(self.diagnoser.diagnose, exit)
        except DockerUnavailable as e:
            logger.warning("diagnosis deferred container=%s error=%s", exit.container_id[:12], e)
            return None
        if outcome.event is not None:
            ev = outcome.event
            payload = wire.event_pb(ev).SerializeToString()
            if await asyncio.to_thread(self.spool.put, ev.event_id, payload):
                logger.info(
                    "exec format error event_id=%s container=%s image=%s cause=%s binary_platform=%s host_platform=%s",
                    ev.event_id, ev.container.name or ev.container.id[:12], ev.image.ref, ev.cause,
                    ev.binary.platform or "-", ev.host.platform,
                )
                self.sender.notify()
        await asyncio.to_thread(self.spool.mark_seen, outcome.key)
        return outcome

    async def _worker(self) -> None:
        while True:
            exit = await self._exits.get()
            try:
                await self.handle(exit)
            except Exception:  # one bad exit (or a spool error) must not stop the worker for good
                logger.exception("exit not handled container=%s; left for reconciliation", exit.container_id[:12])

    async def reconcile(self) -> int:
        """Diagnose exits the event stream missed; returns how many were new."""
        started = self._clock()
        raw = await asyncio.to_thread(self.spool.get_state, CHECKPOINT_KEY)
        since = datetime.fromisoformat(raw) if raw else started - FIRST_RUN_LOOKBACK
        try:
            exits = await asyncio.to_thread(missed_exits, self.api, since)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            logger.warning("reconciliation deferred error=%s", str(e).splitlines()[0][:200])
            return 0
        new = 0
        for exit in exits:
            assert exit.time is not None
            if await asyncio.to_thread(self.spool.is_seen, exit_key(exit.container_id, exit.time)):
                continue
            outcome = await self.handle(exit)
            if outcome is None:
                return new  # Docker went away: keep the checkpoint, retry later
            new += 1
        # Exits that finish during the pass are seen by the next one.
        await asyncio.to_thread(self.spool.set_state, CHECKPOINT_KEY, (started - timedelta(seconds=1)).isoformat())
        await asyncio.to_thread(self.spool.prune_seen, (started - SEEN_RETENTION).timestamp())
        if new:
            logger.info("reconciliation found missed exits count=%d", new)
        return new

    async def _reconciler(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._reconcile_now.wait(), timeout=self.config.reconcile_interval)
            except asyncio.TimeoutError:
                pass
            self._reconcile_now.clear()
            try:
                await self.reconcile()
            except Exception:  # retried at the next interval; the checkpoint did not move
                logger.exception("reconciliation failed")

    async def _refresh_facts(self) -> None:
        """Re-gather host facts when binfmt registrations change (engine changes are
        caught on reconnect, in ``run``)."""
        while True:
            await asyncio.sleep(FACTS_REFRESH)
            sig = await asyncio.to_thread(hostfacts.binfmt_signature, self._proc_root)
            if sig != self._binfmt:
                self._binfmt = sig
                self.host = await asyncio.to_thread(gather_facts, self.api, self.config.host_id, self._proc_root)
                logger.info("host facts refreshed reason=binfmt emulated=%s", ",".join(self.host.emulated_platforms) or "-")

    # -- lifecycle --------------------------------------------------------------
    async def run(self, stop: asyncio.Event, notify: Notifier = Notifier()) -> None:
        loop = asyncio.get_running_loop()

        def on_exit(exit: Exit) -> None:
            loop.call_soon_threadsafe(self._exits.put_nowait, exit)

        first_connect = True

        def on_connect() -> None:
            nonlocal first_connect
            loop.call_soon_threadsafe(self._reconcile_now.set)
            if not first_connect:
                # A reconnect may follow a daemon upgrade: refresh what Docker says.
                # (The first connect follows the gathering in __init__.)
                self.host = gather_facts(self.api, self.config.host_id, self._proc_root)
            first_connect = False

        watcher = Watcher(self.api, on_exit, on_connect, stop=self._stop_thread)
        thread = threading.Thread(target=watcher.run, name="docker-events", daemon=True)
        thread.start()
        logger.info(
            "agent started host_id=%s platform=%s collector=%s docker_host=%s state_dir=%s",
            self.host.host_id, self.host.platform, self.config.collector, self.config.docker_host, self.config.state_dir,
        )
        tasks = [
            asyncio.create_task(self.sender.run(), name="sender"),
            asyncio.create_task(self._worker(), name="worker"),
            asyncio.create_task(self._reconciler(), name="reconciler"),
            asyncio.create_task(self._refresh_facts(), name="facts"),
            asyncio.create_task(notify.watchdog(), name="watchdog"),  # pings while this loop turns
        ]
        notify.ready(f"watching {self.config.docker_host}")
        try:
            await stop.wait()
        finally:
            notify.stopping()
            logger.info("agent stopping")
            watcher.close()
            for t in tasks[1:]:
                t.cancel()
            # Flush what the collector will take within the grace period.
            self.sender.stop()
            try:
                await asyncio.wait_for(tasks[0], timeout=SHUTDOWN_GRACE)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(thread.join, SHUTDOWN_GRACE)
            left = self.spool.stats().events
            self.spool.close()
            logger.info("agent stopped spooled=%d", left)
