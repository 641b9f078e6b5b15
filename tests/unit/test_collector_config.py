"""The collector's settings this file owns: the HTTP bind default, --check-registries, --host-expiry."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from collector import config
from collector.errors import ConfigError


def build(*argv: str, env: dict[str, str] | None = None) -> config.CollectorConfig:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.build(parser.parse_args(["--insecure", *argv]), env or {})


def test_the_http_api_stays_on_loopback_unless_told_or_protected(tmp_path: Path) -> None:
    assert build().http_listen == "127.0.0.1:9469"
    tokens = tmp_path / "api-tokens"
    tokens.write_text("ops " + "0" * 64 + "\n")
    assert build("--http-token-file", str(tokens)).http_listen == "0.0.0.0:9469"
    assert build("--http-listen", "0.0.0.0:9469").http_listen == "0.0.0.0:9469"
    assert build(env={"ENOEXEC_HTTP_LISTEN": "10.0.0.2:9469"}).http_listen == "10.0.0.2:9469"


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("36h", 129600), ("7d", 604800), ("0", 0)])
def test_host_expiry_takes_durations(text: str, seconds: float) -> None:
    assert build("--host-expiry", text).host_expiry == seconds


def test_host_expiry_default_is_a_week_and_bad_values_name_the_flag() -> None:
    assert build().host_expiry == 7 * 86400
    for bad in ("soon", "-1d", "nan", "5y"):
        with pytest.raises(ConfigError, match="--host-expiry"):
            build(f"--host-expiry={bad}")


def test_check_registries_default_and_bad_entries() -> None:
    assert build().check_registries.allows("registry-1.docker.io", 443)
    assert not build().check_registries.allows("127.0.0.1", 5000)
    assert build("--check-registries", "127.0.0.1:5000").check_registries.allows("127.0.0.1", 5000)
    assert build("--check-registries", "").check_registries.disabled
    with pytest.raises(ConfigError, match="--check-registries"):
        build("--check-registries", "bad/entry")
