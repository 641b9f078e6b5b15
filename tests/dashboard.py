"""Evaluate the shipped Grafana dashboard's queries on a real Prometheus, the way
Grafana would (its variables filled in; stat and table panels as instant
queries, time series as range queries with the step as ``$__interval``), and
compare the counting panels with what the collector's API reports."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.alerting import Prometheus

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "enoexec-dashboard.json"
STEP = 1.0  # seconds: the test's scrape interval, and $__interval

VARIABLES = {
    "$__rate_interval": "4s", "$__interval": f"{STEP:.0f}s", "$__range": "1h",
    "$cause": ".*", "$host_platform": ".*",
}
# Panels over metrics another part of the fleet may not export yet: may be empty.
# The look-alike panels are empty where the test fleet's exits are all exec format errors.
MAY_BE_EMPTY = {"Agent resources", "Start failures by image and host platform",
                "Latest start failures and emulated starts (last 30 minutes)"}


@dataclass(frozen=True)
class Counts:
    total: int
    by_cause: dict[str, int]
    by_image: dict[tuple[str, str, str], int]  # (image, host_platform, cause)
    by_host: dict[tuple[str, str], int]  # (host, host_platform)
    failing: set[tuple[str, str]]  # (image, host_platform)


def expected_counts(events: list[dict[str, Any]]) -> Counts:
    """What each counting panel must show, from the collector's /api/v1/events."""
    return Counts(
        total=len(events),
        by_cause=dict(Counter(e["cause"] for e in events)),
        by_image=dict(Counter((e["image"]["ref"], e["host"]["platform"], e["cause"]) for e in events)),
        by_host=dict(Counter((e["host"]["host_id"], e["host"]["platform"]) for e in events)),
        failing={(e["image"]["ref"], e["host"]["platform"]) for e in events},
    )


def panels() -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"}


def expr_of(target: dict[str, Any]) -> str:
    expr = str(target["expr"])
    for var in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(var, VARIABLES[var])
    assert "$" not in expr, expr
    return expr


def instant(prom: Prometheus, title: str, ref: str = "A") -> list[dict[str, Any]]:
    (target,) = [t for t in panels()[title]["targets"] if t.get("refId", "A") == ref]
    return prom.query(expr_of(target))


def total(prom: Prometheus, title: str, ref: str = "A") -> float:
    return sum(float(s["value"][1]) for s in instant(prom, title, ref))


def _by(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], int]:
    return {tuple(s["metric"].get(k, "") for k in labels): round(float(s["value"][1])) for s in result}


def check_all_panels(prom: Prometheus, want: Counts, *, start: float, end: float, replicas: int = 1) -> None:
    """Every panel's every query evaluates; the counting panels equal ``want``."""
    start = end - math.ceil((end - start + 60) / STEP) * STEP  # steps end exactly at ``end``, like Grafana's
    for title, panel in panels().items():
        results = []
        for target in panel["targets"]:
            expr = expr_of(target)
            if target.get("instant"):
                results += prom.query(expr, time=end)
            else:
                results += prom.query_range(expr, start, end, STEP)
        assert results or title in MAY_BE_EMPTY, f"panel {title!r} has no data"

    assert total(prom, "Exits in range") == want.total
    image_rows = _by(instant(prom, "Exits by image and host platform"), "image", "host_platform", "cause")
    assert image_rows == want.by_image
    assert _by(instant(prom, "Exits per host"), "host", "host_platform") == want.by_host
    assert total(prom, "Collector up") == replicas
    assert total(prom, "Collector up", ref="B") == replicas  # every replica read its store

    # A time series panel shows exits per step: summed over the range they are every exit.
    (target,) = panels()["Exits by cause"]["targets"]
    series = prom.query_range(expr_of(target), start, end, STEP)
    per_cause = {s["metric"]["cause"]: round(sum(float(v) for _, v in s["values"])) for s in series}
    assert per_cause == want.by_cause, series

    firing = instant(prom, "Firing alerts")
    image_alerts = {(s["metric"]["image"], s["metric"]["host_platform"]) for s in firing
                    if s["metric"]["alertname"] == "EnoexecExecFormatErrors"}
    assert image_alerts == want.failing
    assert len([s for s in firing if s["metric"]["alertname"] == "EnoexecExecFormatErrors"]) == len(want.failing)

    latest = _by(instant(prom, "Latest exits (last 30 minutes)"), "image", "host_platform", "cause")
    assert set(latest) == set(want.by_image)
