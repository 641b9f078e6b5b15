"""The agent daemon: watch the container engine, diagnose exits, spool them, stream them.

The engine (Docker or containerd, ``agent.engine.registry``) is behind one
boundary (``agent.engine.base.Engine``). Threads: the engine's event stream runs
in its own thread and hands exits to the asyncio loop; exits are diagnosed
concurrently in a bounded pool of engine threads (in order per container),
spool writes run in worker threads; the gRPC stream runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from agent.config import AgentConfig
from agent.delivery import wire
from agent.delivery.sender import Sender
from agent.delivery.spool import Spool
from agent.diagnosis.diagnose import Outcome, seen_keys
from agent.engine import exits as ex
from agent.engine.base import Engine
from agent.engine.exits import Exit
from agent.engine.ordered import OrderedPool
from agent.engine.registry import open_engine
from agent.errors import ConfigError, DockerUnavailable, EngineUnavailable, SpoolError
from agent.host import hostfacts
from agent.inventory import runner as inventory_runner
from agent.inventory.scan import Inventory
from enoexec.limits import MAX_EVENT_BYTES
from enoexec.logsetup import Repeats
from enoexec.sdnotify import Notifier

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "reconcile_checkpoint"
HOST_ID_KEY = "host_id"
# A fresh agent (empty state dir) reports exits from this long before it started,
# marked back-filled (kept out of enoexec_exits_total by the collector).
BACKFILL_WINDOW = timedelta(hours=1)
# Exits found in containers' state are taken only once this old: their die event,
# if the stream delivers it, has been handled by then (in order per container).
STATE_GRACE = timedelta(seconds=5)
SEEN_RETENTION = timedelta(days=7)
SHUTDOWN_GRACE = 5.0
FACTS_REFRESH = 60.0
PARALLEL_EXITS = 8


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
        engine: Engine | None = None,
        spool: Spool | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parallel: int = PARALLEL_EXITS,
    ) -> None:
        self.config = config
        self.engine = engine or open_engine(config, api=api)
        self.api = getattr(self.engine, "api", None)  # the Docker client, when the engine is Docker
        self._clock = clock
        self._proc_root = config.proc_root
        self.host = self.engine.facts(config.host_id, self._proc_root)
        self.spool = spool or Spool(
            config.state_dir / "spool.db", max_events=config.spool_max_events, max_bytes=config.spool_max_bytes
        )
        self._claim_host_id()
        self._binfmt = hostfacts.binfmt_signature(self._proc_root)
        self.diagnoser = self.engine.diagnoser(
            lambda: self.host, lookup_registry=config.lookup_registry, image_fallback=config.image_fallback, clock=clock,
        )
        self._stop_thread = threading.Event()
        self.inventory = (Inventory(self.api, lambda: self.host, stop=self._stop_thread)
                          if config.image_inventory and config.image_fallback and self.api is not None else None)
        self.sender = Sender(
            config.collector,
            self.spool,
            lambda: wire.host_pb(self.host),
            credentials=credentials(config),
            token=config.token(),
            batch_size=config.batch_size,
            heartbeat_interval=config.heartbeat_interval,
            inventory=lambda: inventory_runner.report_pb(self.inventory) if self.inventory else None,
        )
        self._parallel = parallel
        self._docker = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=self.engine.name)
        self._unavailable: tuple[type[BaseException], ...] = (EngineUnavailable, *self.engine.unavailable)
        # Checking a just-started container for emulation: its own threads, off the event thread.
        self._quick = ThreadPoolExecutor(max_workers=2, thread_name_prefix="start-check")
        self._pool: OrderedPool | None = None
        self._started = clock()
        self._reconcile_now = asyncio.Event()
        self._deferred: list[Exit] = []
        # Exits met while the spool cannot be written stay for reconciliation to find again.
        self._unkept = Repeats(logger, "exits not kept, left for reconciliation", every=300.0)

    def _claim_host_id(self) -> None:
        """Spooled events carry the host id they were made with; the collector takes
        them only from that host. Refuse to start as another host while any wait."""
        made_as = self.spool.get_state(HOST_ID_KEY)
        now = self.host.host_id
        if made_as and made_as != now:
            waiting = self.spool.stats().events
            if waiting:
                path = self.spool.path
                self.spool.close()
                raise ConfigError(
                    f"the spool {path} holds {waiting} undelivered events made as host id {made_as!r}, but this "
                    f"agent's host id is now {now!r}: start it once with --host-id {made_as} until they are "
                    f"delivered, or delete {path} to discard them"
                )
            logger.warning("host id changed from %s to %s; the spool was empty", made_as, now)
        if made_as != now:
            self.spool.set_state(HOST_ID_KEY, now)

    # -- handling one exit ----------------------------------------------------
    def _already_handled(self, exit: Exit) -> bool:
        if self.spool.is_seen(exit.key):
            return True
        if exit.source != "state":
            return False
        # Its die event may have been handled under the die's own time.
        assert exit.time is not None
        return self.spool.seen_between(
            ex.exit_key(exit.container_id, exit.time), ex.exit_key(exit.container_id, exit.time + ex.DIE_AFTER_FINISH)
        )

    async def handle(self, exit: Exit) -> Outcome | None:
        """Diagnose, spool and remember one exit; ``None`` when the engine could not be asked."""
        if await asyncio.to_thread(self._already_handled, exit):
            return Outcome(exit.key)
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self._docker, self.diagnoser.diagnose, exit)
        except self._unavailable as e:
            # Its identity is in hand: diagnose it when the engine answers again
            # (the container, and its log up to the die, are still there then).
            logger.warning("diagnosis deferred container=%s error=%s", exit.container_id[:12], e)
            self._deferred.append(exit)
            return None
        if outcome.event is not None:
            ev = self.engine.enrich(outcome.event)
            message = wire.fit(wire.event_pb(ev), MAX_EVENT_BYTES)
            if await asyncio.to_thread(self.spool.put, ev.event_id, message.SerializeToString()):
                logger.info(
                    "exec format error event_id=%s container=%s image=%s cause=%s evidence=%s binary_platform=%s "
                    "host_platform=%s backfilled=%s",
                    ev.event_id, ev.container.name or ev.container.id[:12], ev.image.ref, ev.cause, ev.evidence,
                    ev.binary.platform or "-", ev.host.platform, ev.backfilled,
                )
                self.sender.notify()
        await asyncio.to_thread(self.spool.mark_seen_many, seen_keys(outcome))
        return outcome

    def _check_emulated(self, container_id: str, when: datetime, loop: asyncio.AbstractEventLoop) -> None:
        """On a docker-create thread: spool the emulation warning of a started container, once."""
        key = f"{container_id}~emulated"
        try:
            if self.spool.is_seen(key):
                return
            ev = self.diagnoser.emulated(container_id, when)
            if ev is not None and self.spool.put(ev.event_id, wire.fit(wire.event_pb(ev), MAX_EVENT_BYTES).SerializeToString()):
                logger.warning(
                    "container runs under emulation event_id=%s container=%s image=%s binary_platform=%s host_platform=%s",
                    ev.event_id, ev.container.name or container_id[:12], ev.image.ref, ev.binary.platform, ev.host.platform,
                )
                loop.call_soon_threadsafe(self.sender.notify)
            self.spool.mark_seen(key)
        except DockerUnavailable as e:
            logger.debug("emulation check skipped container=%s error=%s", container_id[:12], e)
        except Exception:  # a warning must never cost an exit
            logger.exception("emulation check failed container=%s", container_id[:12])

    async def _handle_logged(self, exit: Exit) -> Outcome | None:
        try:
            outcome = await self.handle(exit)
        except SpoolError as e:  # a full --state-dir: every exit meets it; said once, then summarised
            self._unkept.failed(str(e), container=exit.container_id[:12])
            return None
        except Exception:  # one bad exit must not stop the others
            logger.exception("exit not handled container=%s; left for reconciliation", exit.container_id[:12])
            return None
        self._unkept.recovered("exits are kept again")
        return outcome

    def submit(self, exit: Exit) -> asyncio.Task[Outcome | None]:
        """Handle ``exit`` concurrently with other containers' exits, after this container's earlier ones."""
        assert self._pool is not None
        self.engine.forget(exit.container_id)
        return self._pool.submit(exit.container_id, lambda: self._handle_logged(exit))


    # -- reconciliation ---------------------------------------------------------
    async def reconcile(self) -> int:
        """Diagnose exits the event stream missed; returns how many were new."""
        if self._pool is None:
            self._pool = OrderedPool(self._parallel)
        started = self._clock()
        raw = await asyncio.to_thread(self.spool.get_state, CHECKPOINT_KEY)
        fresh = raw is None
        since = datetime.fromisoformat(raw) if raw else self._started - BACKFILL_WINDOW
        until = started - STATE_GRACE
        new = 0
        deferred, self._deferred = self._deferred, []
        try:
            new, ok_deferred = await self._handle_all(deferred, fresh)
            replayed = await asyncio.to_thread(self.engine.replay_exits, since, started)
            new_replayed, ok = await self._handle_all(replayed, fresh)
            found = await asyncio.to_thread(self.engine.state_exits, since, until)
            new_found, ok_found = await self._handle_all(found, fresh)
        except self._unavailable as e:
            logger.warning("reconciliation deferred error=%s", str(e).splitlines()[0][:200])
            return 0
        new += new_replayed + new_found
        if not (ok and ok_found and ok_deferred):
            return new  # the engine went away: keep the checkpoint, retry later
        # Replays overlap the next pass by STATE_GRACE; exits met twice are named alike.
        await asyncio.to_thread(self.spool.set_state, CHECKPOINT_KEY, until.isoformat())
        await asyncio.to_thread(self.spool.prune_seen, (started - SEEN_RETENTION).timestamp())
        if new:
            logger.info("reconciliation found missed exits count=%d backfill=%s", new, fresh)
        return new

    async def _handle_all(self, exits: list[Exit], fresh: bool) -> tuple[int, bool]:
        """Handle ``exits`` through the pool; (how many were new, whether all were handled)."""
        tasks = []
        for exit in exits:
            if fresh and exit.time is not None and exit.time < self._started:
                exit = ex.Exit(exit.container_id, exit.exit_code, exit.image_ref, exit.name, exit.time,
                               exit.source, backfilled=True)
            if await asyncio.to_thread(self._already_handled, exit):
                continue
            tasks.append(self.submit(exit))
        outcomes = await asyncio.gather(*tasks)
        return sum(o is not None and o.event is not None for o in outcomes), all(o is not None for o in outcomes)

    async def _reconciler(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._reconcile_now.wait(), timeout=self.config.reconcile_interval)
            except TimeoutError:
                pass
            self._reconcile_now.clear()
            try:
                await self.reconcile()
            except SpoolError as e:  # retried at the next interval; the checkpoint did not move
                self._unkept.failed(str(e))
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
                self.host = await asyncio.to_thread(self.engine.facts, self.config.host_id, self._proc_root)
                logger.info("host facts refreshed reason=binfmt emulated=%s", ",".join(self.host.emulated_platforms) or "-")

    # -- lifecycle --------------------------------------------------------------
    async def run(self, stop: asyncio.Event, notify: Notifier | None = None) -> None:
        notify = notify or Notifier()
        loop = asyncio.get_running_loop()
        self._pool = OrderedPool(self._parallel)

        def on_exit(exit: Exit) -> None:
            loop.call_soon_threadsafe(self.submit, exit)

        def on_start(container_id: str, when: datetime) -> None:
            # Only a host that emulates a platform for containers has anything to check.
            if self.host.emulated_platforms:
                self._quick.submit(self._check_emulated, container_id, when, loop)

        first_connect = True

        def on_connect() -> None:
            nonlocal first_connect
            self.engine.reset()  # what happened while disconnected is unknown
            loop.call_soon_threadsafe(self._reconcile_now.set)
            if not first_connect:
                # A reconnect may follow a daemon upgrade: refresh what the engine says.
                # (The first connect follows the gathering in __init__.)
                self.host = self.engine.facts(self.config.host_id, self._proc_root)
            first_connect = False

        watcher = self.engine.watcher(on_exit, on_connect, stop=self._stop_thread, clock=self._clock, on_start=on_start)
        thread = threading.Thread(target=watcher.run, name=f"{self.engine.name}-events", daemon=True)
        thread.start()
        logger.info(
            "agent started host_id=%s platform=%s collector=%s engine=%s address=%s state_dir=%s",
            self.host.host_id, self.host.platform, self.config.collector, self.engine.name, self.engine.address,
            self.config.state_dir,
        )
        tasks = [
            asyncio.create_task(self.sender.run(), name="sender"),
            asyncio.create_task(self._reconciler(), name="reconciler"),
            asyncio.create_task(self._refresh_facts(), name="facts"),
            asyncio.create_task(notify.watchdog(), name="watchdog"),  # pings while this loop turns
        ]
        if self.inventory is not None and self.api is not None:
            tasks.append(asyncio.create_task(inventory_runner.run(self.inventory, self.api, self._stop_thread), name="inventory"))
        notify.ready(f"watching {self.engine.name} at {self.engine.address}")
        try:
            await stop.wait()
        finally:
            notify.stopping()
            logger.info("agent stopping")
            watcher.close()
            for t in tasks[1:]:
                t.cancel()
            await self._pool.drain(SHUTDOWN_GRACE)
            # Flush what the collector will take within the grace period.
            self.sender.stop()
            try:
                await asyncio.wait_for(tasks[0], timeout=SHUTDOWN_GRACE)
            except (TimeoutError, asyncio.CancelledError):
                pass
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(thread.join, SHUTDOWN_GRACE)
            self._docker.shutdown(wait=False, cancel_futures=True)
            self._quick.shutdown(wait=False, cancel_futures=True)
            self.engine.close()
            left = self.spool.stats().events
            self.spool.close()
            logger.info("agent stopped spooled=%d", left)
