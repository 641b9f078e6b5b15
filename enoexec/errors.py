"""The error model both programs share: each kind of failure carries its exit code.

- ``ConfigError`` (exit 2): bad flags, environment, config file, or a permanent
  refusal (a peer said the request can never succeed). One line; never retried.
- ``Unavailable`` (exit 3): something we need cannot be reached right now
  (Docker, the collector, a registry). Daemons retry these with backoff; one-shot
  commands report them.
- ``NotFound`` (exit 4): the thing named does not exist (a container, an image).
- anything else raised on purpose (exit 1).

The per-command outcome codes (``check``: some host cannot run it, ...) are
listed with the commands in README.md, "Exit codes".
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4


class EnoexecError(Exception):
    """Root of every error enoexec raises on purpose; the message says what to do."""

    exit_code = EXIT_FINDING


class ConfigError(EnoexecError):
    """Bad flags, environment, config file or a permanent refusal. The CLI prints one line and exits 2."""

    exit_code = EXIT_USAGE


class Unavailable(EnoexecError):
    """A service we depend on cannot be reached now (transient): retried by daemons, exit 3 otherwise."""

    exit_code = EXIT_UNAVAILABLE


class NotFound(EnoexecError):
    """What the user named does not exist: exit 4."""

    exit_code = EXIT_NOT_FOUND
