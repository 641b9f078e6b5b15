"""The collector's typed configuration, built once at the entry point."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import auth
from collector.check import registry_policy
from collector.errors import ConfigError
from enoexec import settings
from enoexec.settings import (
    Option,
    host_port,
    parse_bool,
    positive_float,
    positive_int,
)

DEFAULT_HTTP_PORT = 9469


def duration(value: Any) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``36h`` or ``7d``; 0 is allowed (never)."""
    text = str(value).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:], 0)
    number = text[:-1] if scale else text
    scale = scale or 1
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError(f"expected a duration such as 90s, 30m, 36h or 7d, got {value!r}") from None
    if not 0 <= seconds < 100 * 365 * 86400:
        raise ValueError(f"expected a duration from 0 (never) up to 100 years, got {value!r}")
    return seconds


def registry_list(value: Any) -> registry_policy.RegistryPolicy:
    """A comma-separated string, or a TOML list of entries."""
    return registry_policy.parse(",".join(map(str, value)) if isinstance(value, list) else str(value))


OPTIONS = (
    Option("grpc_listen", host_port, "0.0.0.0:7469", "address for agents' gRPC streams (default 0.0.0.0:7469)"),
    Option("http_listen", host_port, None, "address for /metrics, /healthz and the JSON API (default 127.0.0.1:9469; 0.0.0.0:9469 when --http-token-file protects the API)"),
    Option("db", str, "enoexec.db", "SQLite file path (the default, enoexec.db) or a postgresql:// URL"),
    Option("retention_days", positive_int, 30, "days to keep events; counters are kept forever (default 30)"),
    Option("max_image_labels", positive_int, 200, "distinct image label values in metrics; the rest fold into _other (default 200)"),
    Option("max_hosts", positive_int, 10000, "distinct host ids the collector keeps (each has its own series); Hellos "
           "from new hosts past it are refused and counted as too_many_hosts (default 10000)"),
    Option("max_batch_events", positive_int, 500, "events an agent may send per batch (default 500)"),
    Option("replica_id", str, "", "this replica's id when several share one PostgreSQL database (default the hostname)"),
    settings.LOG_LEVEL,
    settings.LOG_FORMAT,
    Option("insecure", parse_bool, False, "accept agents over plaintext gRPC, without TLS (default false)"),
    Option("tls_ca", Path, None, "CA certificate that signs agents' client certificates (PEM)"),
    Option("tls_cert", Path, None, "the collector's server certificate (PEM)"),
    Option("tls_key", Path, None, "the collector's private key (PEM)"),
    Option("tokens_file", Path, None, "agents' token hashes, 'HOST_ID SHA256' per line (see 'enoexec-collector token'); agents then authenticate by token instead of certificate"),
    Option("agent_rate", positive_float, 50.0, "events per second one agent may send on average; faster agents are slowed, not refused (default 50)"),
    Option("agent_burst", positive_int, 2000, "events one agent may send in a burst (default 2000)"),
    Option("max_streams", positive_int, 20000, "agent streams open at once, counting those awaiting their Hello; more are refused and retry (default 20000)"),
    Option("hello_timeout", positive_float, 10.0, "seconds a new stream may take to send its Hello (default 10)"),
    Option("host_flush_seconds", positive_float, 5.0, "seconds between writes of hosts' liveness to the database; heartbeats are kept in memory meanwhile (default 5)"),
    Option("http_tls_cert", Path, None, "certificate for HTTPS on the HTTP port (PEM)"),
    Option("http_tls_key", Path, None, "private key for HTTPS on the HTTP port (PEM)"),
    Option("http_token_file", Path, None, "token hashes ('NAME SHA256' per line) that /api/* requires as a bearer token"),
    Option("protect_metrics", parse_bool, False, "require the HTTP token on /metrics too (default false: Prometheus scrapes freely)"),
    Option("check_registries", registry_list, registry_policy.parse(registry_policy.DEFAULT),
           "hosts 'check' may ask for an image's platforms, comma-separated: host, host:port, *.domain, a registry "
           "name (docker.io, ghcr.io, quay.io, gcr.io, registry.k8s.io, mcr.microsoft.com, public.ecr.aws), "
           "'default' for all of those, or '' for none (default: default)"),
    Option("check_max_bytes", positive_int, 512 * 1024 * 1024,
           "layer bytes one 'check' may read from a registry before it answers 'unknown' (default 512 MiB)"),
    Option("check_timeout", positive_float, 60.0, "seconds one 'check' may spend reading an image (default 60)"),
    Option("host_expiry", duration, 7 * 86400.0,
           "forget a host after this long without a word from its agent: 90m, 36h, 7d, or 0 for never (default 7d)"),
)



@dataclass(frozen=True)
class CollectorConfig:
    grpc_listen: str
    http_listen: str
    db: str
    retention_days: int
    max_image_labels: int
    max_hosts: int
    max_batch_events: int
    replica_id: str
    log_level: str
    log_format: str
    insecure: bool
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    tokens_file: Path | None
    agent_rate: float
    agent_burst: int
    max_streams: int
    hello_timeout: float
    host_flush_seconds: float
    http_tls_cert: Path | None
    http_tls_key: Path | None
    http_token_file: Path | None
    protect_metrics: bool
    check_registries: registry_policy.RegistryPolicy
    host_expiry: float  # seconds; 0 never expires
    check_max_bytes: int = 512 * 1024 * 1024
    check_timeout: float = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings.add_arguments(parser, OPTIONS)


def build(args: argparse.Namespace, env: Mapping[str, str]) -> CollectorConfig:
    values = settings.load(OPTIONS, args, env)
    if values["insecure"]:  # plaintext gRPC: the file's (or environment's) tls_* keys do not apply
        values.update(tls_ca=None, tls_cert=None, tls_key=None)
    values["replica_id"] = values["replica_id"] or socket.gethostname()
    if values["http_listen"] is None:
        # Without a token the API (including 'check', which fetches from registries) stays on loopback.
        host = "0.0.0.0" if values["http_token_file"] else "127.0.0.1"
        values["http_listen"] = f"{host}:{DEFAULT_HTTP_PORT}"
    _check_files(values)
    return CollectorConfig(**values)


def check_db(db: str) -> None:
    """A SQLite path's directory must exist: a missing one is a typo far more often than a wish.
    Checked when serving (an installed config may name a directory systemd creates)."""
    if "://" in db or not db.strip():
        return  # URLs (and the empty string) are judged when the store opens them
    parent = Path(db).expanduser().parent
    if not parent.is_dir():
        raise ConfigError(f"--db {db}: directory {parent} does not exist; create it or choose another --db path")


def _check_files(v: dict[str, Any]) -> None:
    """gRPC: mTLS (CA + cert + key), or TLS (cert + key) with agent tokens, or --insecure."""
    for name in ("tls_ca", "tls_cert", "tls_key", "tokens_file", "http_tls_cert", "http_tls_key", "http_token_file"):
        if v[name] is not None and not Path(v[name]).is_file():
            raise ConfigError(f"--{name.replace('_', '-')} {v[name]}: no such file")
    for name in ("tokens_file", "http_token_file"):
        if v[name] is not None:
            auth.load_tokens(Path(v[name]), f"--{name.replace('_', '-')}")  # refused now, before anything starts
    if bool(v["tls_cert"]) != bool(v["tls_key"]):
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    if bool(v["http_tls_cert"]) != bool(v["http_tls_key"]):
        raise ConfigError("HTTPS needs both --http-tls-cert and --http-tls-key")
    if v["protect_metrics"] and not v["http_token_file"]:
        raise ConfigError("--protect-metrics needs --http-token-file")
    if v["insecure"]:
        return
    if not v["tls_cert"]:
        raise ConfigError("no TLS configured: pass --tls-cert and --tls-key (with --tls-ca for client certificates, or --tokens-file), or --insecure for plaintext")
    if not v["tls_ca"] and not v["tokens_file"]:
        raise ConfigError("agents must prove who they are: pass --tls-ca (client certificates) or --tokens-file")
