"""The shipped Alertmanager config (deploy/prometheus/alertmanager.yml), run by the real
Alertmanager: while an image's alert is critical (a crash loop), its warning of the same image
and host platform is muted, for exec format errors and for their look-alikes alike; another
image, or the other alert name, is not muted."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import alerting, procs


def _post(port: int, alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _alert(name: str, image: str, severity: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "image": image, "host_platform": "linux/arm64", "severity": severity}}


def _inhibited(port: int) -> dict[tuple[str, str, str], bool]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=10) as resp:
        doc = json.load(resp)
    return {(a["labels"]["alertname"], a["labels"]["image"], a["labels"]["severity"]): bool(a["status"]["inhibitedBy"])
            for a in doc}


@pytest.mark.parametrize("name", ["EnoexecExecFormatErrors", "EnoexecStartFailures"])
def test_a_critical_image_alert_mutes_its_own_warning_only(tmp_path: Path, name: str) -> None:
    other = "EnoexecStartFailures" if name == "EnoexecExecFormatErrors" else "EnoexecExecFormatErrors"
    with alerting.webhook() as hook, alerting.alertmanager(tmp_path, hook.port) as port:
        _post(port, [_alert(name, "shop/web:2", "critical"), _alert(name, "shop/web:2", "warning"),
                     _alert(name, "shop/db:1", "warning"), _alert(other, "shop/web:2", "warning")])
        want = {(name, "shop/web:2", "critical"): False, (name, "shop/web:2", "warning"): True,
                (name, "shop/db:1", "warning"): False, (other, "shop/web:2", "warning"): False}
        procs.wait_for(lambda: _inhibited(port) == want, timeout=30, what=f"{name}'s warning muted by its critical")
