"""The collector's root exception and its children."""

from __future__ import annotations

from enoexec.errors import ConfigError, EnoexecError

__all__ = ["CollectorError", "ConfigError", "InvalidReference", "RegistryError", "RegistryRefused", "StoreError"]


class CollectorError(EnoexecError):
    """Root of every error the collector raises on purpose; the message says what to do."""


class RegistryError(CollectorError):
    """An image registry could not be reached or did not answer as expected."""


class InvalidReference(RegistryError):
    """The image reference itself is malformed (the caller's mistake)."""


class RegistryRefused(RegistryError):
    """The look-up would contact a host the operator did not allow (``--check-registries``)."""


class StoreError(CollectorError):
    """The event store could not be reached or refused a query."""
