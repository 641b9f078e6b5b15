"""enoexec agent: catches containers that die of exec format error and says why."""

__version__ = "0.1.0"
