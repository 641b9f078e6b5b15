"""Recognise the container runtime's own "exec format error" message.

When the kernel refuses to execute a container's entrypoint with ENOEXEC, the
OCI runtime writes one line to the container's stderr (so it is the last line
of ``docker logs``) and the container exits. The wordings in the wild:

=========  ==================================================================  =========
runtime    last line                                                            exit code
=========  ==================================================================  =========
runc 1.0   ``standard_init_linux.go:228: exec user process caused: exec format   1
           error`` (older: ``... caused "exec format error"``)
runc 1.1+  ``exec /app: exec format error``                                      1 (255 from runc 1.2)
crun       ``exec container process `/app`: Exec format error``                 1
tini       ``[FATAL tini (7)] exec /app failed: Exec format error``              1
(--init)   ``[FATAL tini (7)] exec /app failed: No such file or directory``      127
=========  ==================================================================  =========

(runc 1.1.5 under Docker 20.10 exits 1, measured. tini runs ``execvp``, which
retries a file the kernel refuses with ``/bin/sh``; without a shell in the image
that fails with ENOENT, so tini's line names the file but not the cause.)

A program that merely prints these words is not a hit: the runtime's message is
the *whole* last line, and the file it names is judged (a file the kernel runs
was not refused). A previous run's output without a trailing newline glues onto
the runtime's line; such a line is accepted only by its end (``glued``) and the
caller must then find a file the kernel refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RUNC_10 = re.compile(
    r'^standard_init_linux\.go:\d+: exec user process caused:? "?exec format error"?$'
)
_RUNC_11 = re.compile(r"^exec (?P<path>\S(?:.*\S)?): exec format error$")
_RUNC_11_TAIL = re.compile(r"exec (?P<path>/\S*): exec format error$")
_TINI = re.compile(r"^\[FATAL tini \(\d+\)\] exec (?P<path>.+?) failed: (?P<error>.+)$")
_CRUN = re.compile(
    r"^exec container process (?:\(missing dynamic library\?\) )?[`'](?P<path>[^`']+)[`']: "
    r"Exec format error$"
)

# What Go (runc) and strerror (crun, tini) call the errnos execve(2) fails with,
# lower-cased: a runtime line naming a file and one of these is the runtime's.
EXEC_ERRORS = (
    "exec format error", "no such file or directory", "permission denied", "text file busy",
    "argument list too long", "input/output error", "operation not permitted", "not a directory",
    "too many levels of symbolic links", "file name too long", "cannot allocate memory", "is a directory",
    "bad address", "invalid argument",
)
ENOEXEC = "exec format error"
ENOENT = "no such file or directory"
_ERRORS = "|".join(re.escape(e) for e in EXEC_ERRORS)
_RUNC_10_ANY = re.compile(r'^standard_init_linux\.go:\d+: exec user process caused:? "?(?P<error>' + _ERRORS + r')"?$', re.I)
_RUNC_11_ANY = re.compile(r"^exec (?P<path>\S(?:.*\S)?): (?P<error>" + _ERRORS + r")$", re.I)
_CRUN_ANY = re.compile(
    r"^exec container process (?:\(missing dynamic library\?\) )?[`'](?P<path>[^`']+)[`']: (?P<error>" + _ERRORS + r")$",
    re.I,
)

# Exit codes a container gets when its entrypoint cannot be executed: runc 1.0/1.1
# and crun 1, runc 1.2+ 255, tini 1 or 127 (see above), shells 126.
EXEC_FAILURE_EXIT_CODES = frozenset({1, 126, 127, 255})


@dataclass(frozen=True)
class RuntimeFailure:
    """The runtime said the entrypoint could not be executed."""

    runtime: str  # "runc-1.0", "runc", "crun", "tini", "daemon"
    path: str  # the file the runtime tried to execute, "" when it does not say
    message: str  # the line as the runtime wrote it
    # False when the line names the file but another error (tini's ENOENT after
    # execvp's shell fallback): only the file can then decide.
    enoexec: bool = True
    glued: bool = False  # found at the end of a line other output ran into
    error: str = ENOEXEC  # the errno's words, lower-cased ("no such file or directory")


def last_line(log: str | bytes) -> str:
    """The last non-empty line of a container log, without trailing whitespace."""
    if isinstance(log, bytes):
        log = log.decode("utf-8", errors="replace")
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line:
            return line
    return ""


def parse(line: str) -> RuntimeFailure | None:
    """Parse one log line; ``None`` unless it is a runtime's exec-format-error line."""
    line = line.strip()
    if _RUNC_10.match(line):
        return RuntimeFailure("runc-1.0", "", line)
    m = _CRUN.match(line)
    if m:
        return RuntimeFailure("crun", m.group("path"), line)
    m = _RUNC_11.match(line)
    if m:
        return RuntimeFailure("runc", m.group("path"), line)
    m = _TINI.match(line)
    if m:
        error = m.group("error").lower()
        return RuntimeFailure("tini", m.group("path"), line, enoexec=error == ENOEXEC, error=error)
    return None


def parse_other(line: str) -> RuntimeFailure | None:
    """The runtime's line for an exec that failed with another errno than ENOEXEC
    (``exec /app: no such file or directory``, ``... permission denied``), or ``None``."""
    line = line.strip()
    for runtime, pattern in (("runc-1.0", _RUNC_10_ANY), ("crun", _CRUN_ANY), ("runc", _RUNC_11_ANY)):
        m = pattern.match(line)
        if m:
            error = m.group("error").lower()
            if error == ENOEXEC:
                return None
            path = m.groupdict().get("path") or ""
            return RuntimeFailure(runtime, path, line, enoexec=False, error=error)
    return None


def parse_glued(line: str) -> RuntimeFailure | None:
    """A runc line at the end of ``line``, after output that had no newline."""
    m = _RUNC_11_TAIL.search(line.strip())
    if m is None:
        return None
    return RuntimeFailure("runc", m.group("path"), m.group(0), glued=True)


def names_entrypoint(failure: RuntimeFailure, argv0: str) -> bool:
    """True if the file named by the runtime is the container's entrypoint ``argv0``.

    runc and crun name the path after looking ``argv0`` up in ``PATH``, so a bare
    ``app`` shows as ``/usr/bin/app``. runc 1.0 names no path and always matches.
    """
    if not failure.path:
        return True
    if not argv0:
        return False
    if "/" in argv0:
        return failure.path == argv0 or failure.path.rstrip("/") == argv0.rstrip("/")
    return failure.path == argv0 or failure.path.endswith("/" + argv0)


def find(log: str | bytes, argv0: str | None = None, *, any_error: bool = False) -> RuntimeFailure | None:
    """The runtime failure in a container's log, judged on its last line only.

    With ``argv0`` given, the line must also name that entrypoint. With
    ``any_error``, a runtime line with another errno counts too (``enoexec`` False).
    """
    line = last_line(log)
    failure = parse(line) or parse_glued(line) or (parse_other(line) if any_error else None)
    if failure is None:
        return None
    if argv0 is not None and not names_entrypoint(failure, argv0):
        return None
    return failure
