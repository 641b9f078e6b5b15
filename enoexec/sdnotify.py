"""systemd's service notification protocol (sd_notify(3)), without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a unix datagram socket)
and, with ``WatchdogSec=``, ``$WATCHDOG_USEC``. A program says ``READY=1`` once
it serves, ``WATCHDOG=1`` at least every half watchdog period while its main
loop turns, and ``STOPPING=1`` when it begins to shut down. Outside systemd
(no ``$NOTIFY_SOCKET``) every call does nothing.

The entry point builds a :class:`Notifier` from its environment; the daemons
call it from their event loop, so a hung loop stops the pings and systemd
restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notifier:
    """Where to send notifications (None: nowhere) and how often to ping the watchdog."""

    address: str | None = None
    watchdog_interval: float | None = None  # seconds between WATCHDOG=1; None: no watchdog

    @classmethod
    def from_env(cls, env: Mapping[str, str], pid: int | None = None) -> Notifier:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (meant for ``pid``)."""
        address = env.get("NOTIFY_SOCKET") or None
        interval = None
        usec, for_pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if address and usec.isdigit() and int(usec) > 0 and (not for_pid or for_pid == str(pid or os.getpid())):
            interval = int(usec) / 2_000_000
        return cls(address, interval)

    def send(self, message: str) -> bool:
        """Send one notification; False when there is nowhere to send it or it failed."""
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        elif not addr.startswith("/"):
            logger.debug("sd_notify socket not supported address=%s", addr)
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(addr)
                s.sendall(message.encode())
        except OSError as e:
            logger.warning("sd_notify failed address=%s error=%s", self.address, e)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping the watchdog from the running event loop until cancelled."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
