"""The collector's root exception and its children."""

from __future__ import annotations

from enoexec.errors import ConfigError, EnoexecError, Unavailable

__all__ = ["CollectorError", "CollectorUnavailable", "ConfigError", "InvalidReference", "RegistryError", "RegistryRefused", "RegistryUnavailable", "StoreError"]


class CollectorError(EnoexecError):
    """Root of every error the collector raises on purpose; the message says what to do."""


class CollectorUnavailable(CollectorError, Unavailable):
    """The collector's HTTP API could not be reached or answered a server error (client commands)."""


class RegistryError(CollectorError):
    """An image registry could not be reached or did not answer as expected."""


class RegistryUnavailable(RegistryError, Unavailable):
    """``check`` run locally (``--target``, ``--facts``) could not read the registry: exit 3."""


class InvalidReference(RegistryError):
    """The image reference itself is malformed (the caller's mistake)."""


class RegistryRefused(RegistryError):
    """The look-up would contact a host the operator did not allow (``--check-registries``)."""


class StoreError(CollectorError):
    """The event store could not be reached or refused a query.

    ``transient``: the database itself failed (unreachable, full, read-only, locked),
    so another try later may work; false when it refused what was asked (a value it
    cannot hold), which trying again will not change."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient
