"""sd_notify: READY/WATCHDOG/STOPPING reach a real unix datagram socket; nothing
happens without $NOTIFY_SOCKET; the watchdog pings only while the loop turns."""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from pathlib import Path

import pytest

from agent import config as agent_config
from collector import config as collector_config
from enoexec.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path):
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    yield str(path), s
    s.close()


def test_messages_reach_the_socket(listener) -> None:
    path, s = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    n.ready("serving")
    n.stopping()
    assert s.recv(100) == b"READY=1\nSTATUS=serving"
    assert s.recv(100) == b"STOPPING=1"


def test_nothing_without_notify_socket() -> None:
    n = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert n == Notifier()
    assert n.send("READY=1") is False


def test_watchdog_interval_is_half_the_period_and_only_for_this_pid() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_env(env, pid=7).watchdog_interval == 15.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": "7"}, pid=7).watchdog_interval == 15.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": "8"}, pid=7).watchdog_interval is None


def test_unreachable_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert Notifier(str(tmp_path / "absent")).send("READY=1") is False


async def test_watchdog_pings_from_the_loop_and_stops_when_it_hangs(listener) -> None:
    path, s = listener
    s.setblocking(False)
    task = asyncio.create_task(Notifier(path, watchdog_interval=0.05).watchdog())
    pings: list[bytes] = []
    deadline = time.monotonic() + 30  # a generous bound on a polled condition, not a measurement
    while pings.count(b"WATCHDOG=1") < 3:
        assert time.monotonic() < deadline, f"only {pings} in 30 s"
        await asyncio.sleep(0.01)  # the loop turns: the watchdog task may ping
        pings += _drain(s)
    time.sleep(0.3)  # the subject: a blocking call hangs the loop for 6 intervals, and no ping is sent meanwhile
    assert _drain(s).count(b"WATCHDOG=1") <= 1
    task.cancel()


def _drain(s: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(100))
        except BlockingIOError:
            return out


def _args(parser_add, config_file: Path, *flags: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    parser_add(p)
    return p.parse_args(["--config", str(config_file), *flags])


def test_insecure_overrides_the_files_tls_keys(tmp_path: Path) -> None:
    """The shipped configs name TLS files; --insecure (or ENOEXEC_INSECURE) must start without them."""
    repo = Path(__file__).resolve().parents[2]
    agent = agent_config.build(_args(agent_config.add_arguments, repo / "deploy/config/agent.toml", "--insecure", "--state-dir", str(tmp_path)), {})
    assert agent.insecure and agent.tls_ca is None and agent.tls_cert is None
    coll = collector_config.build(_args(collector_config.add_arguments, repo / "deploy/config/collector.toml"), {"ENOEXEC_INSECURE": "1"})
    assert coll.insecure and coll.tls_cert is None and coll.tls_ca is None
