"""Layered settings: flags override ``ENOEXEC_*`` environment variables, which
override the TOML config file, which overrides defaults.

Shared by both entry points; each builds its own typed config dataclass from
the dict this returns. Only the entry points read the environment and pass it in.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enoexec import logsetup
from enoexec.errors import ConfigError

ENV_PREFIX = "ENOEXEC_"
CONFIG_ENV = "ENOEXEC_CONFIG"


@dataclass(frozen=True)
class Option:
    """One setting: its name (``state_dir``), type, default and help text."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML config file; errors name the file and the problem."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {p}: {e}") from None


def resolve(
    options: Sequence[Option],
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    *,
    source: str = "config file",
) -> dict[str, Any]:
    """Each option's value from the highest layer that sets it, converted to its type."""
    known = {o.name for o in options}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for o in options:
        if flags.get(o.name) is not None:
            raw, where = flags[o.name], o.flag
        elif o.env in env:
            raw, where = env[o.env], o.env
        elif o.name in file_values:
            raw, where = file_values[o.name], f"{source} key {o.name!r}"
        else:
            out[o.name] = o.default
            continue
        if raw == "" and o.default is None:
            out[o.name] = None  # an empty optional setting is unset
            continue
        try:
            out[o.name] = o.type(raw) if not (o.type is str and isinstance(raw, str)) else raw
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None
    return out


def positive_int(value: Any) -> int:
    # TOML gives 1.5 as a float: int() would silently make it 1.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise ValueError(f"expected a number above 0, got {n}")
    return n


def positive_float(value: Any) -> float:
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not n > 0:
        raise ValueError(f"expected a number above 0, got {value!r}")
    return n


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(value: Any) -> str:
    level = str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


LOG_LEVEL = Option("log_level", log_level, "info", "debug, info, warning or error (default info)")
LOG_FORMAT = Option(
    "log_format", logsetup.log_format, "auto",
    "human, json or logfmt (default auto: human on a terminal, json otherwise)",
)


def load(options: Sequence[Option], args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """Resolve ``options`` from parsed flags, the environment and ``--config FILE`` (or ``$ENOEXEC_CONFIG``)."""
    config_file = getattr(args, "config", None) or env.get(CONFIG_ENV) or None
    file_values: dict[str, Any] = load_toml(config_file) if config_file else {}
    return resolve(options, vars(args), env, file_values, source=str(config_file or ""))


def host_port(value: Any) -> str:
    """``HOST:PORT`` (``[::1]:7469`` for IPv6)."""
    s = str(value).strip()
    host, sep, port = s.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {s!r}")
    return s


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """``--config FILE`` plus one flag per option, its environment variable in the help."""
    parser.add_argument("--config", metavar="FILE", help=f"TOML config file (keys as the long flags, with underscores) [{CONFIG_ENV}]")
    for o in options:
        if o.type is parse_bool:
            parser.add_argument(o.flag, dest=o.name, action=argparse.BooleanOptionalAction, default=None, help=o.help + f" [{o.env}]")
        else:
            parser.add_argument(o.flag, dest=o.name, metavar=o.name.upper(), default=None, help=o.help + f" [{o.env}]")
