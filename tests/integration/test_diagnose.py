"""Diagnosis against the real Docker Engine, one cause at a time.

Every image is built from scratch (``tests.images``), really run by the engine
(so the kernel and runc decide what fails), and then diagnosed by
``agent.diagnosis.diagnose.Diagnoser`` in-process, or by ``enoexec-agent diagnose`` as a
subprocess. Controls prove that failures which are not exec format errors stay
unreported.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import docker.errors
import pytest

from agent import render
from agent.diagnosis import runtime_message
from agent.diagnosis.diagnose import HELPER_LABEL, Diagnoser, Exit, Outcome, inspect_binary
from agent.engine.connect import gather_facts
from agent.engine.container_fs import ContainerFiles
from agent.model import Event, HostFacts
from enoexec.judge import classify
from tests import dockerd, images, procs
from tests.images import File

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNTIME_LINE = "exec /app: exec format error"


def native_exit(code: int, message: bytes = b"") -> bytes:
    """A tiny static x86-64 program: write(2, message) if any, then exit(code). No libc."""
    body = b""
    if message:
        tail = 19  # bytes between the end of the lea and the message
        body += bytes.fromhex("b801000000")  # mov eax, 1 (write)
        body += bytes.fromhex("bf02000000")  # mov edi, 2 (stderr)
        body += bytes.fromhex("488d35") + struct.pack("<i", tail)  # lea rsi, [rip + tail]
        body += b"\xba" + struct.pack("<I", len(message))  # mov edx, len
        body += bytes.fromhex("0f05")  # syscall
    body += b"\xb8" + struct.pack("<I", 60)  # mov eax, 60 (exit)
    body += b"\xbf" + struct.pack("<I", code)  # mov edi, code
    body += bytes.fromhex("0f05")  # syscall
    code_bytes = body + message
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    entry = 0x400000 + 64 + 56
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, images.EM_X86_64, 1, entry, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    size = 64 + 56 + len(code_bytes)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    return hdr + ph + code_bytes


# --- fixtures and helpers ---------------------------------------------------


@pytest.fixture(scope="module")
def host(api: Any) -> HostFacts:
    facts = gather_facts(api, "test-host")
    assert facts.platform, facts
    return facts


@pytest.fixture
def diagnoser(api: Any, host: HostFacts) -> Diagnoser:
    return Diagnoser(api, lambda: host, lookup_registry=False)


def run(dock: Any, tag: str, **kw: Any) -> str:
    """Run a container to its end; a start the engine refuses (missing entrypoint) still leaves one."""
    try:
        return dock.run(tag, **kw)
    except docker.errors.APIError:
        cid = dock.containers[-1]
        procs.wait_for(lambda: not dock.api.inspect_container(cid)["State"]["Running"], timeout=30, what="container stopped")
        return cid


def diagnose(dock: Any, diagnoser: Diagnoser, tag: str) -> tuple[dict[str, Any], Outcome]:
    cid = run(dock, tag)
    attrs = dock.api.inspect_container(cid)
    assert not attrs["State"]["Running"]
    return attrs, diagnoser.diagnose(Exit(cid, attrs["State"]["ExitCode"], tag))


def event_of(dock: Any, diagnoser: Diagnoser, tag: str) -> Event:
    attrs, outcome = diagnose(dock, diagnoser, tag)
    logs = dock.api.logs(attrs["Id"]).decode(errors="replace")
    assert outcome.event is not None, (attrs["State"], logs)
    assert outcome.key.startswith(attrs["Id"] + "@")
    ev = outcome.event
    # It really was the runtime failing to execute the entrypoint, and the event says so.
    assert ev.container.runtime_message == RUNTIME_LINE, logs
    assert ev.container.exit_code == attrs["State"]["ExitCode"] != 0
    assert ev.container.removed is False
    assert ev.binary.source == "container"
    assert ev.image.ref == tag
    assert ev.image.id == attrs["Image"]
    assert ev.image.available_platforms is None  # the registry was not asked
    return ev


def run_removed(dock: Any, api: Any, tag: str) -> tuple[str, int, datetime]:
    """Run a ``--rm`` container; once it is gone, return (id, exit code, time) from its die event."""
    since = int(time.time()) - 1
    cid = dock.run(tag, wait=False, host_config={"auto_remove": True})

    def gone() -> bool:
        try:
            api.inspect_container(cid)
        except docker.errors.NotFound:
            return True
        return False

    procs.wait_for(gone, timeout=30, what="--rm container removed")
    # The die event, as the agent sees it (until= makes the stream end).
    dies = list(api.events(since=since, until=int(time.time()) + 1, filters={"container": cid, "event": "die"}, decode=True))
    assert len(dies) == 1, dies
    die = dies[0]
    return cid, int(die["Actor"]["Attributes"]["exitCode"]), datetime.fromtimestamp(die["timeNano"] / 1e9, tz=UTC)


# --- foreign architectures ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "arch", "variant", "platform"),
    [
        ("arm64", images.elf(images.EM_AARCH64), "arm64", "", "linux/arm64"),
        ("armv7", images.elf(images.EM_ARM, bits=32), "arm", "v7", "linux/arm/v7"),
        ("s390x", images.elf(images.EM_S390, little=False), "s390x", "", "linux/s390x"),
    ],
)
def test_foreign_elf_is_arch_mismatch_with_both_platforms(dock, diagnoser, host, name, data, arch, variant, platform) -> None:
    tag = dock.load(name, [File("/app", data)], architecture=arch, variant=variant, entrypoint=["/app"])
    ev = event_of(dock, diagnoser, tag)
    assert ev.cause == classify.ARCH_MISMATCH, ev.explanation
    assert (ev.binary.kind, ev.binary.platform, ev.binary.path, ev.binary.requested_path) == ("elf", platform, "/app", "/app")
    assert ev.image.declared_platform == platform
    assert ev.host.platform == host.platform == "linux/amd64"
    assert platform not in ev.host.runnable_platforms
    assert platform in ev.explanation and host.platform in ev.explanation
    assert render.hint_json(ev)["id"] == "rebuild_multiplatform"


# --- finding the file: PATH and symlinks --------------------------------------


def test_bare_name_found_in_path_through_relative_symlink(dock, diagnoser) -> None:
    tag = dock.load(
        "pathlink",
        [
            File("/usr/local/bin/tool", link="../../lib/tool/tool-real"),  # relative to /usr/local/bin
            File("/usr/lib/tool/tool-real", images.elf(images.EM_AARCH64)),
        ],
        architecture="arm64",
        entrypoint=["tool"],
        env=(f"PATH={PATH}",),
    )
    cid = run(dock, tag)
    attrs = dock.api.inspect_container(cid)
    logs = dock.api.logs(cid).decode(errors="replace")
    assert runtime_message.last_line(logs) == "exec /usr/local/bin/tool: exec format error", logs
    ev = diagnoser.diagnose(Exit(cid, attrs["State"]["ExitCode"], tag)).event
    assert ev is not None, logs
    assert ev.cause == classify.ARCH_MISMATCH
    assert ev.binary.requested_path == "/usr/local/bin/tool"
    assert ev.binary.path == "/usr/lib/tool/tool-real"
    assert ev.binary.platform == "linux/arm64"
    assert ev.container.entrypoint == ("tool",)


def test_chain_of_absolute_symlinks_through_a_linked_directory(dock, diagnoser) -> None:
    tag = dock.load(
        "abschain",
        [
            File("/app", link="/opt/current/app"),
            File("/opt/current", link="/opt/v2"),
            File("/opt/v2/app", link="/opt/v2/bin/app-real"),
            File("/opt/v2/bin/app-real", images.elf(images.EM_AARCH64)),
        ],
        architecture="arm64",
        entrypoint=["/app"],
    )
    ev = event_of(dock, diagnoser, tag)
    assert ev.cause == classify.ARCH_MISMATCH
    assert (ev.binary.requested_path, ev.binary.path, ev.binary.platform) == ("/app", "/opt/v2/bin/app-real", "linux/arm64")


def test_symlink_loop_is_bounded(dock, api, diagnoser, host) -> None:
    tag = dock.load(
        "loop",
        [File("/app", link="/loop/a"), File("/loop/a", link="b"), File("/loop/b", link="/loop/a")],
        architecture="amd64",
        entrypoint=["/app"],
    )
    attrs, outcome = diagnose(dock, diagnoser, tag)
    # The kernel says ELOOP, not ENOEXEC: the runtime's line is no exec format error.
    assert attrs["State"]["ExitCode"] != 0
    assert outcome.event is None, outcome
    # Reading the entrypoint itself terminates with the loop named, and classifies as unknown.
    facts = inspect_binary(ContainerFiles(api, attrs["Id"]), "/app", PATH, "/", "container")
    assert facts.kind == "unreadable"
    assert "symbolic links" in facts.error, facts
    image = diagnoser._images.facts(tag, attrs["Image"], lookup_registry=False)
    assert classify.classify(facts, host, image).cause == classify.UNKNOWN


def test_removed_container_whose_interpreter_is_a_symlink_loop(dock, api, diagnoser) -> None:
    """Judged from the image (exit 1, no log): the loop ends the read, not the diagnosis."""
    tag = dock.load(
        "rm-loop",
        [File("/app", b"#!/bin/sh\necho hi\n"), File("/bin/sh", link="/bin/sh2"), File("/bin/sh2", link="sh")],
        architecture="amd64",
        entrypoint=["/app"],
    )
    cid, exit_code, when = run_removed(dock, api, tag)
    assert exit_code in runtime_message.EXEC_FAILURE_EXIT_CODES  # so the image is really read
    outcome = diagnoser.diagnose(Exit(cid, exit_code, image_ref=tag, time=when))
    assert outcome.event is None  # unknown evidence without a runtime message: nothing to report
    assert diagnoser.archive_reads == 1
    assert api.containers(all=True, filters={"label": HELPER_LABEL}) == []


# --- what the file is ------------------------------------------------------


def test_image_declaring_amd64_with_arm64_binary_is_mislabeled(dock, diagnoser) -> None:
    tag = dock.load("mislabeled", [File("/app", images.elf(images.EM_AARCH64))], architecture="amd64", entrypoint=["/app"])
    ev = event_of(dock, diagnoser, tag)
    assert ev.cause == classify.MISLABELED_IMAGE, ev.explanation
    assert ev.image.declared_platform == "linux/amd64"
    assert ev.binary.platform == "linux/arm64"
    assert render.hint_json(ev)["id"] == "fix_image_platform"


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"


@pytest.mark.parametrize(
    ("name", "data", "cause", "kind", "hint"),
    [
        ("noshebang", b"echo hello\nexec sleep 1\n", classify.MISSING_SHEBANG, "text", "add_shebang"),
        ("bom", b"\xef\xbb\xbf#!/bin/sh\necho hello\n", classify.BOM_BEFORE_SHEBANG, "bom_script", "remove_bom"),
        ("pe", images.pe(), classify.FOREIGN_OS_BINARY, "pe", "use_linux_binary"),
        ("empty", b"", classify.EMPTY_FILE, "empty", "fix_empty_file"),
        ("lfs", LFS, classify.NOT_A_BINARY, "lfs_pointer", "git_lfs_pull"),
        ("html", HTML, classify.NOT_A_BINARY, "html", "fix_download"),
    ],
)
def test_non_executable_content(dock, diagnoser, name, data, cause, kind, hint) -> None:
    tag = dock.load(name, [File("/app", data)], architecture="amd64", entrypoint=["/app"])
    ev = event_of(dock, diagnoser, tag)
    assert (ev.cause, ev.binary.kind, ev.binary.path) == (cause, kind, "/app"), ev.explanation
    assert ev.binary.platform == ""
    assert render.hint_json(ev)["id"] == hint
    if name == "bom":
        assert ev.binary.shebang == "/bin/sh"


def test_script_whose_interpreter_is_foreign(dock, diagnoser) -> None:
    tag = dock.load(
        "foreign-sh",
        [File("/app", b"#!/bin/sh\necho hello\n"), File("/bin/sh", images.elf(images.EM_AARCH64))],
        architecture="arm64",
        entrypoint=["/app"],
    )
    ev = event_of(dock, diagnoser, tag)
    assert ev.cause == classify.ARCH_MISMATCH, ev.explanation
    assert (ev.binary.path, ev.binary.requested_path, ev.binary.shebang) == ("/bin/sh", "/app", "/bin/sh")
    assert (ev.binary.kind, ev.binary.platform) == ("elf", "linux/arm64")


# --- a container removed with --rm ---------------------------------------


def test_removed_container_is_judged_from_the_image_through_a_helper(dock, api, diagnoser, host) -> None:
    tag = dock.load("rm", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    cid, exit_code, when = run_removed(dock, api, tag)
    assert exit_code != 0
    outcome = diagnoser.diagnose(Exit(cid, exit_code, image_ref=tag, time=when))
    ev = outcome.event
    assert ev is not None
    assert ev.cause == classify.ARCH_MISMATCH, ev.explanation
    assert ev.container.removed is True and ev.container.id == cid
    assert ev.container.finished_at == when
    assert (ev.binary.source, ev.binary.path, ev.binary.platform) == ("image", "/app", "linux/arm64")
    assert ev.image.declared_platform == "linux/arm64"
    assert ev.host.platform == host.platform
    assert diagnoser.archive_reads == 1
    assert api.containers(all=True, filters={"label": HELPER_LABEL}) == []


# --- controls: failures that are not exec format errors ----------------------


def test_native_binary_exiting_1_is_not_reported(dock, diagnoser) -> None:
    tag = dock.load("native", [File("/app", native_exit(1))], architecture="amd64", entrypoint=["/app"])
    attrs, outcome = diagnose(dock, diagnoser, tag)
    assert attrs["State"]["ExitCode"] == 1
    assert outcome.event is None
    assert outcome.key.startswith(attrs["Id"] + "@")


def test_native_program_printing_the_runtime_message_is_not_reported(dock, diagnoser) -> None:
    tag = dock.load("liar", [File("/app", native_exit(1, (RUNTIME_LINE + "\n").encode()))], architecture="amd64", entrypoint=["/app"])
    attrs, outcome = diagnose(dock, diagnoser, tag)
    assert attrs["State"]["ExitCode"] == 1
    logs = dock.api.logs(attrs["Id"]).decode(errors="replace")
    # The log looks exactly like the runtime's failure; only the file's header gives it away.
    assert runtime_message.find(logs, "/app") is not None, logs
    assert outcome.event is None
    assert diagnoser.archive_reads == 1


def test_missing_entrypoint_is_not_reported(dock, diagnoser) -> None:
    tag = dock.load("missing", [File("/etc/placeholder", b"x\n", mode=0o644)], architecture="amd64", entrypoint=["/nope"])
    attrs, outcome = diagnose(dock, diagnoser, tag)
    assert attrs["State"]["ExitCode"] == 127
    assert "no such file" in (attrs["State"]["Error"] + dock.api.logs(attrs["Id"]).decode(errors="replace")).lower()
    assert outcome.event is None


# --- cache ---------------------------------------------------------------


def test_crash_loop_reads_the_archive_once(dock, diagnoser) -> None:
    tag = dock.load("loop-cache", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    first = event_of(dock, diagnoser, tag)
    second = event_of(dock, diagnoser, tag)
    assert first.container.id != second.container.id
    assert first.event_id != second.event_id
    assert first.binary == second.binary
    assert first.cause == second.cause == classify.ARCH_MISMATCH
    assert diagnoser.archive_reads == 1


# --- the CLI ---------------------------------------------------------------


def cli(engine: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "diagnose", *args, "--docker-host", engine.url, "--no-registry"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_json_and_text(dock, engine) -> None:
    arm64 = dock.load("cli-arm64", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    lfs = dock.load("cli-lfs", [File("/app", LFS)], architecture="amd64", entrypoint=["/app"])
    native = dock.load("cli-native", [File("/app", native_exit(3))], architecture="amd64", entrypoint=["/app"])
    a, b, n = run(dock, arm64), run(dock, lfs), run(dock, native)

    res = cli(engine, a, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["cause"] == "arch_mismatch"
    assert doc["binary"]["platform"] == "linux/arm64"
    assert doc["binary"]["path"] == "/app"
    assert doc["image"]["declared_platform"] == "linux/arm64"
    assert doc["image"]["ref"] == arm64
    assert doc["host"]["platform"] == "linux/amd64"
    assert doc["container"]["id"] == a
    assert doc["hint"]["id"] == "rebuild_multiplatform"

    res = cli(engine, b[:12], "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["cause"], doc["binary"]["kind"], doc["binary"]["path"], doc["hint"]["id"]) == ("not_a_binary", "lfs_pointer", "/app", "git_lfs_pull")
    assert doc["image"]["declared_platform"] == "linux/amd64"
    assert doc["binary"]["platform"] == ""

    res = cli(engine, a)
    assert res.returncode == 0, res.stderr
    assert "arch_mismatch" in res.stdout
    assert "[rebuild_multiplatform]" in res.stdout
    assert "linux/arm64" in res.stdout and "linux/amd64" in res.stdout

    res = cli(engine, n, "--json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["container"], doc["exec_format_error"], doc["exit_code"]) == (n, False, 1)


def test_cli_says_which_evidence_decided(dock, engine) -> None:
    arm64 = dock.load("cli-evidence", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    logged = run(dock, arm64)
    silent = run(dock, arm64, host_config={"log_config": {"Type": "none", "Config": {}}})
    assert json.loads(cli(engine, logged, "--json").stdout)["evidence"] == "runtime_message"
    doc = json.loads(cli(engine, silent, "--json").stdout)
    assert (doc["evidence"], doc["cause"], doc["container"]["runtime_message"]) == ("file_only", "arch_mismatch", "")
    text = cli(engine, silent).stdout
    assert "evidence   file_only" in text, text


# --- a container removed while it is being read ----------------------------


class _RemovedBeforeRead:
    """The real API client; the container is really removed just before its files
    are first read: the race with ``docker run --rm`` made deterministic."""

    def __init__(self, api: Any, cid: str) -> None:
        self._api = api
        self._cid = cid

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def _get(self, url: str, *args: Any, **kw: Any) -> Any:
        if self._cid in url and url.endswith("/archive"):
            try:
                self._api.remove_container(self._cid, force=True)
            except docker.errors.NotFound:
                pass
        return self._api._get(url, *args, **kw)


def test_a_removed_container_is_told_apart_from_a_missing_file(dock: Any, api: Any) -> None:
    from agent.errors import ContainerGone

    tag = dock.load("gone", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    cid = run(dock, tag)
    assert ContainerFiles(api, cid).read("/nope").missing
    api.remove_container(cid, force=True)
    with pytest.raises(ContainerGone):
        ContainerFiles(api, cid).read("/app")


def test_container_removed_mid_diagnosis_is_read_from_its_image(dock: Any, api: Any, host: HostFacts) -> None:
    tag = dock.load("race", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    cid = run(dock, tag)
    code = api.inspect_container(cid)["State"]["ExitCode"]
    racing = Diagnoser(_RemovedBeforeRead(api, cid), lambda: host, lookup_registry=False)
    outcome = racing.diagnose(Exit(cid, code, tag))
    assert outcome.event is not None
    assert outcome.event.container.runtime_message == RUNTIME_LINE  # the log was read before the removal
    assert outcome.event.binary.source == "image"
    assert (outcome.event.cause, outcome.event.binary.platform) == ("arch_mismatch", "linux/arm64")


# --- the file the runtime named (issue #10 item 4) ----------------------------


@pytest.mark.parametrize(
    "decoy",
    [
        File("/usr/local/sbin/app/placeholder", b"x\n", mode=0o644),  # a directory named app
        File("/usr/local/sbin/app", images.elf(images.EM_X86_64), mode=0o644),  # not executable
        File("/usr/local/sbin/app", link="/usr/local/sbin/app"),  # a symlink loop
    ],
    ids=["directory", "not-executable", "symlink-loop"],
)
def test_the_file_the_runtime_named_is_judged_not_an_earlier_path_entry(dock, diagnoser, decoy: File) -> None:
    tag = dock.load(
        "pathdecoy", [decoy, File("/usr/bin/app", images.elf(images.EM_AARCH64))],
        architecture="arm64", entrypoint=["app"], env=(f"PATH={PATH}",),
    )
    attrs, outcome = diagnose(dock, diagnoser, tag)
    logs = dock.api.logs(attrs["Id"]).decode(errors="replace")
    assert runtime_message.last_line(logs) == "exec /usr/bin/app: exec format error", logs
    assert outcome.event is not None
    assert (outcome.event.binary.path, outcome.event.cause, outcome.event.evidence) == ("/usr/bin/app", classify.ARCH_MISMATCH, "runtime_message")


def test_a_native_program_printing_the_runtime_line_behind_a_decoy_is_not_reported(dock, diagnoser) -> None:
    line = b"exec /usr/bin/app: exec format error\n"
    tag = dock.load(
        "pathliar",
        [File("/usr/local/sbin/app", images.elf(images.EM_AARCH64), mode=0o644), File("/usr/bin/app", native_exit(1, line))],
        architecture="amd64", entrypoint=["app"], env=(f"PATH={PATH}",),
    )
    attrs, outcome = diagnose(dock, diagnoser, tag)
    assert dock.api.logs(attrs["Id"]) == line
    assert outcome.event is None


def test_reconciliation_inspects_old_exited_containers_once(dock, api) -> None:
    """Issue #12 item 5: the second pass over 20 old failed containers inspects none of them."""
    from datetime import timedelta

    from agent.engine.reconcile import InspectCache, state_exits

    tag = dock.load("old-many", [File("/app", images.elf(images.EM_AARCH64))], architecture="arm64", entrypoint=["/app"])
    for _ in range(20):
        dock.run(tag)

    counting, cache = dockerd.CountingClient(api), InspectCache()
    now = datetime.now(UTC)
    first = state_exits(counting, now - timedelta(hours=1), now, cache)
    assert len([e for e in first if e.container_id in dock.containers]) == 20
    assert counting.inspects >= 20
    counting.inspects = 0
    state_exits(counting, now, now + timedelta(seconds=1), cache)
    assert counting.inspects == 0
    cache.forget(dock.containers[0])  # as a die event for it does
    state_exits(counting, now, now + timedelta(seconds=1), cache)
    assert counting.inspects == 1
