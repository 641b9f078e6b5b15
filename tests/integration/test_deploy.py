"""The deployment files under deploy/ checked with the tools that consume them.

promtool (Debian package ``prometheus``), systemd-analyze, openssl and bash;
each test skips, saying which tool is missing, when it cannot run here (in CI it fails:
tests/require.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import require

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
MAKE_CERTS = DEPLOY / "tls" / "make-certs.sh"
INSTALL = DEPLOY / "install.sh"

# Metric names as exposed, as README.md ("Metrics") lists them.
CONTRACT_METRICS = frozenset({
    "enoexec_exits_total",
    "enoexec_host_exits_total",
    "enoexec_hosts",
    "enoexec_agents_connected",
    "enoexec_agent_last_seen_timestamp_seconds",
    "enoexec_agent_spool_events",
    "enoexec_agent_dropped_events_total",
    "enoexec_hint_info",
    "enoexec_collector_events_received_total",
    "enoexec_collector_events_duplicate_total",
    "enoexec_collector_events_rejected_total",
    "enoexec_collector_throttled_seconds_total",
    "enoexec_agent_resident_memory_bytes",
    "enoexec_agent_cpu_seconds_total",
    "enoexec_build_info",
    # added for alerting (#11): the latest exit per image, host platform, cause and host
    "enoexec_last_exit_timestamp_seconds",
    # added for latent failures (#19): hosts holding an image that cannot run there
    "enoexec_unrunnable_images",
    # added for the look-alikes (#17): start failures beside the exec format errors
    "enoexec_start_failures_total",
    "enoexec_last_start_failure_timestamp_seconds",
    "enoexec_last_emulated_start_timestamp_seconds",
    # added for the store's health (#16): a scrape that could not read the store
    "enoexec_collector_store_up",
})
# Prometheus's own series that rules and panels may use.
PROMETHEUS_METRICS = frozenset({"up", "ALERTS"})

EXPECTED_ALERTS = {
    "EnoexecExecFormatErrors",
    "EnoexecUnrunnableImages",
    "EnoexecStartFailures",
    "EnoexecCollectorDown",
    "EnoexecCollectorStoreDown",
    "EnoexecAgentDown",
    "EnoexecAgentDroppingEvents",
    "EnoexecAgentSpoolBacklog",
    "EnoexecCollectorRejecting",
    "EnoexecNoAgentsConnected",
}

AGENT_KEYS = {
    "collector", "docker_host", "state_dir", "host_id", "log_level", "spool_max_events",
    "reconcile_interval", "heartbeat_interval", "insecure", "tls_ca", "tls_cert", "tls_key",
}
COLLECTOR_KEYS = {
    "grpc_listen", "http_listen", "db", "retention_days", "max_image_labels", "replica_id",
    "log_level", "insecure", "tls_ca", "tls_cert", "tls_key",
}

PROMQL_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
})


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        require.missing(f"{tool} not found: install it (apt-get install -y {package})")
    return path


def run(*argv: str | Path, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery durations
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w$:.])([A-Za-z_:][\w:]*+)(?!\s*\()", s):
        name = m.group(1)
        if name.lower() not in PROMQL_KEYWORDS:
            names.add(name)
    return names


def test_metric_names_finds_selectors_only() -> None:
    expr = ('sum by (cause, host_platform) (rate(enoexec_exits_total{cause=~"$cause", image!="x{y}"}[5m]))'
            " / on (host) group_left (platform) enoexec_hosts > bool 0 or time() - up offset 5m")
    assert metric_names(expr) == {"enoexec_exits_total", "enoexec_hosts", "up"}


# --- Prometheus -------------------------------------------------------------

def test_prometheus_config_is_valid() -> None:
    promtool = need("promtool", "prometheus")
    out = run(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert "SUCCESS" in out.stdout


def rule_exprs(text: str) -> list[str]:
    """Every ``expr:`` of a rules file, one-line or a ``|`` block."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)expr: (.+)$", line)
        if not m:
            continue
        if m.group(2).strip() != "|":
            out.append(m.group(2))
            continue
        block = []
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(m.group(1)):
                break
            block.append(nxt)
        out.append("\n".join(block))
    return out


def test_rules_are_valid_and_cover_every_alert() -> None:
    promtool = need("promtool", "prometheus")
    run(promtool, "check", "rules", PROMETHEUS / "enoexec-rules.yml")
    text = (PROMETHEUS / "enoexec-rules.yml").read_text()
    assert set(re.findall(r"^\s*- alert: (\w+)", text, re.M)) == EXPECTED_ALERTS


def test_rules_only_use_contract_metrics() -> None:
    text = (PROMETHEUS / "enoexec-rules.yml").read_text()
    recorded = set(re.findall(r"^\s*- record: (\S+)", text, re.M))
    exprs = rule_exprs(text)
    assert len(exprs) == len(EXPECTED_ALERTS) + len(recorded)
    used = set().union(*(metric_names(e) for e in exprs))
    allowed = CONTRACT_METRICS | PROMETHEUS_METRICS | recorded
    assert used <= allowed, used - allowed


def test_image_alert_carries_what_an_operator_needs() -> None:
    text = (PROMETHEUS / "enoexec-rules.yml").read_text()
    block = text[text.index("alert: EnoexecExecFormatErrors"):text.index("name: enoexec-recording")]
    for key in ("hosts:", "cause:", "hint:", "command:", "runbook_url:", "enoexec-collector hints --url"):
        assert key in block, key
    # no increase()/rate() on the exit counter: they ignore a series' first sample
    assert "increase(" not in block and "rate(" not in block
    readme = (ROOT / "README.md").read_text()
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    anchors = set(re.findall(r"README\.md#([\w-]+)", text))
    assert {"alert-enoexecexecformaterrors", "alert-enoexeccollectordown", "the-other-alerts"} <= anchors
    assert anchors <= slugs, anchors - slugs
    # every alert links to its runbook
    assert text.count("runbook_url:") == len(EXPECTED_ALERTS)


def test_alertmanager_example_is_valid() -> None:
    amtool = need("amtool", "prometheus-alertmanager")
    out = run(amtool, "check-config", PROMETHEUS / "alertmanager.yml")
    assert "SUCCESS" in out.stdout
    assert "group_by: [alertname, image, host_platform]" in (PROMETHEUS / "alertmanager.yml").read_text()


def test_prometheus_config_sends_alerts_to_alertmanager() -> None:
    text = (PROMETHEUS / "prometheus.yml").read_text()
    assert re.search(r"^alerting:\n  alertmanagers:\n", text, re.M)
    assert "job_name: enoexec" in text  # EnoexecCollectorDown selects up{job="enoexec"}


def test_rule_unit_tests_pass() -> None:
    promtool = need("promtool", "prometheus")
    out = run(promtool, "test", "rules", PROMETHEUS / "enoexec-rules.test.yml")
    assert "SUCCESS" in out.stdout
    tests = (PROMETHEUS / "enoexec-rules.test.yml").read_text()
    for alert in EXPECTED_ALERTS:
        # each alert is checked both silent (exp_alerts: []) and firing
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]", tests), alert
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n", tests), alert


# --- Grafana ----------------------------------------------------------------

def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "enoexec-dashboard.json").read_text())


def dashboard_exprs(dash: dict) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_uses_only_contract_metrics() -> None:
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    exprs = dashboard_exprs(dash)
    assert len(exprs) >= 10
    used: set[str] = set()
    allowed = CONTRACT_METRICS | PROMETHEUS_METRICS
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= allowed, f"{expr!r} uses {names - allowed}"
        used |= names
    # every contract metric but the build info has a panel, and so do up and ALERTS
    assert allowed - used == {"enoexec_build_info"}


# Counters the collector exports from their first value (an exit, a refusal, a host's first Hello or its return
# after expiry): increase() and rate() ignore a series' first sample, so a query over them would miss a first event.
BORN_AT_FIRST_VALUE = frozenset({
    "enoexec_exits_total", "enoexec_host_exits_total", "enoexec_agent_dropped_events_total",
    "enoexec_collector_events_rejected_total",
})


def test_counts_do_not_use_increase_on_series_born_at_their_first_value() -> None:
    """increase()/rate() ignore a series' first sample: neither the dashboard nor a rule may put these counters through them."""
    rules = rule_exprs((PROMETHEUS / "enoexec-rules.yml").read_text())
    checked: set[str] = set()
    for where, exprs in (("dashboard", dashboard_exprs(dashboard())), ("rules", rules)):
        for expr in exprs:
            counters = metric_names(expr) & BORN_AT_FIRST_VALUE
            if counters:
                assert "increase(" not in expr and "rate(" not in expr, f"{where}: {expr}"
                checked |= {f"{where}:{name}" for name in counters}
    # not vacuous: every such counter is queried by the dashboard, and the alerts on them were looked at
    assert {f"dashboard:{name}" for name in BORN_AT_FIRST_VALUE} <= checked, checked
    assert {"rules:enoexec_exits_total", "rules:enoexec_agent_dropped_events_total",
            "rules:enoexec_collector_events_rejected_total"} <= checked, checked


def test_every_exit_panel_follows_the_cause_filter() -> None:
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            if metric_names(t["expr"]) & {"enoexec_exits_total", "enoexec_host_exits_total", "enoexec_last_exit_timestamp_seconds",
                                          "enoexec_hint_info"}:
                assert '$cause"' in t["expr"], f"{p['title']}: {t['expr']}"


def test_dashboard_is_provisioning_ready() -> None:
    """Grafana file provisioning does not resolve __inputs: a datasource variable instead."""
    text = (DEPLOY / "grafana" / "enoexec-dashboard.json").read_text()
    dash = json.loads(text)
    assert "__inputs" not in dash and "DS_PROMETHEUS" not in text
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for p in dash["panels"]:
        for holder in [p] * (p["type"] != "row") + p.get("targets", []):
            assert holder["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, v["name"]
    provider = (DEPLOY / "grafana" / "provisioning" / "dashboards" / "enoexec.yml").read_text()
    assert re.search(r"^apiVersion: 1\nproviders:\n  - name: enoexec\n", provider, re.M)
    assert re.search(r"^\s+type: file$", provider, re.M) and re.search(r"^\s+path: /\S+$", provider, re.M)
    source = (DEPLOY / "grafana" / "provisioning" / "datasources" / "enoexec.yml").read_text()
    assert re.search(r"^apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n", source, re.M)


def test_dashboard_panels_and_variables() -> None:
    dash = dashboard()
    titles = {p["title"] for p in dash["panels"]}
    for title in ("Exits by cause", "Exits in range", "Exits by image and host platform", "Exits per host",
                  "Collector up", "Firing alerts", "Agent throttling", "Agent resources", "Hosts by platform",
                  "Agents connected", "Agent last seen", "Agent spool depth and drops", "Active hints",
                  "Images that cannot run on the hosts that hold them"):
        assert title in titles
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert set(variables) == {"datasource", "cause", "host_platform"}
    for name in ("cause", "host_platform"):
        query = variables[name]["query"]["query"]
        metric = re.fullmatch(r"label_values\((\w+), *\w+\)", query).group(1)
        assert metric in CONTRACT_METRICS
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_exprs_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query, with Grafana's variables filled in."""
    promtool = need("promtool", "prometheus")
    subst = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m",
             "$cause": ".*", "$host_platform": ".*"}
    rules = []
    for i, expr in enumerate(dashboard_exprs(dashboard())):
        for var, value in subst.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:panel{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    run(promtool, "check", "rules", path)


# --- systemd ----------------------------------------------------------------

UNITS = ("enoexec-agent.service", "enoexec-collector.service")


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    text = (DEPLOY / "systemd" / unit).read_text()
    # the console scripts are not installed here: point ExecStart at a real binary
    copy = tmp_path / unit
    copy.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", text))
    proc = run(analyze, "verify", copy, check=False)
    if "Failed to initialize manager" in proc.stderr or "Failed to setup working directory" in proc.stderr:
        require.missing(f"systemd-analyze verify cannot run in this container: {proc.stderr.strip()}")
    complaints = [line for line in proc.stderr.splitlines() if unit in line or str(copy) in line]
    assert proc.returncode == 0 and not complaints, proc.stderr


@pytest.mark.parametrize("unit,user,state", [
    ("enoexec-agent.service", "enoexec", "enoexec"),
    ("enoexec-collector.service", "enoexec-collector", "enoexec-collector"),
])
def test_unit_settings(unit: str, user: str, state: str) -> None:
    lines = set((DEPLOY / "systemd" / unit).read_text().splitlines())
    name = unit.removesuffix(".service")
    command = "run --config /etc/enoexec/agent.toml" if name.endswith("agent") else "serve --config /etc/enoexec/collector.toml"
    for expected in (
        "Type=notify", "NotifyAccess=main", "WatchdogSec=30", f"ExecStart=/usr/local/bin/{name} {command}",
        "Restart=always", "RestartSec=2", "RestartPreventExitStatus=2",
        f"User={user}", f"StateDirectory={state}", f"ReadWritePaths=/var/lib/{state}",
        "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
        "SystemCallFilter=@system-service", "SystemCallArchitectures=native", "CapabilityBoundingSet=",
        "TimeoutStopSec=20", "KillSignal=SIGTERM", f"EnvironmentFile=-/etc/default/{name}",
    ):
        assert expected in lines, f"{unit}: missing {expected}"
    assert ("SupplementaryGroups=docker" in lines) == name.endswith("agent")
    # Documentation= names files install.sh installs.
    docs = next(line for line in lines if line.startswith("Documentation="))
    install = INSTALL.read_text()
    for url in docs.removeprefix("Documentation=").split():
        path = url.removeprefix("file://")
        assert path.startswith("/usr/local/share/doc/enoexec/"), url
        assert f'"$DOC_DIR/{Path(path).name}"' in install, f"install.sh does not install {path}"


@pytest.mark.parametrize("unit", UNITS)
def test_unit_security_exposure(unit: str, tmp_path: Path) -> None:
    """systemd-analyze security: only the exposures the unit's comment explains are left."""
    analyze = need("systemd-analyze", "systemd")
    copy = tmp_path / unit
    copy.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", (DEPLOY / "systemd" / unit).read_text()))
    proc = run(analyze, "security", "--offline=true", "--no-pager", copy, check=False)
    if "Overall exposure" not in proc.stdout:
        require.missing(f"systemd-analyze security --offline cannot run here (systemd >= 252 has it): {proc.stderr.strip()[:200]}")
    flagged = {line.split()[1].split("=")[0] for line in proc.stdout.splitlines() if line.startswith("✗")}
    allowed = {"RootDirectory", "RestrictAddressFamilies", "PrivateNetwork", "IPAddressDeny", "DeviceAllow"}
    if unit == "enoexec-agent.service":
        allowed |= {"SupplementaryGroups", "ProcSubset", "PrivateUsers"}
    else:
        allowed |= {"PrivateUsers"}
    assert flagged <= allowed, flagged - allowed
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout).group(1))  # type: ignore[union-attr]
    assert exposure <= 1.5, proc.stdout
    # deploy/README.md states the measured figure.
    stated = re.search(r"exposure ([\d.]+) agent, ([\d.]+) collector", " ".join((DEPLOY / "README.md").read_text().split()))
    assert stated, "deploy/README.md no longer states the units' exposure"
    want = stated.group(1) if unit == "enoexec-agent.service" else stated.group(2)
    assert f"{exposure:.1f}" == want, f"{unit}: systemd-analyze security says {exposure:.1f}, deploy/README.md says {want}"


# --- install.sh -------------------------------------------------------------

def test_install_script_syntax_and_help() -> None:
    bash = need("bash", "bash")
    run(bash, "-n", INSTALL)
    out = run(INSTALL, "--help")
    assert "--collector-address" in out.stdout and "--prefix" in out.stdout


@pytest.mark.parametrize("argv,message", [
    ((), "nothing to install"),
    (("--agent", "--collector-address", "no port"), "is not HOST:PORT"),
    (("--agent", "--prefix", "relative/dir"), "absolute path"),
    (("--bogus",), "unknown option"),
    (("--agent", "--wheels"), "--wheels needs a directory"),
    (("--uninstall", "--wheels", "/tmp"), "--wheels goes with an install"),
])
def test_install_script_bad_usage(argv: tuple[str, ...], message: str) -> None:
    need("bash", "bash")
    proc = run(INSTALL, *argv, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_install_script_dry_run_plan(tmp_path: Path) -> None:
    need("bash", "bash")
    prefix = tmp_path / "opt"
    out = run(INSTALL, "--agent", "--collector-address", "collector.example:7469",
              "--prefix", prefix, "--python", SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else sys.executable, "--dry-run").stdout
    assert f"-m venv {prefix}/venv" in out
    # No --quiet: pip's resolution and build messages stay visible. The agent alone: no extra.
    assert f"{prefix}/venv/bin/python -m pip install --prefer-binary --upgrade {ROOT}\n" in out
    assert f"ln -sfn {prefix}/venv/bin/enoexec-agent /usr/local/bin/enoexec-agent" in out
    assert "/etc/systemd/system/enoexec-agent.service" in out
    assert "/usr/local/share/doc/enoexec/README.md" in out
    assert "enoexec-collector.service" not in out
    assert not prefix.exists(), "--dry-run must change nothing"


def test_install_script_dry_run_with_wheels(tmp_path: Path) -> None:
    """--wheels DIR: pip is told to use DIR only, never an index."""
    need("bash", "bash")
    python = SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else sys.executable
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    missing = run(INSTALL, "--agent", "--collector", "--python", python, "--wheels", tmp_path / "absent", "--dry-run", check=False)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr and "fetch-wheels.sh" in missing.stderr
    empty = run(INSTALL, "--agent", "--collector", "--python", python, "--wheels", wheels, "--dry-run", check=False)
    assert empty.returncode == 2 and "holds no wheels" in empty.stderr and "fetch-wheels.sh" in empty.stderr
    (wheels / "grpcio-1.85.3-cp311-cp311-linux_armv7l.whl").write_bytes(b"")
    out = run(INSTALL, "--agent", "--collector", "--prefix", tmp_path / "opt", "--python", python, "--wheels", wheels, "--dry-run").stdout
    assert f"-m pip install --prefer-binary --upgrade --no-index --find-links {wheels} {ROOT}\\[postgres\\]\n" in out  # printf %q


# pip's own lines (pip 23) when it cannot reach its index; its last line is then only "No matching distribution".
PIP_RETRY = "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by "
PIP_LOGS = {
    "name": PIP_RETRY + "'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f2f922ca410>: "
            "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/setuptools/",
    "proxy": PIP_RETRY + "'ProxyError('Cannot connect to proxy.', NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection "
             "object at 0x7f0>: Failed to establish a new connection: [Errno 111] Connection refused'))': /simple/setuptools/",
    "tls": PIP_RETRY + "'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
           "self-signed certificate in certificate chain (_ssl.c:1006)'))': /simple/setuptools/",
    "refused": "Looking in indexes: https://pypi.corp.example/simple\n" + PIP_RETRY + "'NewConnectionError('<pip._vendor.urllib3."
               "connection.HTTPSConnection object at 0x7f0>: Failed to establish a new connection: [Errno 111] Connection refused')': /simple/setuptools/",
    "missing": "ERROR: Could not find a version that satisfies the requirement grpcio>=1.85.1 (from versions: none)\n"
               "ERROR: No matching distribution found for grpcio>=1.85.1",
}


@pytest.mark.parametrize("log,wheels,expected", [
    ("name", "", r"^pip could not reach the package index https://pypi\.org/simple: name resolution failed \(Temporary failure in name resolution\).*fetch-wheels\.sh DIR.*--wheels DIR$"),
    ("proxy", "", r"^pip could not reach the package index https://pypi\.org/simple: the proxy failed \(ProxyError\): check HTTPS_PROXY"),
    ("tls", "", r"^pip could not reach the package index https://pypi\.org/simple: TLS failed \(SSLError\)"),
    ("refused", "", r"^pip could not reach the package index https://pypi\.corp\.example/simple: Connection refused;"),
    ("missing", "", r"^$"),  # a real resolution failure: pip's own lines say it
    ("missing", "/media/w", r"^/media/w has no wheel of grpcio>=1\.85\.1 for this host \(CPython 3\.\d+ on \w+\): .*"
                            r"deploy/fetch-wheels\.sh DIR --arch \w+ --python-version 3\.\d+, then"),
])
def test_install_script_names_the_cause_of_a_pip_failure(log: str, wheels: str, expected: str, tmp_path: Path) -> None:
    """pip_failure_cause over pip's real messages: the cause its last line hides."""
    bash = need("bash", "bash")
    (tmp_path / "pip.log").write_text(PIP_LOGS[log] + "\n")
    script = f'source {INSTALL}; WHEELS={wheels!r}; pip_failure_cause {tmp_path / "pip.log"} {sys.executable}'
    proc = run(bash, "-c", script)
    assert re.search(expected, proc.stdout.strip()), proc.stdout


# --- fetch-wheels.sh ----------------------------------------------------------

FETCH_WHEELS = DEPLOY / "fetch-wheels.sh"


def test_fetch_wheels_help() -> None:
    need("bash", "bash")
    out = run(FETCH_WHEELS, "--help").stdout
    assert "--arch" in out and "--python-version" in out and "--collector" in out and "install.sh" in out


@pytest.mark.parametrize("argv,message", [
    ((), "Usage:"),
    (("DIR", "--arch", "sparc"), "unknown --arch 'sparc'"),
    (("DIR", "--python-version", "2.7"), "not a CPython 3.11 or later"),
    (("DIR", "--glibc", "2.5"), "not a glibc version 2.17 or later"),
    (("DIR", "OTHER"), "one DIR only"),
    (("DIR", "--bogus"), "unknown option"),
])
def test_fetch_wheels_bad_usage(argv: tuple[str, ...], message: str, tmp_path: Path) -> None:
    need("bash", "bash")
    proc = run(FETCH_WHEELS, *(str(tmp_path / a) if a in ("DIR", "OTHER") else a for a in argv), check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "DIR").exists()


def test_install_script_uninstall_dry_run(tmp_path: Path) -> None:
    need("bash", "bash")
    out = run(INSTALL, "--uninstall", "--purge", "--prefix", tmp_path, "--dry-run").stdout
    assert "uninstalled" in out
    assert run(INSTALL, "--uninstall", "--agent", check=False).returncode == 2


SYSTEM_PYTHON = "/usr/bin/python3"


def _root_and_system_python() -> str:
    if os.geteuid() != 0:
        require.missing("install.sh runs as root: run the tests as root")
    check = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run([SYSTEM_PYTHON, "-c", check]).returncode != 0:
        require.missing(f"no {SYSTEM_PYTHON} >= 3.11 with venv (apt-get install python3-venv)")
    return SYSTEM_PYTHON


def test_install_script_fails_loud_and_clean(tmp_path: Path) -> None:
    """A dependency pip cannot get: the package and reason are named, nothing is left, exit 1."""
    python = _root_and_system_python()
    prefix = tmp_path / "opt" / "enoexec"
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    proc = run(INSTALL, "--agent", "--collector-address", "127.0.0.1:7469", "--prefix", prefix, "--python", python,
               check=False, env={**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pip could not install" in proc.stderr
    assert re.search(r"No matching distribution found for \w+", proc.stderr), proc.stderr
    assert f"removed {prefix}" in proc.stderr
    assert not prefix.exists() and not prefix.parent.exists() or not any(prefix.parent.iterdir())


def test_install_script_refuses_a_private_interpreter(tmp_path: Path) -> None:
    """A Python under a private home (pyenv, conda) cannot be run by the service users: exit 2, one line."""
    python = _root_and_system_python()
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    home.chmod(0o700)
    private = home / "bin" / "python3"
    shutil.copy2(os.path.realpath(python), private)
    proc = run(INSTALL, "--agent", "--collector-address", "127.0.0.1:7469", "--prefix", tmp_path / "opt", "--python", private, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be run by the service users" in lines[0] and "--python" in lines[0], proc.stderr
    assert not (tmp_path / "opt").exists()


# --- TLS --------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("openssl", "openssl")
    d = tmp_path_factory.mktemp("pki")
    run(MAKE_CERTS, "ca", d)
    run(MAKE_CERTS, "collector", d, "collector.test", "127.0.0.1")
    run(MAKE_CERTS, "agent", d, "web-01")
    return d


def test_make_certs_help() -> None:
    need("openssl", "openssl")
    out = run(MAKE_CERTS, "--help")
    assert "collector DIR HOSTNAME" in out.stdout


def test_certs_verify_against_ca(pki: Path) -> None:
    out = run("openssl", "verify", "-CAfile", pki / "ca.crt",
              pki / "collector-collector.test.crt", pki / "agent-web-01.crt")
    assert out.stdout.count(": OK") == 2
    run("openssl", "verify", "-purpose", "sslserver", "-CAfile", pki / "ca.crt", pki / "collector-collector.test.crt")
    run("openssl", "verify", "-purpose", "sslclient", "-CAfile", pki / "ca.crt", pki / "agent-web-01.crt")
    # a server certificate is not a client certificate
    bad = run("openssl", "verify", "-purpose", "sslclient", "-CAfile", pki / "ca.crt",
              pki / "collector-collector.test.crt", check=False)
    assert bad.returncode != 0


def test_agent_cert_names_host(pki: Path) -> None:
    subject = run("openssl", "x509", "-in", pki / "agent-web-01.crt", "-noout", "-subject", "-nameopt", "RFC2253").stdout
    assert "CN=web-01" in subject
    san = run("openssl", "x509", "-in", pki / "agent-web-01.crt", "-noout", "-ext", "subjectAltName").stdout
    assert "URI:enoexec://host/web-01" in san and "DNS:web-01" in san
    key = run("openssl", "pkey", "-in", pki / "agent-web-01.key", "-noout", "-text").stdout
    assert "prime256v1" in key or "P-256" in key
    assert (pki / "agent-web-01.key").stat().st_mode & 0o077 == 0


def test_collector_cert_sans(pki: Path) -> None:
    san = run("openssl", "x509", "-in", pki / "collector-collector.test.crt", "-noout", "-ext", "subjectAltName").stdout
    assert "DNS:collector.test" in san and "IP Address:127.0.0.1" in san


def test_make_certs_refuses_to_overwrite(pki: Path) -> None:
    before = (pki / "agent-web-01.crt").read_bytes()
    proc = run(MAKE_CERTS, "agent", pki, "web-01", check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (pki / "agent-web-01.crt").read_bytes() == before


def test_make_certs_needs_a_ca(tmp_path: Path) -> None:
    need("openssl", "openssl")
    proc = run(MAKE_CERTS, "agent", tmp_path, "web-02", check=False)
    assert proc.returncode == 2 and "make-certs.sh ca" in proc.stderr
    # where the CA is: install.sh --collector makes one in /etc/enoexec/tls
    assert f"no CA in {tmp_path}" in proc.stderr and "/etc/enoexec/tls" in proc.stderr, proc.stderr


@pytest.fixture
def tls_server(pki: Path) -> Iterator[tuple[int, list[str]]]:
    """A TLS server with the collector certificate that requires an agent certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "collector-collector.test.crt", pki / "collector-collector.test.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    peers: list[str] = []

    def serve() -> None:
        with listener, ctx.wrap_socket(listener.accept()[0], server_side=True) as conn:
            peers.append(dict(x[0] for x in conn.getpeercert()["subject"])["commonName"])
            conn.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], peers
    thread.join(timeout=10)


def test_mutual_tls_handshake(pki: Path, tls_server: tuple[int, list[str]]) -> None:
    port, peers = tls_server
    ctx = ssl.create_default_context(cafile=pki / "ca.crt")
    ctx.load_cert_chain(pki / "agent-web-01.crt", pki / "agent-web-01.key")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="collector.test") as conn:
            assert conn.recv(2) == b"ok"
    assert peers == ["web-01"]


# --- example configs ----------------------------------------------------------

@pytest.mark.parametrize("name,keys", [("agent", AGENT_KEYS), ("collector", COLLECTOR_KEYS)])
def test_example_config_has_keys(name: str, keys: set[str]) -> None:
    text = (DEPLOY / "config" / f"{name}.toml").read_text()
    values = tomllib.loads(text)
    assert keys <= set(values), keys - set(values)
    lines = text.splitlines()
    for key in values:  # every key has a comment right above it (or above its group)
        i = next(n for n, line in enumerate(lines) if line.startswith(f"{key} = "))
        above = next(line for line in reversed(lines[:i]) if not re.match(r"\w+ = ", line))
        assert above.startswith("#"), f"{name}.toml: {key} has no comment"


def test_example_config_values() -> None:
    agent = tomllib.loads((DEPLOY / "config" / "agent.toml").read_text())
    assert agent["collector"] == "collector.example:7469"
    assert agent["docker_host"] == "unix:///var/run/docker.sock"
    assert agent["state_dir"] == "/var/lib/enoexec"
    assert (agent["spool_max_events"], agent["reconcile_interval"], agent["heartbeat_interval"]) == (10000, 60, 15)
    assert agent["insecure"] is False
    # Under systemd the log goes to the journal: the README's format for journald, not auto's JSON.
    assert agent["log_format"] == "logfmt"
    collector = tomllib.loads((DEPLOY / "config" / "collector.toml").read_text())
    assert (collector["grpc_listen"], collector["http_listen"]) == ("0.0.0.0:7469", "0.0.0.0:9469")
    assert collector["db"] == "/var/lib/enoexec-collector/enoexec.db"
    assert (collector["retention_days"], collector["max_image_labels"]) == (30, 200)
    assert collector["log_format"] == "logfmt"
    logs = (ROOT / "README.md").read_text().split("## Logs", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"`logfmt`[^;]*suits journald", " ".join(logs.split())), "README 'Logs' no longer names journald's format"


@pytest.mark.parametrize("module", ["agent.config", "collector.config"])
def test_example_config_loads_with_real_config(module: str, tmp_path: Path) -> None:
    """The shipped file is accepted by the program's own config builder."""
    config = importlib.import_module(module)  # the project's own module: a broken import fails
    name = module.split(".")[0]
    tls = {}
    for key in ("tls_ca", "tls_cert", "tls_key"):
        (tmp_path / key).write_text("pem")
        tls["ENOEXEC_" + key.upper()] = str(tmp_path / key)
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(["--config", str(DEPLOY / "config" / f"{name}.toml")])
    built = config.build(args, tls)
    assert built.log_level == "info"
    assert built.tls_ca == tmp_path / "tls_ca"
    if name == "agent":
        assert (built.collector, built.spool_max_events) == ("collector.example:7469", 10000)
    else:
        assert (built.grpc_listen, built.max_image_labels) == ("0.0.0.0:7469", 200)


# --- Docker -------------------------------------------------------------------

@pytest.mark.parametrize("role", ["agent", "collector"])
def test_dockerfiles(role: str) -> None:
    text = (DEPLOY / "docker" / f"Dockerfile.{role}").read_text()
    assert re.search(r"(?m)^FROM python:3\.12-slim$", text)
    # The agent image gets the agent alone; the collector's brings its libraries and PostgreSQL's driver.
    assert ('pip install ".[postgres]"' in text) == (role == "collector")
    assert ("pip install --prefer-binary . " in text) == (role == "agent")
    assert f'ENTRYPOINT ["enoexec-{role}"]' in text
    assert "--platform linux/amd64,linux/arm64,linux/arm/v7" in text
    if role == "collector":
        assert re.search(r"(?m)^USER enoexec-collector$", text)
        assert re.search(r"(?m)^EXPOSE 7469 9469$", text)


def _dashboard_target(title: str, legend: str | None = None) -> str:
    panel = next(p for p in dashboard()["panels"] if p["title"] == title)
    return next(t["expr"] for t in panel["targets"] if legend is None or t.get("legendFormat", "").startswith(legend))


def _promtool_eval(tmp_path: Path, exprs: dict[str, str], series: dict[str, str], checks: list[dict]) -> None:
    """Evaluate dashboard expressions as recording rules in ``promtool test rules``, on literal series."""
    promtool = need("promtool", "prometheus")
    rules = tmp_path / "panels.yml"
    rules.write_text(json.dumps({"groups": [{"name": "panels", "rules": [{"record": k, "expr": v} for k, v in exprs.items()]}]}))
    test = tmp_path / "panels.test.yml"
    test.write_text(json.dumps({
        "rule_files": [str(rules)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": k, "values": v} for k, v in series.items()],
                   "promql_expr_test": checks}],
    }))
    run(promtool, "test", "rules", test)


def test_the_dashboard_shows_a_first_refusal(tmp_path: Path) -> None:
    """The rejected series of a counter born at its first refusal (issue 16: rate() showed nothing)."""
    expr = _dashboard_target("Collector events received, duplicate, rejected", "rejected")
    expr = expr.replace("$__interval", "1m")
    _promtool_eval(
        tmp_path, {"panel:rejected": expr},
        {'enoexec_collector_events_rejected_total{instance="c1",reason="host_mismatch"}': "_x10 3x30"},
        [{"expr": "panel:rejected", "eval_time": "10m", "exp_samples": [{"labels": 'panel:rejected{reason="host_mismatch"}', "value": 3}]},
         {"expr": "panel:rejected", "eval_time": "11m", "exp_samples": [{"labels": 'panel:rejected{reason="host_mismatch"}', "value": 0}]}],
    )


def test_exits_per_host_follows_the_cause_filter(tmp_path: Path) -> None:
    expr = _dashboard_target("Exits per host").replace("$__range", "1h").replace("$host_platform", ".*")
    last = 'enoexec_last_exit_timestamp_seconds{{image="i",host_platform="linux/arm64",cause="{cause}",host="{host}",hint="h",hint_title="t",hostname=""}}'
    _promtool_eval(
        tmp_path,
        {"panel:all": expr.replace("$cause", ".*"), "panel:shebang": expr.replace("$cause", "missing_shebang")},
        {'enoexec_host_exits_total{host="a",host_platform="linux/arm64"}': "_x10 2x30",
         'enoexec_host_exits_total{host="b",host_platform="linux/arm64"}': "_x10 1x30",
         last.format(cause="arch_mismatch", host="a"): "_x10 590x30",
         last.format(cause="missing_shebang", host="b"): "_x10 590x30"},
        [{"expr": "panel:all", "eval_time": "20m", "exp_samples": [
            {"labels": 'panel:all{host="a",host_platform="linux/arm64"}', "value": 2},
            {"labels": 'panel:all{host="b",host_platform="linux/arm64"}', "value": 1}]},
         {"expr": "panel:shebang", "eval_time": "20m", "exp_samples": [
             {"labels": 'panel:shebang{host="b",host_platform="linux/arm64"}', "value": 1}]}],
    )
