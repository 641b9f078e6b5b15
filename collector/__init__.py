"""enoexec collector: gathers diagnoses from a fleet, stores them, serves metrics and hints."""
