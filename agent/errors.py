"""The agent's one root exception and its children."""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose; the message says what to do."""


class ConfigError(AgentError):
    """Bad flags, environment or config file. The CLI prints it and exits 2."""


class DockerUnavailable(AgentError):
    """The Docker Engine could not be reached or answered an error."""


class SpoolError(AgentError):
    """The on-disk spool could not be opened or written."""


class ContainerGone(AgentError):
    """The container was removed while it was being read (``docker run --rm``)."""
