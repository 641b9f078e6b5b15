"""The shipped rules and dashboard on a real Prometheus and Alertmanager.

Real Docker Engine, two collector replicas sharing one store (each exports its
own counters) with an agent each, Debian's Prometheus (1 s scrape and
evaluation, the shipped enoexec-rules.yml) and Alertmanager (cluster off, the
shipped alertmanager.yml: its group_wait, group_interval and inhibition)
posting to a webhook receiver in this test. A never-seen foreign image dies
once; its one alert reaches the webhook with host (hostname and id), cause and
hint: agent delivery (well under a second), one scrape (1 s), one evaluation
(1 s), Alertmanager's group_wait (10 s) and its dispatch. Every wait is a
polled condition with a generous timeout; the latency is printed, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import alerting, dashboard, images, procs
from tests.images import File
from tests.integration.conftest import Docker

HOSTS = ("alert-host-1", "alert-host-2")
ON_FAILURE_5 = {"Name": "on-failure", "MaximumRetryCount": 5}


@dataclass
class Stack:
    collector: procs.Proc
    collector_http: int
    replica_http: list[int]
    prom: alerting.Prometheus
    hook: alerting.Webhook
    first_image: str
    loop_image: str
    latency: float
    started: float  # wall clock, before the first exit
    dock: Docker
    hostname: str  # the name Docker gives this machine, which both agents report


def _alert_for(hook: alerting.Webhook, image: str, status: str = "firing") -> list[dict[str, Any]]:
    return [a for a in hook.alerts()
            if a["labels"].get("alertname") == "EnoexecExecFormatErrors" and a["labels"].get("image") == image
            and a["status"] == status]


def _events(port: int) -> list[dict[str, Any]]:
    return procs.get_json(f"http://127.0.0.1:{port}/api/v1/events?limit=1000")["events"]


@pytest.fixture(scope="module")
def stack(api: Any, engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two collector replicas on one store, each with an agent (both agents watch the same
    Docker Engine under their own host ids, so every exit is two events, one per replica)."""
    work = tmp_path_factory.mktemp("alerting")
    dock = Docker(api)
    db = str(work / "collector.db")
    ports = [(procs.free_port(), procs.free_port()) for _ in HOSTS]
    cols = [procs.Proc(procs.collector_argv(db, g, h, "--replica-id", f"replica-{i}"), work / f"collector-{i}.log")
            for i, (g, h) in enumerate(ports)]
    agents = [procs.Proc(procs.agent_argv(f"127.0.0.1:{g}", engine.url, work / f"state-{host}", host), work / f"agent-{host}.log")
              for host, (g, _) in zip(HOSTS, ports, strict=True)]
    http_port = ports[0][1]
    try:
        for col, (_, h) in zip(cols, ports, strict=True):
            col.start()
            procs.wait_for(lambda col=col, h=h: procs.answering(f"http://127.0.0.1:{h}/healthz") or not col.alive(), what="collector /healthz")
        for ag in agents:
            ag.start()
            procs.wait_for(lambda ag=ag: "docker event stream connected" in ag.output() or not ag.alive(), what="agent connected to docker")
        assert all(p.alive() for p in cols + agents), "".join(p.output()[-2000:] for p in cols + agents)
        first = dock.load("alert-arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
        loop = dock.load("alert-loop", [File("/app", images.elf(images.EM_RISCV))], architecture="riscv64", entrypoint=["/app"])
        with alerting.webhook() as hook, alerting.alertmanager(work, hook.port) as am, \
                alerting.prometheus(work, [h for _, h in ports], am) as prom:
            procs.wait_for(lambda: len(prom.query('up{job="enoexec"} == 1')) == len(cols), timeout=30, what="both replicas scraped")
            started = time.time()
            dock.run(first)
            exited = time.monotonic()
            procs.wait_for(lambda: _alert_for(hook, first), timeout=60, what=f"alert for {first} at the webhook")
            latency = time.monotonic() - exited
            # A crash loop of another never-seen image: 6 runs, the restarts a few 100 ms apart.
            dock.run(loop, wait=False, host_config={"restart_policy": ON_FAILURE_5})
            procs.wait_for(lambda: not api.inspect_container(dock.containers[-1])["State"]["Restarting"]
                           and not api.inspect_container(dock.containers[-1])["State"]["Running"], timeout=60, what="crash loop over")
            runs = api.inspect_container(dock.containers[-1])["RestartCount"] + 1
            # every run seen by both agents; then nothing more is on its way
            procs.wait_for(lambda: len(_events(http_port)) == (1 + runs) * len(HOSTS), timeout=30,
                           what=f"{(1 + runs) * len(HOSTS)} exits at the collector")
            yield Stack(cols[0], http_port, [h for _, h in ports], prom, hook, first, loop, latency, started, dock,
                        api.info()["Name"])
    finally:
        for p in agents + cols:
            p.stop()
        dock.cleanup()


def test_first_exit_of_a_never_seen_image_reaches_the_webhook(stack: Stack) -> None:
    # reached within the fixture's polled timeout; the figure is printed, not asserted (a shared machine's clock)
    print(f"alert at the webhook {stack.latency:.1f}s after the container exited")
    alert = _alert_for(stack.hook, stack.first_image)[0]
    assert alert["labels"]["host_platform"] == "linux/amd64"
    assert alert["labels"]["severity"] == "warning"
    ann = alert["annotations"]
    hints = procs.get_json(f"http://127.0.0.1:{stack.collector_http}/api/v1/hints")["hints"]
    hint = next(h for h in hints if h["image"] == stack.first_image)
    named = [f"{stack.hostname} ({host})" for host in HOSTS]  # the hostname the agent knows, beside its id
    assert ann["hosts"] in (named[0], named[1], ", ".join(named))  # as of the first notification
    assert ann["cause"] == "arch_mismatch" == hint["cause"]
    assert ann["hint"] == f"{hint['title']} [{hint['hint']}]" and hint["title"]
    assert ann["command"] in {f"enoexec-collector hints --url http://127.0.0.1:{port}" for port in stack.replica_http}
    assert ann["runbook_url"].endswith("README.md#alert-enoexecexecformaterrors")
    # one alert for both hosts and both replicas, whose annotations name both hosts
    active = procs.get_json(f"http://127.0.0.1:{stack.prom.port}/api/v1/alerts")["data"]["alerts"]
    mine = [a for a in active if a["labels"].get("image") == stack.first_image and a["labels"]["alertname"] == "EnoexecExecFormatErrors"]
    assert len(mine) == 1 and mine[0]["state"] == "firing", mine
    assert mine[0]["annotations"]["hosts"] == ", ".join(named)


def test_a_crash_loop_of_a_never_seen_image_is_one_critical_alert(stack: Stack) -> None:
    procs.wait_for(lambda: any(a["labels"]["severity"] == "critical" for a in _alert_for(stack.hook, stack.loop_image)),
                   timeout=60, what="critical alert for the crash loop")
    firing = stack.prom.query(f'ALERTS{{alertname="EnoexecExecFormatErrors",alertstate="firing",image="{stack.loop_image}"}}')
    assert [s["metric"]["severity"] for s in firing] == ["critical"]


def test_every_dashboard_panel_evaluates_and_counts_match_the_collector(stack: Stack) -> None:
    def settled() -> list[dict[str, Any]] | None:
        """The collector's events once Prometheus has scraped all of them."""
        events = _events(stack.collector_http)
        return events if dashboard.total(stack.prom, "Exits in range") == len(events) else None

    events = procs.wait_for(settled, timeout=20, what="Prometheus to have every exit the API reports")
    dashboard.check_all_panels(stack.prom, dashboard.expected_counts(events), start=stack.started, end=time.time(),
                               replicas=len(HOSTS))
    assert len(_events(stack.collector_http)) == len(events), "an exit arrived while the panels were checked"


def test_the_alert_stays_firing_across_a_collector_restart(stack: Stack) -> None:
    """The last-exit gauge comes back from the store with the same value: no resolve, no new page."""
    def firing() -> list[dict[str, Any]]:
        return stack.prom.query(f'ALERTS{{alertname="EnoexecExecFormatErrors",alertstate="firing",image="{stack.first_image}"}}')

    assert firing()
    notified = len(stack.hook.notifications)
    stack.collector.stop()
    procs.wait_for(lambda: stack.prom.query('up{job="enoexec"} == 0'), timeout=20, what="Prometheus to see the collector down")
    stack.collector.start()
    procs.wait_for(lambda: len(stack.prom.query('up{job="enoexec"} == 1')) == len(HOSTS), timeout=30,
                   what="the restarted collector scraped")
    # a few evaluations with the restarted collector's series
    procs.wait_for(lambda: stack.prom.query(
        f'count_over_time(enoexec_last_exit_timestamp_seconds{{image="{stack.first_image}"}}[3s]) >= 3'), timeout=20,
        what="three scrapes of the restarted collector")
    assert firing()
    assert not _alert_for(stack.hook, stack.first_image, status="resolved")
    new = stack.hook.notifications[notified:]
    assert not [a for n in new for a in n["alerts"] if a["labels"].get("image") == stack.first_image], new


def test_images_the_hosts_cannot_run_are_a_latent_alert_of_their_own(stack: Stack) -> None:
    """The agents judged both images when they were loaded, before they ran: EnoexecUnrunnableImages, warning."""
    def latent() -> list[dict[str, Any]]:
        return stack.prom.query('ALERTS{alertname="EnoexecUnrunnableImages",alertstate="firing"}')

    procs.wait_for(lambda: {stack.first_image, stack.loop_image} <= {s["metric"]["image"] for s in latent()},
                   timeout=60, what="EnoexecUnrunnableImages for both images")
    firing = {s["metric"]["image"]: s["metric"] for s in latent()}
    assert firing[stack.first_image]["severity"] == "warning" and firing[stack.first_image]["cause"] == "arch_mismatch"
    assert firing[stack.first_image]["host_platform"] == "linux/amd64"
    assert any(a["labels"].get("alertname") == "EnoexecUnrunnableImages" for a in stack.hook.alerts())
def test_an_image_that_paged_then_crash_loops_escalates_promptly_as_one_alert(stack: Stack) -> None:
    """Issue 16: the first image paged as a warning; now it crash-loops. The escalation reaches the
    receiver within the image route's group_interval (30 s, not the default 5 min), in the same group,
    and reads as one alert: critical firing, the superseded warning's resolution muted by inhibition."""
    # (the same image's latent alert, EnoexecUnrunnableImages, is an incident of its own)
    def exit_alert(a: dict[str, Any]) -> bool:
        return a["labels"].get("alertname") == "EnoexecExecFormatErrors" and a["labels"].get("image") == stack.first_image

    group = {n["groupKey"] for n in stack.hook.notifications if any(exit_alert(a) for a in n["alerts"])}
    assert len(group) == 1, group
    seen = len(stack.hook.notifications)
    started = time.monotonic()
    stack.dock.run(stack.first_image, wait=False, host_config={"restart_policy": ON_FAILURE_5})

    def escalation() -> dict[str, Any] | None:
        for n in stack.hook.notifications[seen:]:
            if any(exit_alert(a) and a["labels"]["severity"] == "critical" for a in n["alerts"]):
                return n
        return None

    # generous for a loaded machine, and still under the 5 minutes an escalation used to wait
    n = procs.wait_for(escalation, timeout=120, what=f"the escalation of {stack.first_image} at the webhook")
    print(f"escalation at the webhook {time.monotonic() - started:.1f}s after the crash loop started")
    assert n["groupKey"] in group, "the escalation opened another group (another incident at the receiver)"
    mine = [(a["labels"]["severity"], a["status"]) for a in n["alerts"] if exit_alert(a)]
    assert mine == [("critical", "firing")], n["alerts"]
    # nothing told the receiver that the warning resolved while the critical alert fires
    resolved = [a for a in _alert_for(stack.hook, stack.first_image, status="resolved") if a["labels"]["severity"] == "warning"]
    assert not resolved, resolved
    firing = stack.prom.query(f'ALERTS{{alertname="EnoexecExecFormatErrors",alertstate="firing",image="{stack.first_image}"}}')
    assert [s["metric"]["severity"] for s in firing] == ["critical"]
