"""enoexec's shared core: the vocabulary the agent and the collector both speak.

Platforms, causes, the contract's limits, the event's JSON form, the hint
engine, settings layering, the CLI kit and log setup. It imports neither
program; both build on it. The generated gRPC code lives in ``enoexec.v1``.
"""

__version__ = "0.2.0"
