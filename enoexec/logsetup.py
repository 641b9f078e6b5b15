"""Logging for both daemons: ``--log-format human|json|logfmt``, fields kept as fields.

Log calls keep the message short and pass the details as fields::

    logger.warning("collector unreachable", extra={"target": target, "error": reason})

``json`` writes one object per line (``ts level logger msg`` then the fields),
``logfmt`` writes ``key=value`` pairs (journald, Loki, Vector read both),
``human`` writes ``HH:MM:SS LEVEL msg key=value`` for a person at a terminal;
``auto`` (the default) is ``human`` on a TTY and ``json`` otherwise.
Entry points call ``configure`` once; nothing else touches the root logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from enoexec.text import oneline

LOG_FORMATS = ("auto", "human", "json", "logfmt")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


# Older calls write ``logger.info("agent started host_id=%s platform=%s", a, b)``:
# a trailing run of ``key=%s`` placeholders is read back as fields, so every
# record has a short message and its details as fields.
_TAIL = re.compile(r"(?:\s+[A-Za-z_]\w*=%[sdrif])+\s*$")
_KV = re.compile(r"([A-Za-z_]\w*)=%([sdrif])")


def message_and_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """The record's short message and all its fields (``key=%s`` tail and ``extra=``)."""
    msg, args, got = record.msg, record.args, fields(record)
    if isinstance(msg, str) and isinstance(args, tuple) and args:
        tail = _TAIL.search(msg)
        head = msg[: tail.start()] if tail else msg
        pairs = _KV.findall(tail.group(0)) if tail else []
        if pairs and len(pairs) == len(args) and "%" not in head.replace("%%", ""):
            out: dict[str, Any] = {}
            for (key, conv), value in zip(pairs, args, strict=True):
                if conv == "r":
                    value = repr(value)
                elif conv == "s" or not isinstance(value, (int, float)):
                    value = value if isinstance(value, (int, float, bool)) and not isinstance(value, str) else str(value)
                out[key] = value
            return head.replace("%%", "%").strip(), {**out, **got}
    return record.getMessage(), got


def _ts(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, bool)) or value is None else str(value)


# json.dumps escapes C0 controls but not DEL and C1 (0x9b is a CSI to many terminals).
_C1_ESCAPES = {n: f"\\u{n:04x}" for n in range(0x7F, 0xA0)}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg, extra = message_and_fields(record)
        out: dict[str, Any] = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name, "msg": msg}
        for k, v in extra.items():
            out.setdefault(k, _plain(v))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False).translate(_C1_ESCAPES)


def _logfmt_value(value: Any) -> str:
    s = oneline("" if value is None else value)
    if s == "" or any(c in s for c in ' ="\\'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg, extra = message_and_fields(record)
        pairs: dict[str, Any] = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name, "msg": msg}
        for k, v in extra.items():
            pairs.setdefault(k, v)
        if record.exc_info:
            pairs["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs.items())


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        msg, got = message_and_fields(record)
        extra = " ".join(f"{k}={_logfmt_value(v)}" for k, v in got.items())
        line = f"{when} {record.levelname:<7} {oneline(msg)}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_format(value: Any) -> str:
    fmt = str(value).strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return fmt


def formatter(fmt: str, stream: TextIO) -> logging.Formatter:
    if fmt == "auto":
        fmt = "human" if stream.isatty() else "json"
    return {"human": HumanFormatter, "json": JsonFormatter, "logfmt": LogfmtFormatter}[fmt]()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt, stream))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless we debug.
    for noisy in ("urllib3", "docker", "asyncio", "aiohttp.access", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level != "debug" else logging.DEBUG)


class Repeats:
    """A recurring failure said once, then summarised.

    The first failure is logged at WARNING with its fields; the same failure
    again is only counted, and summarised at most every ``every`` seconds
    ("still failing", with the count); a different failure is said at once;
    ``recovered`` says at INFO that it works again, with how many failures it took.
    """

    def __init__(self, logger: logging.Logger, what: str, *, every: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._what = what
        self._every = every
        self._clock = clock
        self._key: str | None = None
        self._count = 0
        self._since_summary = 0
        self._said_at = 0.0
        self._lock = threading.Lock()  # diagnoses run in worker threads

    @property
    def failing(self) -> bool:
        return self._key is not None

    def failed(self, message: str, **extra: Any) -> None:
        with self._lock:
            self._failed(message, extra)

    def _failed(self, message: str, extra: dict[str, Any]) -> None:
        now = self._clock()
        self._count += 1
        if message != self._key:
            self._key, self._said_at, self._since_summary = message, now, 0
            self._logger.warning("%s: %s", self._what, message, extra=extra)
            return
        self._since_summary += 1
        if now - self._said_at >= self._every:
            self._logger.warning("%s: still failing", self._what,
                                 extra={"failures": self._count, "since_last_said": self._since_summary, "error": message, **extra})
            self._said_at, self._since_summary = now, 0

    def recovered(self, message: str = "working again", **extra: Any) -> None:
        with self._lock:
            self._recovered(message, extra)

    def _recovered(self, message: str, extra: dict[str, Any]) -> None:
        if self._key is not None:
            self._logger.info("%s: %s", self._what, message, extra={"after_failures": self._count, **extra})
        self._key, self._count, self._since_summary = None, 0, 0
