"""enoexec collector: gathers diagnoses from a fleet, stores them, serves metrics and hints."""

__version__ = "0.1.0"
