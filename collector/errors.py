"""The collector's one root exception and its children."""

from __future__ import annotations


class CollectorError(Exception):
    """Root of every error the collector raises on purpose; the message says what to do."""


class RegistryError(CollectorError):
    """An image registry could not be reached or did not answer as expected."""


class ConfigError(CollectorError):
    """Bad flags, environment, config file or database URL. The CLI prints it and exits 2."""


class StoreError(CollectorError):
    """The event store could not be reached or refused a query."""
