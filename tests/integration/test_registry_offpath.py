"""The registry lookup stays off the detection path.

An exit of an image whose registry never answers (a TCP listener that accepts
and stays silent, like a firewalled registry on an air-gapped host) is
diagnosed, spooled and queryable at the collector long before the lookup's
5-second timeout; the lookup's failure is remembered per registry, so a second
image of the same registry is not asked about again.
"""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Iterator
from typing import Any

from agent.diagnosis.diagnose import Diagnoser, Exit
from agent.engine.connect import gather_facts
from agent.engine.images import DAEMON_WAIT, ImageInspector
from tests import images, procs
from tests.images import File
from tests.integration.test_image_platforms import CountingApi
from tests.registry import local_registry, push_multiplatform_index


@contextlib.contextmanager
def silent_registry() -> Iterator[str]:
    """A TCP port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def load_arm64(dock: Any, ref: str) -> str:
    data = images.archive(ref, [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    for _ in dock.api.load_image(io.BytesIO(data)):
        pass
    dock.images.append(ref)
    return ref


def diagnose(diagnoser: Diagnoser, dock: Any, cid: str) -> Any:
    attrs = dock.api.inspect_container(cid)
    outcome = diagnoser.diagnose(Exit(attrs["Id"], attrs["State"]["ExitCode"], attrs["Config"]["Image"]))
    assert outcome.event is not None and outcome.event.cause == "arch_mismatch"
    return outcome.event


def test_daemon_diagnosis_does_not_wait_for_a_silent_registry_and_asks_it_once(dock, api) -> None:
    host = gather_facts(api, "test-host")
    with silent_registry() as address:
        first = load_arm64(dock, f"{address}/enoexec/app:1")
        second = load_arm64(dock, f"{address}/enoexec/api:2")
        counting = CountingApi(api)
        # The registry never answers: its lookup ends only at this timeout, long after a diagnosis that does not wait.
        inspector = ImageInspector(counting, wait=DAEMON_WAIT, distribution_timeout=10.0)
        diagnoser = Diagnoser(counting, lambda: host, images=inspector, lookup_registry=True)

        ev = diagnose(diagnoser, dock, dock.run(first))
        assert inspector.pending == 1, "the diagnosis waited for the lookup to end"  # no clock: the order proves it
        assert ev.image.available_platforms is None  # unknown for now
        # The lookup ends (times out) in the background; the registry is then remembered as down.
        procs.wait_for(lambda: inspector.lookups == 1 and not inspector.pending, timeout=30, what="lookup timed out")
        ev2 = diagnose(diagnoser, dock, dock.run(second))
        assert ev2.image.available_platforms is None
        # A (wrong) second lookup would be pending now, and counted once it ended: wait until none is.
        procs.wait_for(lambda: not inspector.pending, timeout=30, what="no lookup under way")
        assert len(counting.distribution_gets) == 1, counting.distribution_gets  # once per registry, not per image


def test_a_quick_registry_answer_is_attached_to_later_exits(dock, api) -> None:
    host = gather_facts(api, "test-host")
    with local_registry() as address:
        ref = f"{address}/enoexec/app:1"
        push_multiplatform_index(address, "enoexec/app", "1", ["linux/amd64", "linux/arm64"])
        load_arm64(dock, ref)
        inspector = ImageInspector(api, wait=0.0)  # never wait: the answer comes with a later exit
        diagnoser = Diagnoser(api, lambda: host, images=inspector, lookup_registry=True)

        diagnose(diagnoser, dock, dock.run(ref))
        procs.wait_for(lambda: inspector.available_platforms(ref, wait=0.0) is not None, timeout=15, what="lookup answered")
        ev = diagnose(diagnoser, dock, dock.run(ref))

        assert ev.image.available_platforms == ("linux/amd64", "linux/arm64")
        assert inspector.lookups == 1


def test_exit_is_queryable_at_the_collector_quickly_while_the_registry_blackholes(dock, collector, agent) -> None:
    with silent_registry() as address:
        ref = load_arm64(dock, f"{address}/enoexec/blackholed:1")
        col = collector()
        ag = agent(col.grpc, "offpath-host", None, "--lookup-registry")
        url = f"http://127.0.0.1:{col.http}/api/v1/events?host=offpath-host"

        cid = dock.run(ref)
        events = procs.wait_for(lambda: procs.get_json(url)["events"], timeout=30, interval=0.02, what="event at the collector")
        gave_up_before = "registry unreachable" in ag.output()

        assert events[0]["container"]["id"] == cid
        assert events[0]["image"]["available_platforms_known"] is False
        # The exit did not wait for the lookup: it was at the collector before the lookup gave up (its
        # timeout is 5 s; benchmarks/detection_latency_bench.py measures the latency, typically ~0.1 s).
        assert not gave_up_before, ag.output()[-3000:]
        procs.wait_for(lambda: "registry unreachable" in ag.output(), timeout=30, what="lookup gave up in the background")


def test_refused_registry_is_asked_once_but_a_missing_image_only_rules_out_itself(api) -> None:
    counting = CountingApi(api)
    inspector = ImageInspector(counting)  # waits for answers, like `enoexec-agent diagnose`
    with socket.socket() as sock:  # bound, not listening: the daemon answers 500 "connection refused"
        sock.bind(("127.0.0.1", 0))
        refused = f"127.0.0.1:{sock.getsockname()[1]}"
        assert inspector.available_platforms(f"{refused}/acme/a:1") is None
        assert inspector.available_platforms(f"{refused}/acme/b:1") is None
    assert len(counting.distribution_gets) == 1  # the registry host is down: not asked per image

    with local_registry() as address:
        push_multiplatform_index(address, "acme/present", "1", ["linux/amd64"])
        assert inspector.available_platforms(f"{address}/acme/absent:1") is None  # 404 from the registry
        assert inspector.available_platforms(f"{address}/acme/present:1") == ("linux/amd64",)
    assert len(counting.distribution_gets) == 3
