"""The collector's typed configuration, built once at the entry point."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError as _AgentConfigError
from agent import layered
from agent.layered import Option, host_port, load_toml, parse_bool, positive_int, resolve
from collector.errors import ConfigError

OPTIONS = (
    Option("grpc_listen", host_port, "0.0.0.0:7469", "address for agents' gRPC streams (default 0.0.0.0:7469)"),
    Option("http_listen", host_port, "0.0.0.0:9469", "address for /metrics, /healthz and the JSON API (default 0.0.0.0:9469)"),
    Option("db", str, "enoexec.db", "SQLite file path (the default, enoexec.db) or a postgresql:// URL"),
    Option("retention_days", positive_int, 30, "days to keep events; counters are kept forever (default 30)"),
    Option("max_image_labels", positive_int, 200, "distinct image label values in metrics; the rest fold into _other (default 200)"),
    Option("max_batch_events", positive_int, 500, "events an agent may send per batch (default 500)"),
    Option("replica_id", str, "", "this replica's id when several share one PostgreSQL database (default the hostname)"),
    Option("log_level", str, "info", "debug, info, warning or error (default info)"),
    Option("insecure", parse_bool, False, "accept agents over plaintext gRPC, without TLS (default false)"),
    Option("tls_ca", Path, None, "CA certificate that signs agents' client certificates (PEM)"),
    Option("tls_cert", Path, None, "the collector's server certificate (PEM)"),
    Option("tls_key", Path, None, "the collector's private key (PEM)"),
)


@dataclass(frozen=True)
class CollectorConfig:
    grpc_listen: str
    http_listen: str
    db: str
    retention_days: int
    max_image_labels: int
    max_batch_events: int
    replica_id: str
    log_level: str
    insecure: bool
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    layered.add_arguments(parser, OPTIONS)


def build(args: argparse.Namespace, env: Mapping[str, str]) -> CollectorConfig:
    try:
        file_values: dict[str, Any] = load_toml(args.config) if getattr(args, "config", None) else {}
        values = resolve(OPTIONS, vars(args), env, file_values, source=str(getattr(args, "config", "")))
    except _AgentConfigError as e:
        raise ConfigError(str(e)) from None
    values["replica_id"] = values["replica_id"] or socket.gethostname()
    values["log_level"] = values["log_level"].lower()
    if values["log_level"] not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"--log-level: expected debug, info, warning or error, got {values['log_level']!r}")
    tls = [values["tls_ca"], values["tls_cert"], values["tls_key"]]
    if any(tls) and not all(tls):
        raise ConfigError("TLS needs all three of --tls-ca, --tls-cert and --tls-key")
    for p in filter(None, tls):
        if not Path(p).is_file():
            raise ConfigError(f"TLS file {p} does not exist")
    if not any(tls) and not values["insecure"]:
        raise ConfigError("no TLS configured: pass --tls-ca, --tls-cert and --tls-key, or --insecure for plaintext")
    return CollectorConfig(**values)
