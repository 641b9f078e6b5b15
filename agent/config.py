"""The agent's typed configuration, built once at the entry point."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError
from enoexec import limits, settings
from enoexec.settings import (
    Option,
    host_port,
    parse_bool,
    positive_float,
    positive_int,
)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

def namespaces(value: str) -> tuple[str, ...]:
    """containerd namespaces from ``k8s.io,default``; Docker's own ``moby`` is refused."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))
    if not names:
        raise ValueError("name at least one namespace, e.g. k8s.io,default")
    if "moby" in names:
        raise ValueError("'moby' is Docker's own namespace: watch Docker with --runtime docker, or it is counted twice")
    return names


OPTIONS = (
    Option("collector", host_port, "localhost:7469", "collector gRPC address HOST:PORT (default localhost:7469)"),
    Option("runtime", str, "auto", "container engine to watch: docker, containerd, or auto (an explicit --containerd-address, then /run/containerd/containerd.sock or k3s's /run/k3s/containerd/containerd.sock unless Docker's socket is there; default auto)"),
    Option("containerd_address", str, "", "containerd's socket (default /run/containerd/containerd.sock, then k3s's /run/k3s/containerd/containerd.sock)"),
    Option("containerd_namespaces", namespaces, ("k8s.io", "default"), "containerd namespaces to watch, comma-separated; 'moby' (Docker's own) is refused (default k8s.io,default)"),
    Option("containerd_root", Path, Path("/var/lib/containerd"), "containerd's root directory, where the CRI plugin keeps each pod container's last exit (default /var/lib/containerd; k3s: /var/lib/rancher/k3s/agent/containerd)"),
    Option("cri_log_root", Path, Path("/var/log/pods"), "where the kubelet has pods' logs written (default /var/log/pods)"),
    Option("docker_host", str, "", "Docker Engine URL, e.g. unix:///var/run/docker.sock (default $DOCKER_HOST, then the local socket)"),
    Option("state_dir", Path, Path("/var/lib/enoexec"), "directory for the spool and checkpoint (default /var/lib/enoexec)"),
    Option("host_id", str, "", "this host's id in the fleet (default /etc/machine-id, then the hostname)"),
    settings.LOG_LEVEL,
    settings.LOG_FORMAT,
    Option("spool_max_events", positive_int, 10_000, "events kept while the collector is unreachable; the oldest are dropped beyond (default 10000)"),
    Option("spool_max_bytes", positive_int, 64 * 1024 * 1024, "bytes kept in the spool at most (default 64 MiB)"),
    Option("batch_size", positive_int, 100, "events sent per batch at most (default 100)"),
    Option("heartbeat_interval", positive_float, 15.0, "seconds between heartbeats to the collector (default 15)"),
    Option("reconcile_interval", positive_float, 60.0, "seconds between scans for exits the event stream missed (default 60)"),
    Option("lookup_registry", parse_bool, True, "ask the registry, through the Docker Engine, which platforms an image offers (default true)"),
    Option("proc_root", Path, Path("/proc"), "where to read /proc from; mount the host's /proc there (e.g. /host/proc) when the agent runs in a container (default /proc)"),
    Option("image_fallback", parse_bool, True, "when a container is already gone (--rm), read its entrypoint from the image through a never-started helper container; needs POST /containers/create on the Docker API (default true)"),
    Option("image_inventory", parse_bool, True, "judge the images on this host at start and when images are pulled, loaded or tagged, and report those that cannot run here (reads them as image_fallback does; off when image_fallback is) (default true)"),
    Option("insecure", parse_bool, False, "talk to the collector in plaintext, without TLS (default false)"),
    Option("tls_ca", Path, None, "CA certificate that signed the collector's certificate (PEM)"),
    Option("tls_cert", Path, None, "this agent's client certificate (PEM)"),
    Option("tls_key", Path, None, "this agent's private key (PEM)"),
    Option("token_file", Path, None, "file holding this agent's bearer token, instead of a client certificate (never pass a token on the command line)"),
)


@dataclass(frozen=True)
class AgentConfig:
    collector: str
    docker_host: str
    state_dir: Path
    host_id: str
    log_level: str
    log_format: str
    spool_max_events: int
    spool_max_bytes: int
    batch_size: int
    heartbeat_interval: float
    reconcile_interval: float
    lookup_registry: bool
    image_fallback: bool
    proc_root: Path
    insecure: bool
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    token_file: Path | None
    image_inventory: bool = True
    runtime: str = "docker"
    containerd_address: str = ""
    containerd_namespaces: tuple[str, ...] = ("k8s.io", "default")
    containerd_root: Path = Path("/var/lib/containerd")
    cri_log_root: Path = Path("/var/log/pods")

    def token(self) -> str | None:
        """The bearer token, read from its file when needed (never logged)."""
        if self.token_file is None:
            return None
        return self.token_file.read_text().strip() or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings.add_arguments(parser, OPTIONS)
    # One spelling with ``diagnose``: --no-registry. --[no-]lookup-registry stays, unlisted.
    for action in parser._actions:
        if action.dest == "lookup_registry":
            action.help = argparse.SUPPRESS
    parser.add_argument("--no-registry", dest="lookup_registry", action="store_const", const=False,
                        help="do not ask the registry which platforms an image offers [ENOEXEC_LOOKUP_REGISTRY=false]")


DOCKER_SCHEMES = ("unix", "tcp", "http", "https", "ssh", "npipe")


def docker_url(value: str, where: str = "--docker-host") -> str:
    """A Docker Engine URL the client can use; ConfigError says what to pass instead."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        hint = f"unix://{value}" if value.startswith("/") else f"tcp://{value}"
        raise ConfigError(f"{where} {value!r} has no scheme: pass {hint}")
    if scheme not in DOCKER_SCHEMES or not rest:
        raise ConfigError(
            f"{where} {value!r}: use unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST "
            f"(schemes: {', '.join(DOCKER_SCHEMES)})"
        )
    return value


def check_host_id(host_id: str, where: str = "--host-id") -> str:
    """A host id the collector will accept (checked here, before connecting)."""
    if host_id and not limits.valid_host_id(host_id):
        raise ConfigError(f"{where} {host_id!r}: use {limits.HOST_ID_RULE}")
    return host_id


def check_state_dir(path: Path) -> Path:
    """The state directory, or a parent where it can be made; not a file."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--state-dir {path} is not a directory: name a directory for the spool, e.g. /var/lib/enoexec")
    return path


def build(args: argparse.Namespace, env: Mapping[str, str]) -> AgentConfig:
    """The config from flags, environment and file; ConfigError names what to fix."""
    values = settings.load(OPTIONS, args, env)
    if values["insecure"]:  # plaintext: the file's (or environment's) tls_* keys do not apply
        values.update(tls_ca=None, tls_cert=None, tls_key=None)
    if not values["docker_host"]:
        values["docker_host"] = docker_url(env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST, "DOCKER_HOST")
    else:
        docker_url(values["docker_host"])
    if values["runtime"] not in ("auto", "docker", "containerd"):
        raise ConfigError(f"--runtime {values['runtime']!r}: use docker, containerd or auto")
    check_host_id(values["host_id"])
    check_state_dir(values["state_dir"])
    check_tls(values["tls_ca"], values["tls_cert"], values["tls_key"], values["insecure"], values["token_file"])
    return AgentConfig(**values)


def check_tls(ca: Path | None, cert: Path | None, key: Path | None, insecure: bool, token_file: Path | None) -> None:
    """TLS with a CA, plus a client certificate or a token; or --insecure."""
    if bool(cert) != bool(key):
        raise ConfigError("a client certificate needs both --tls-cert and --tls-key")
    for p in filter(None, (ca, cert, key, token_file)):
        if not Path(p).is_file():
            raise ConfigError(f"file {p} does not exist")
    if token_file is not None and not Path(token_file).read_text().strip():
        raise ConfigError(f"--token-file {token_file} is empty")
    if insecure:
        return
    if ca is None:
        raise ConfigError("no TLS configured: pass --tls-ca with --tls-cert/--tls-key (or --token-file), or --insecure for plaintext")
    if cert is None and token_file is None:
        raise ConfigError("the collector needs to know who this agent is: pass --tls-cert and --tls-key, or --token-file")
