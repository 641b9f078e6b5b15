"""Look-alikes of exec format error against the real Docker Engine (issue 17), and
the two exec-format-error mistakes of issue 16 (a FIFO found through PATH, a
truncated native ELF).

Every image is built from scratch, really run (runc and the kernel decide how it
dies), then diagnosed in-process by ``Diagnoser``. Host facts are this host's,
or a fixture host's (tests/fixtures/hosts) where the question is about a CPU this
machine is not: the container still really died here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.wire import event_pb
from agent.diagnosis import runtime_message
from agent.diagnosis.diagnose import Diagnoser, Exit
from agent.engine.connect import gather_facts
from agent.host import hostfacts
from agent.model import Event, HostFacts
from enoexec import causes
from enoexec.hints import hint_of
from tests import elfs, images, procs
from tests.dockerd import CountingClient
from tests.images import File
from tests.unit.test_hostfacts import fixture

MUSL = "/lib/ld-musl-x86_64.so.1"
GLIBC = "/lib64/ld-linux-x86-64.so.2"


@pytest.fixture(scope="module")
def host(api: Any) -> HostFacts:
    return gather_facts(api, "test-host")


def diagnoser_for(api: Any, host: HostFacts) -> Diagnoser:
    return Diagnoser(api, lambda: host, lookup_registry=False)


def died(dock: Any, tag: str, **kw: Any) -> tuple[str, dict[str, Any], str]:
    cid = dock.run(tag, **kw)
    attrs = dock.api.inspect_container(cid)
    assert not attrs["State"]["Running"]
    if attrs["HostConfig"]["LogConfig"]["Type"] == "none":
        return cid, attrs, ""
    return cid, attrs, dock.api.logs(cid).decode(errors="replace")


def judged(api: Any, host: HostFacts, tag: str, cid: str, attrs: dict[str, Any]) -> Event | None:
    return diagnoser_for(api, host).diagnose(Exit(cid, attrs["State"]["ExitCode"], tag)).event


def hint_id(ev: Event) -> str:
    return hint_of(event_pb(ev)).id


# --- the runtime's "no such file or directory" about a file that exists -------


@pytest.mark.parametrize(("loader", "other", "wants", "has"), [(MUSL, GLIBC, "musl", "glibc"), (GLIBC, MUSL, "glibc", "musl")])
def test_missing_loader_names_both_libc_families(dock, api, host, loader, other, wants, has) -> None:
    tag = dock.load(f"loader-{wants}", [File("/app", elfs.program(0, interp=loader)), File(other, elfs.program(0))],
                    architecture="amd64", entrypoint=["/app"])
    cid, attrs, logs = died(dock, tag)
    assert runtime_message.last_line(logs) == "exec /app: no such file or directory", logs
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None, logs
    assert (ev.cause, ev.failure, ev.evidence) == (causes.MISSING_LOADER, causes.START_FAILURE, "runtime_message")
    assert (ev.binary.missing, ev.binary.libc, ev.binary.image_libc) == (loader, wants, has)
    assert loader in ev.explanation and has in ev.explanation
    hint = hint_of(event_pb(ev))
    assert hint.id == "add_loader"
    assert any("gcompat" in c for c in hint.commands) == (wants == "glibc")


def test_crlf_shebang(dock, api, host) -> None:
    tag = dock.load("crlf", [File("/entrypoint.sh", b"#!/bin/sh\r\necho hi\r\n"), File("/bin/sh", elfs.program(0))],
                    architecture="amd64", entrypoint=["/entrypoint.sh"])
    cid, attrs, logs = died(dock, tag)
    assert runtime_message.last_line(logs) == "exec /entrypoint.sh: no such file or directory", logs
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None, logs
    assert (ev.cause, ev.failure, ev.binary.missing) == (causes.CRLF_SHEBANG, causes.START_FAILURE, "/bin/sh\r")
    hint = hint_of(event_pb(ev))
    assert hint.id == "strip_crlf" and any("eol=lf" in c for c in hint.commands)


def test_missing_script_interpreter(dock, api, host) -> None:
    tag = dock.load("nopython", [File("/run.py", b"#!/usr/bin/python3\nprint(1)\n")], architecture="amd64",
                    entrypoint=["/run.py"])
    cid, attrs, logs = died(dock, tag)
    assert runtime_message.last_line(logs) == "exec /run.py: no such file or directory", logs
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None, logs
    assert (ev.cause, ev.binary.missing) == (causes.MISSING_INTERPRETER, "/usr/bin/python3")
    assert hint_id(ev) == "add_interpreter"


def test_missing_interpreter_without_logs_is_judged_by_the_file(dock, api, host) -> None:
    tag = dock.load("nopython-nolog", [File("/run.py", b"#!/usr/bin/python3\nprint(1)\n")], architecture="amd64",
                    entrypoint=["/run.py"])
    cid, attrs, _ = died(dock, tag, host_config={"log_config": {"Type": "none", "Config": {}}})
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None
    assert (ev.cause, ev.evidence) == (causes.MISSING_INTERPRETER, "file_only")


# --- corrupt files -------------------------------------------------------------


def test_truncated_native_elf_is_reported_not_dropped(dock, api, host) -> None:
    """Issue 16 item 2: the runtime said ENOEXEC; the header names this host's platform."""
    tag = dock.load("trunc", [File("/app", elfs.program(0)[:64])], architecture="amd64", entrypoint=["/app"])
    cid, attrs, logs = died(dock, tag)
    assert runtime_message.last_line(logs) == "exec /app: exec format error", logs
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None, logs
    assert (ev.cause, ev.failure, ev.binary.size) == (causes.CORRUPT_FILE, causes.EXEC_FORMAT_ERROR, 64)
    assert "program headers end at byte 120" in ev.binary.damage
    hint = hint_of(event_pb(ev))
    assert hint.id == "repull_image" and any("docker rmi" in c for c in hint.commands)


def test_zero_filled_entrypoint_is_corrupt_not_data(dock, api, host) -> None:
    tag = dock.load("zeros", [File("/app", b"\0" * 8192)], architecture="amd64", entrypoint=["/app"])
    cid, attrs, logs = died(dock, tag)
    assert runtime_message.last_line(logs) == "exec /app: exec format error", logs
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None, logs
    assert (ev.cause, ev.binary.kind, ev.binary.size) == (causes.CORRUPT_FILE, "zeros", 8192)
    assert hint_id(ev) == "repull_image"


def test_segments_past_the_end_crash_and_are_corrupt(dock, api, host) -> None:
    data = elfs.program(0, b"hello, this is more text\n")
    # Cut inside the code: the kernel maps the rest of the page as zeros, which crash.
    tag = dock.load("cut", [File("/app", data[:125])], architecture="amd64", entrypoint=["/app"])
    cid, attrs, logs = died(dock, tag)
    assert attrs["State"]["ExitCode"] in (135, 139), (attrs["State"], logs)
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None
    assert (ev.cause, ev.failure, ev.evidence) == (causes.CORRUPT_FILE, causes.START_FAILURE, "exit_signal")


# --- CPU level: a real death here, judged against a host without AVX2 ----------


def test_loader_words_and_a_v3_note_on_a_v2_host_are_cpu_level(dock, api, host) -> None:
    old_xeon = hostfacts.gather(**fixture("x86-no-avx2"))
    assert old_xeon.cpu_level == "x86-64-v2"
    msg = b"Fatal glibc error: CPU does not support x86-64-v3\n"
    tag = dock.load("isa3", [File("/app", elfs.program(127, msg, isa_level=3))], architecture="amd64", entrypoint=["/app"])
    cid, attrs, logs = died(dock, tag)
    assert attrs["State"]["ExitCode"] == 127
    ev = judged(api, old_xeon, tag, cid, attrs)
    assert ev is not None, logs
    assert (ev.cause, ev.failure, ev.evidence, ev.binary.isa_level) == (
        causes.CPU_LEVEL, causes.START_FAILURE, "loader_message", 3)
    assert "x86-64-v3" in ev.explanation and "x86-64-v2" in ev.explanation
    assert hint_id(ev) == "match_cpu_level"
    # This host runs x86-64-v3 (or says nothing of its level): the same exit is the program's own business.
    assert judged(api, host, tag, cid, attrs) is None


def test_sigill_of_a_v3_binary_on_a_v2_host_is_cpu_level(dock, api) -> None:
    old_xeon = hostfacts.gather(**fixture("x86-no-avx2"))
    tag = dock.load("isa3ill", [File("/app", elfs.program(sigill=True, isa_level=3))], architecture="amd64",
                    entrypoint=["/app"])
    cid, attrs, _ = died(dock, tag)
    assert attrs["State"]["ExitCode"] == 132
    ev = judged(api, old_xeon, tag, cid, attrs)
    assert ev is not None and (ev.cause, ev.evidence) == (causes.CPU_LEVEL, "exit_signal")


# --- controls -------------------------------------------------------------------


def test_native_sigill_for_its_own_reasons_is_not_cpu_level(dock, api, host) -> None:
    old_xeon = hostfacts.gather(**fixture("x86-no-avx2"))
    tag = dock.load("ill", [File("/app", elfs.program(sigill=True, message=b"illegal\n"))], architecture="amd64",
                    entrypoint=["/app"])
    cid, attrs, _ = died(dock, tag)
    assert attrs["State"]["ExitCode"] == 132
    assert judged(api, host, tag, cid, attrs) is None
    assert judged(api, old_xeon, tag, cid, attrs) is None  # unmarked: no evidence of a level


@pytest.mark.parametrize("words", [
    b"Fatal glibc error: CPU does not support x86-64-v3\n",
    b"exec /app: no such file or directory\n",
    b"<jemalloc>: Unsupported system page size\n",
])
def test_native_program_printing_the_words_stays_silent(dock, api, host, words) -> None:
    for code in (127, 1):
        tag = dock.load(f"words{code}", [File("/app", elfs.program(code, words))], architecture="amd64", entrypoint=["/app"])
        cid, attrs, logs = died(dock, tag)
        assert attrs["State"]["ExitCode"] == code and words.decode().strip() in logs
        assert judged(api, host, tag, cid, attrs) is None
        assert judged(api, hostfacts.gather(**fixture("x86-no-avx2")), tag, cid, attrs) is None


# --- issue 16 item 1: a FIFO that runc's PATH lookup takes -------------------------


@pytest.mark.parametrize("log_driver", ["json-file", "none"])
def test_fifo_first_in_path_is_not_an_exec_format_error(dock, api, host, log_driver) -> None:
    tag = dock.load("fifo", [File("/usr/local/sbin/app", fifo=True, mode=0o755),
                             File("/usr/bin/app", images.elf(images.EM_AARCH64))],
                    architecture="amd64", entrypoint=["app"])
    cid, attrs, logs = died(dock, tag, host_config={"log_config": {"Type": log_driver, "Config": {}}})
    assert attrs["State"]["ExitCode"] == 1
    if log_driver == "json-file":
        assert runtime_message.last_line(logs) == "exec /usr/local/sbin/app: permission denied", logs
    assert judged(api, host, tag, cid, attrs) is None


# --- the hot path: a native program's own exit costs no more than before ------------


@pytest.mark.parametrize(("code", "sigill"), [(3, False), (2, False), (0, True)])
def test_a_native_exit_outside_the_family_costs_one_inspect_and_no_file_read(dock, api, host, code, sigill) -> None:
    program = elfs.program(code, b"my own failure\n", sigill=sigill)
    tag = dock.load(f"own{code}{int(sigill)}", [File("/app", program)], architecture="amd64", entrypoint=["/app"])
    cid, attrs, _ = died(dock, tag)
    counting = CountingClient(api)
    d = diagnoser_for(counting, host)
    assert d.diagnose(Exit(cid, attrs["State"]["ExitCode"], tag)).event is None
    assert counting.inspects == 1
    # A SIGILL in the first seconds is of the family: the file is read (once per image), and clears it.
    assert d.archive_reads == (1 if sigill else 0)


# --- running under emulation: a warning, never an exit -----------------------------------


def test_a_foreign_entrypoint_this_host_emulates_is_a_warning(dock, api, host) -> None:
    """This machine must not register QEMU for its Docker Engine, so the container is
    created, not run; the host facts are a fixture x86 host with qemu-aarch64 (flag F)."""
    qemu_host = hostfacts.gather(**fixture("x86-qemu-aarch64"))
    arm64 = dock.load("emu", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    native = dock.load("emu-native", [File("/app", elfs.program(0))], architecture="amd64", entrypoint=["/app"])
    foreign = api.create_container(arm64)["Id"]
    mine = api.create_container(native)["Id"]
    dock.containers += [foreign, mine]
    when = datetime.now(UTC)
    ev = diagnoser_for(api, qemu_host).emulated(foreign, when)
    assert ev is not None
    assert (ev.failure, ev.cause, ev.binary.platform) == (causes.EMULATED_WARNING, causes.EMULATED, "linux/arm64")
    assert "qemu-aarch64" in ev.explanation
    assert hint_id(ev) == "run_native"
    assert diagnoser_for(api, qemu_host).emulated(foreign, when).event_id == ev.event_id  # once per container
    assert diagnoser_for(api, qemu_host).emulated(mine, when) is None
    # A host that emulates nothing asks the engine nothing.
    counting = CountingClient(api)
    assert not host.emulated_platforms
    assert diagnoser_for(counting, host).emulated(foreign, when) is None and counting.inspects == 0


# --- real glibc programs: this machine's own env(1) ---------------------------------------


def glibc_files(*, loader: bool = True) -> list[File]:
    """This machine's /usr/bin/env with its libc (and, unless told, its loader)."""
    files = [File("/usr/bin/env", Path("/usr/bin/env").read_bytes()),
             File("/lib/x86_64-linux-gnu/libc.so.6", Path("/lib/x86_64-linux-gnu/libc.so.6").read_bytes())]
    if loader:
        files += [File("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                       Path("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").read_bytes()),
                  File("/lib64/ld-linux-x86-64.so.2", link="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")]
    return files


def test_crlf_after_env_is_crlf_shebang(dock, api, host) -> None:
    tag = dock.load("crlf-env", [File("/run.py", b"#!/usr/bin/env python3\r\nprint(1)\r\n"), *glibc_files()],
                    architecture="amd64", entrypoint=["/run.py"])
    for log_driver in ("json-file", "none"):
        cid, attrs, logs = died(dock, tag, host_config={"log_config": {"Type": log_driver, "Config": {}}})
        assert attrs["State"]["ExitCode"] == 127, logs
        if logs:
            assert "'python3\\r'" in logs  # env's own complaint (it prints the CR escaped), not the runtime's
        ev = judged(api, host, tag, cid, attrs)
        assert ev is not None, logs
        assert (ev.cause, ev.failure, ev.evidence, ev.binary.missing) == (
            causes.CRLF_SHEBANG, causes.START_FAILURE, "file_only", "python3\r")


def test_real_glibc_program_without_its_loader(dock, api, host) -> None:
    tag = dock.load("env-noloader", glibc_files(loader=False), architecture="amd64", entrypoint=["/usr/bin/env"])
    cid, attrs, logs = died(dock, tag)
    assert runtime_message.last_line(logs) == "exec /usr/bin/env: no such file or directory", logs
    ev = judged(api, host, tag, cid, attrs)
    assert ev is not None
    assert (ev.cause, ev.binary.missing, ev.binary.libc, ev.binary.image_libc) == (
        causes.MISSING_LOADER, "/lib64/ld-linux-x86-64.so.2", "glibc", "")
    assert "no libc loader" in ev.explanation


def test_real_glibc_program_runs_fine_and_fails_for_its_own_reasons(dock, api, host) -> None:
    tag = dock.load("env-ok", glibc_files(), architecture="amd64", entrypoint=["/usr/bin/env", "no-such-program"])
    cid, attrs, logs = died(dock, tag)
    assert attrs["State"]["ExitCode"] == 127 and "no-such-program" in logs
    assert judged(api, host, tag, cid, attrs) is None


# --- enoexec-agent diagnose: the same shape, saying what was read ------------------------


def test_diagnose_cli_explains_a_look_alike(dock, engine) -> None:
    tag = dock.load("cli-crlf", [File("/entrypoint.sh", b"#!/bin/sh\r\necho hi\r\n"), File("/bin/sh", elfs.program(0))],
                    architecture="amd64", entrypoint=["/entrypoint.sh"])
    cid = dock.run(tag)
    argv = [sys.executable, "-m", "agent.cli", "diagnose", cid, "--docker-host", engine.url, "--no-registry"]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "failure    start failure" in text.stdout
    assert "cause      crlf_shebang" in text.stdout
    assert "needs '/bin/sh\\r', absent from the image" in text.stdout  # what was read, CR escaped
    assert "[strip_crlf]" in text.stdout
    doc = json.loads(subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=120).stdout)
    assert (doc["failure"], doc["cause"], doc["evidence"], doc["binary"]["missing"]) == (
        "start_failure", "crlf_shebang", "runtime_message", "/bin/sh\r")
    assert doc["host"]["cpu_level"].startswith("x86-64-v")


# --- through the real agent and collector ------------------------------------------------------


def test_start_failures_are_counted_beside_exec_format_errors(dock, collector, agent) -> None:
    """The real agent and collector: a missing loader and a foreign binary each die once;
    enoexec_exits_total counts only the exec format error, enoexec_start_failures_total
    only the look-alike, each with its own last-failure gauge."""
    loader = dock.load("e2e-loader", [File("/app", elfs.program(0, interp=MUSL))], architecture="amd64",
                       entrypoint=["/app"])
    foreign = dock.load("e2e-arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64",
                        entrypoint=["/app"])
    col = collector()
    ag = agent(col.grpc)
    dock.run(loader)
    dock.run(foreign)

    def counted() -> str | None:
        text = procs.metrics(col.http)
        both = procs.total(text, "enoexec_exits_total") + procs.total(text, "enoexec_start_failures_total")
        return text if both >= 2 else None

    procs.wait_for(counted, timeout=60, what="both exits counted")
    procs.wait_reconciled(ag)
    text = procs.metrics(col.http)
    assert procs.total(text, "enoexec_exits_total") == 1
    assert procs.total(text, "enoexec_exits_total", cause="arch_mismatch", image=foreign) == 1
    assert procs.total(text, "enoexec_start_failures_total") == 1
    assert procs.total(text, "enoexec_start_failures_total", cause="missing_loader", image=loader) == 1
    assert procs.total(text, "enoexec_host_exits_total") == 1  # exec format errors only, as before
    assert [labels["cause"] for labels, _ in procs.samples(text, "enoexec_last_exit_timestamp_seconds")] == ["arch_mismatch"]
    starts = procs.samples(text, "enoexec_last_start_failure_timestamp_seconds")
    assert [(labels["cause"], labels["hint"]) for labels, _ in starts] == [("missing_loader", "add_loader")]
    events = procs.get_json(f"http://127.0.0.1:{col.http}/api/v1/events?cause=missing_loader")["events"]
    assert [(e["failure"], e["binary"]["missing"], e["hint"]["id"]) for e in events] == [
        ("start_failure", MUSL, "add_loader")]
