"""The pure parts of the user surface: escaping, log formats, said-once failures,
collector stream failures, the check table, URLs."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from agent import config as agent_config
from agent.delivery.stream_errors import explain
from agent.errors import ConfigError as AgentConfigError
from collector import cli as collector_cli
from collector.errors import ConfigError
from collector.http import hints_view
from enoexec import logsetup, settings, text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain /app", "plain /app"),
        ("/app\x1b]0;pwned\x07", "/app\\x1b]0;pwned\\x07"),
        ("a\rb\bc\x7f", "a\\x0db\\x08c\\x7f"),
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\ufeff#!/bin/sh", "\\ufeff#!/bin/sh"),  # BOM
        ("rtl\u202eexe", "rtl\\u202eexe"),  # bidi override
        ("two\nlines\tok", "two\nlines\tok"),
        ("ünïcødé 名前", "ünïcødé 名前"),
    ],
)
def test_printable_escapes_what_drives_a_terminal(raw: str, shown: str) -> None:
    assert text.printable(raw) == shown


def test_oneline_escapes_newlines_too() -> None:
    assert text.oneline("a\nb\tc") == "a\\x0ab\\x09c"


def _record(msg: str, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("enoexec.test")
    return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, (), None, extra=extra)


def test_json_logs_keep_fields_as_fields() -> None:
    line = logsetup.JsonFormatter().format(_record("collector unreachable", target="h:7469", attempts=3))
    doc = json.loads(line)
    assert doc["msg"] == "collector unreachable"
    assert (doc["target"], doc["attempts"], doc["level"], doc["logger"]) == ("h:7469", 3, "warning", "enoexec.test")


def test_key_value_placeholders_become_fields() -> None:
    logger = logging.getLogger("enoexec.test")
    rec = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "agent started host_id=%s spooled=%d", ("h-1", 3), None)
    doc = json.loads(logsetup.JsonFormatter().format(rec))
    assert (doc["msg"], doc["host_id"], doc["spooled"]) == ("agent started", "h-1", 3)
    mixed = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "read %s bytes n=%d", ("x", 3), None)
    assert json.loads(logsetup.JsonFormatter().format(mixed))["msg"] == "read x bytes n=3"  # not a pure tail: left as is


def test_logfmt_quotes_and_escapes() -> None:
    line = logsetup.LogfmtFormatter().format(_record("image seen", image='evil "x"\x1b[2J', n=2))
    assert 'msg="image seen"' in line and "n=2" in line
    assert r'image="evil \"x\"\\x1b[2J"' in line
    assert "\x1b" not in line


def test_human_format_is_one_short_line_with_fields() -> None:
    line = logsetup.HumanFormatter().format(_record("registry lookup failed", image="app:1"))
    assert line.endswith("WARNING registry lookup failed  image=app:1"), line


def test_auto_format_is_human_on_a_tty_and_json_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(logsetup.formatter("auto", Tty()), logsetup.HumanFormatter)
    assert isinstance(logsetup.formatter("auto", io.StringIO()), logsetup.JsonFormatter)
    with pytest.raises(ValueError):
        logsetup.log_format("xml")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_failure_is_said_once_then_summarised(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    r = logsetup.Repeats(logging.getLogger("enoexec.test"), "collector unreachable", every=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="enoexec.test"):
        for _ in range(50):
            r.failed("nothing answers", target="h")
            clock.now += 1
        r.failed("other failure")
        r.recovered()
    msgs = [rec.getMessage() for rec in caplog.records]
    assert msgs == [
        "collector unreachable: nothing answers",
        "collector unreachable: still failing",
        "collector unreachable: other failure",
        "collector unreachable: working again",
    ]
    assert caplog.records[1].failures == 31  # type: ignore[attr-defined]
    assert caplog.records[-1].after_failures == 51  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("code", "details", "tls", "permanent", "says"),
    [
        ("PERMISSION_DENIED", "certificate is for host-a", True, True, "refused this agent's identity"),
        ("UNAUTHENTICATED", "unknown token", True, True, "does not know this agent"),
        ("INVALID_ARGUMENT", "bad host id", False, True, "refused this agent: bad host id"),
        ("UNAVAILABLE", "Socket closed", False, False, "it probably speaks TLS"),
        ("UNAVAILABLE", "failed to connect to all addresses; last error: INTERNAL: Failed parsing HTTP/2", False, False,
         "is it the collector's HTTP port"),
        ("UNAVAILABLE", "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Connection refused",
         False, False, "nothing answers"),
        ("UNAVAILABLE", "Cancelling all calls", False, False, "it is stopping or restarting"),
        ("UNAVAILABLE", "the collector's store is unavailable; retry later", False, False, "cannot store events now"),
    ],
)
def test_stream_failures_are_explained(code: str, details: str, tls: bool, permanent: bool, says: str) -> None:
    got = explain(code, details, "127.0.0.1:7469", tls=tls)
    assert got.permanent is permanent and says in got.message, got


def test_check_table_aligns_long_host_ids() -> None:
    doc = {
        "image": "app:1", "platforms": ["linux/amd64"], "platforms_from": "registry", "cannot_run": ["a" * 32],
        "hosts": [
            {"host_id": "a" * 32, "host_platform": "linux/arm/v7", "runnable": False, "reason": "no_platform", "detail": "x"},
            {"host_id": "pi", "host_platform": "linux/amd64", "runnable": True, "reason": "native"},
        ],
    }
    rows = collector_cli.check_table(doc).splitlines()[1:3]
    assert rows[0].index("linux/arm/v7") == rows[1].index("linux/amd64")
    assert collector_cli.check_exit_code(doc) == 1
    assert collector_cli.check_exit_code({**doc, "hosts": []}) == 4
    assert collector_cli.check_exit_code({**doc, "cannot_run": []}) == 0


def test_hints_table_escapes_and_ends_with_a_newline() -> None:
    assert hints_view.table([]).endswith("\n")
    group = {"image": "evil\x1b[2J:1", "cause": "missing_shebang", "host_platform": "linux/amd64", "hosts": 1, "exits": 1,
             "last_seen": "2026-01-01T00:00:00Z", "hint": "add_shebang", "title": "t\x07", "text": "x", "commands": []}
    out = hints_view.table([group])
    assert "\x1b" not in out and "\x07" not in out and "evil\\x1b[2J:1" in out


@pytest.mark.parametrize(("given", "url"), [("localhost:9469", "http://localhost:9469"), ("https://c:9469/", "https://c:9469")])
def test_collector_url_without_scheme_means_http(given: str, url: str) -> None:
    assert collector_cli.base_url(given) == url


@pytest.mark.parametrize("bad", ["ftp://x", "http://", "localhost:port"])
def test_bad_collector_url_says_what_to_pass(bad: str) -> None:
    with pytest.raises(ConfigError):
        collector_cli.base_url(bad)


@pytest.mark.parametrize(("value", "ok"), [(3, True), (3.0, True), (1.5, False), (True, False), ("2", True), ("1.5", False)])
def test_whole_numbers_only(value: Any, ok: bool) -> None:
    if ok:
        assert settings.positive_int(value) == int(float(value))
    else:
        with pytest.raises(ValueError):
            settings.positive_int(value)


@pytest.mark.parametrize("url", ["unix:///var/run/docker.sock", "tcp://10.0.0.1:2376", "ssh://me@host"])
def test_docker_urls_accepted(url: str) -> None:
    assert agent_config.docker_url(url) == url


@pytest.mark.parametrize("url", ["foo://bar", "/var/run/docker.sock", "unix://", "localhost:2375"])
def test_docker_urls_refused(url: str) -> None:
    with pytest.raises(AgentConfigError):
        agent_config.docker_url(url)


def _wrapped(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except OSError as e:
            raise RuntimeError("Error while fetching server API version: ('Connection aborted.', ...)") from e
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("inner", "kind", "says"),
    [
        (PermissionError(13, "Permission denied"), "ConfigError", "permission denied on the Docker Engine socket"),
        (FileNotFoundError(2, "No such file or directory"), "DockerUnavailable", "no Docker Engine socket at"),
        (ConnectionRefusedError(111, "Connection refused"), "DockerUnavailable", "nothing answers at"),
    ],
)
def test_docker_connection_errors_are_explained(inner: OSError, kind: str, says: str) -> None:
    from agent import docker_errors

    got = docker_errors.explain("unix:///var/run/docker.sock", _wrapped(inner))
    assert type(got).__name__ == kind and says in str(got)
    assert got.exit_code == (2 if kind == "ConfigError" else 3)


def test_json_logs_never_carry_raw_controls() -> None:
    line = logsetup.JsonFormatter().format(_record("image seen", image="a\x9bb\x1bc\x7f"))
    assert not any(0x7F <= ord(c) < 0xA0 or ord(c) < 0x20 for c in line)
    assert json.loads(line)["image"] == "a\x9bb\x1bc\x7f"


def test_serve_without_the_collector_extra_says_what_to_install(tmp_path) -> None:
    """An agent-only install (pip install enoexec) has no aiohttp: one line and exit 2, not a traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['aiohttp'] = None; from collector.cli import main; "
            f"sys.exit(main(['serve', '--insecure', '--db', {str(tmp_path / 'x.db')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        "enoexec-collector: error: the collector's libraries are not installed (aiohttp is missing): "
        "pip install 'enoexec[collector]' (or 'enoexec[postgres]' for PostgreSQL)"
    ], out.stderr
    assert not (tmp_path / "x.db").exists()
