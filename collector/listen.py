"""Check that a listen address is free before a server takes it.

Neither listener shares its port: gRPC runs with ``grpc.so_reuseport`` 0 and
aiohttp without ``reuse_port``, so a second collector on a busy port fails to
bind. This module turns that into one line naming the flag and the port, found
with a plain probe socket (gRPC's own bind error says only "Failed to bind" and
its C core prints a log line of its own).
"""

from __future__ import annotations

import errno
import socket

from collector.errors import ConfigError


def split(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7469`` for IPv6) as (host, port); host "" means every address."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def bind_problem(addr: str) -> OSError | None:
    """Why nothing could listen on ``addr`` now, or None. Port 0 is always free."""
    host, port = split(addr)
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host!r} ({e.strerror})")
    problems: list[OSError] = []
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # SO_REUSEADDR as every server sets it: a port in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
                probe.listen(1)
            except OSError as e:
                problems.append(e)
    # A busy port anywhere is decisive; an address family this host lacks (::1 without
    # IPv6) is not, as long as another address of the name works (servers skip it too).
    busy = [e for e in problems if e.errno in (errno.EADDRINUSE, errno.EACCES)]
    if busy:
        return busy[0]
    return problems[0] if problems and len(problems) == len(infos) else None


def cannot_listen(flag: str, addr: str, error: OSError | None = None) -> str:
    """One line saying why ``addr`` cannot be listened on, and what to do."""
    problem = error if error is not None and error.errno is not None else bind_problem(addr) or error
    _, port = split(addr)
    if problem is not None and problem.errno == errno.EADDRINUSE:
        return (f"{flag} {addr}: port {port} is already in use (another collector, or another program, "
                f"listens there); stop it or choose another port")
    if problem is not None and problem.errno == errno.EADDRNOTAVAIL:
        return f"{flag} {addr}: no network interface of this machine has that address ({problem.strerror}); use one it has, or 0.0.0.0"
    if problem is not None and problem.errno == errno.EACCES:
        return f"{flag} {addr}: permission denied for port {port} (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    why = (problem.strerror or str(problem)) if problem is not None else "the server could not bind it"
    return f"{flag} {addr}: cannot listen ({why})"


def check_free(flag: str, addr: str) -> None:
    """Raise ConfigError with :func:`cannot_listen`'s line unless ``addr`` can be listened on now."""
    problem = bind_problem(addr)
    if problem is not None:
        raise ConfigError(cannot_listen(flag, addr, problem))
