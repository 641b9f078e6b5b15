"""What the agent process itself costs its host, from /proc/self and getrusage.

The standard library is enough (psutil has no armv7l wheel): ``/proc/self/statm``
gives the resident set, ``resource.getrusage`` the CPU time, ``/proc/self/fd``
the open descriptors, ``/proc/self/stat`` the start time. Whether the spool can
be written is asked of the file system (``os.access`` fails on a read-only mount,
``statvfs`` tells a full disk), so the fleet view does not show an agent healthy
while new exits cannot be kept.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SelfStats:
    resident_memory_bytes: int
    cpu_seconds: float
    open_fds: int
    uptime_seconds: float


def rss_from_statm(text: str, page_size: int) -> int:
    """Resident bytes from ``/proc/<pid>/statm`` (second field, in pages)."""
    fields = text.split()
    return int(fields[1]) * page_size if len(fields) > 1 else 0


def start_ticks_from_stat(text: str) -> int:
    """Field 22 (starttime, clock ticks after boot) of ``/proc/<pid>/stat``; the
    command name in field 2 may hold spaces and parentheses, so count from its end."""
    rest = text[text.rfind(")") + 2:].split()
    return int(rest[19]) if len(rest) > 19 else 0


def uptime_from_proc(stat_text: str, uptime_text: str, ticks_per_second: int) -> float:
    """Seconds the process has run, from its ``stat`` and ``/proc/uptime``."""
    boot_seconds = float(uptime_text.split()[0]) if uptime_text.split() else 0.0
    return max(0.0, boot_seconds - start_ticks_from_stat(stat_text) / ticks_per_second)


def read(proc: Path = Path("/proc"), pid: str = "self") -> SelfStats:
    """This process's resource use; a field that cannot be read is 0."""
    me = proc / pid
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        rss = rss_from_statm((me / "statm").read_text(), os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        rss = usage.ru_maxrss * 1024  # the peak: the best left when /proc is not mounted
    try:
        fds = len(os.listdir(me / "fd"))
    except OSError:
        fds = 0
    try:
        uptime = uptime_from_proc((me / "stat").read_text(), (proc / "uptime").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        uptime = 0.0
    return SelfStats(rss, usage.ru_utime + usage.ru_stime, fds, uptime)


def writable(path: Path) -> bool:
    """Whether the database at ``path`` (and its WAL/SHM companions) can be written:
    its directory and files writable, the file system not read-only, space left."""
    directory = path.parent
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    if st.f_bfree == 0 or (st.f_bavail == 0 and os.geteuid() != 0):  # root may use the reserve
        return False
    if not os.access(directory, os.W_OK):
        return False
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and not os.access(p, os.W_OK):
            return False
    return True
