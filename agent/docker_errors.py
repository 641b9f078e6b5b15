"""What a failure to reach the Docker Engine means, in one line. Pure.

A socket the user may not open is permanent (exit 2: join the docker group or
run as root); a socket that is missing or refuses is transient (dockerd is not
up yet: retried by the daemon, exit 3 for one-shot commands).
"""

from __future__ import annotations

from agent.errors import ConfigError, DockerUnavailable


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = e
    while seen is not None and len(out) < 10:
        out.append(seen)
        nested = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        seen = seen.__cause__ or seen.__context__ or (nested[0] if nested else None)
    return out


def explain(url: str, e: BaseException) -> ConfigError | DockerUnavailable:
    """The error to raise for ``e`` while connecting to the engine at ``url``."""
    text = " ".join(str(x) for x in _chain(e))
    if any(isinstance(x, PermissionError) for x in _chain(e)) or "Permission denied" in text:
        return ConfigError(
            f"permission denied on the Docker Engine socket {url}: run as root or as a member of the docker group"
        )
    if any(isinstance(x, FileNotFoundError) for x in _chain(e)) or "No such file or directory" in text:
        return DockerUnavailable(f"no Docker Engine socket at {url}: is dockerd running? (set --docker-host or DOCKER_HOST)")
    if any(isinstance(x, ConnectionRefusedError) for x in _chain(e)) or "Connection refused" in text:
        return DockerUnavailable(f"nothing answers at {url} (connection refused): is dockerd running? set --docker-host or DOCKER_HOST")
    if "timed out" in text.lower():
        return DockerUnavailable(f"the Docker Engine at {url} did not answer in time: is it overloaded or unreachable?")
    reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    return DockerUnavailable(f"cannot reach the Docker Engine at {url} ({reason}); is dockerd running? set --docker-host or DOCKER_HOST")
