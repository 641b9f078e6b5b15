"""The agent's image inventory: which images present on this host cannot run here, before any container starts."""
