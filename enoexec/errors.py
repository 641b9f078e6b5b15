"""The root exception shared by both programs, and the kinds the CLI kit maps to exit codes."""

from __future__ import annotations


class EnoexecError(Exception):
    """Root of every error enoexec raises on purpose; the message says what to do."""


class ConfigError(EnoexecError):
    """Bad flags, environment, config file or a permanent refusal. The CLI prints one line and exits 2."""
