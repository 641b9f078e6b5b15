"""The agent's root exception and its children."""

from __future__ import annotations

from enoexec.errors import ConfigError, EnoexecError, NotFound, Unavailable

__all__ = ["AgentError", "ConfigError", "ContainerGone", "ContainerdUnavailable", "DockerUnavailable", "EngineUnavailable", "NoSuchContainer", "SpoolError"]


class AgentError(EnoexecError):
    """Root of every error the agent raises on purpose; the message says what to do."""


class EngineUnavailable(AgentError, Unavailable):
    """The container engine (Docker or containerd) could not be reached or answered an error."""


class DockerUnavailable(EngineUnavailable):
    """The Docker Engine could not be reached or answered an error."""


class ContainerdUnavailable(EngineUnavailable):
    """containerd could not be reached or answered an error."""


class SpoolError(AgentError):
    """The on-disk spool could not be opened or written."""


class ContainerGone(AgentError):
    """The container was removed while it was being read (``docker run --rm``)."""


class NoSuchContainer(AgentError, NotFound):
    """The container the user named does not exist."""
