"""check's answer per host: the platform a host pulls, the file's verdict, and what the fleet saw. Pure."""

from __future__ import annotations

from collector.check import imagecheck
from collector.check.entrypoint_read import PlatformRead
from collector.check.imagecheck import ImageRead, Seen
from collector.http import check_view
from enoexec.facts import BinaryFacts
from enoexec.judge import runs

AMD, ARM = imagecheck.target_host("linux/amd64"), imagecheck.target_host("linux/arm64")


def platform(declared: str, binary_platform: str) -> PlatformRead:
    entry = runs.Entrypoint(BinaryFacts("/app", "elf", binary_platform))
    return PlatformRead(declared, f"sha256:{declared}", ("/app",), entry, 1000, (), 0.01)


def test_each_host_is_judged_on_the_platform_it_pulls() -> None:
    read = ImageRead("app:1", "sha256:i", (platform("linux/amd64", "linux/amd64"), platform("linux/arm64", "linux/amd64")),
                     "registry", index=True)
    by = {a.host_id: a for a in imagecheck.answer(read, [AMD, ARM])}
    assert by["linux/amd64"].status == runs.RUNS and by["linux/amd64"].chosen_platform == "linux/amd64"
    assert by["linux/arm64"].status == runs.FAILS and by["linux/arm64"].verdict.cause == "mislabeled_image"


def test_an_index_without_the_host_platform_fails_but_a_single_image_is_judged_by_its_file() -> None:
    index = ImageRead("app:1", "", (platform("linux/arm64", "linux/arm64"),), "registry", index=True)
    (a,) = imagecheck.answer(index, [AMD])
    assert a.status == runs.FAILS and a.reason == "no_such_platform"
    single = ImageRead("app:1", "", (platform("linux/arm64", "linux/arm64"),), "archive")
    (a,) = imagecheck.answer(single, [AMD])
    assert a.status == runs.FAILS and a.verdict.cause == "arch_mismatch" and "binary is linux/arm64" in a.verdict.explanation


def test_the_fleets_exits_override_a_label() -> None:
    seen = [Seen("x86-1", "linux/amd64", "arch_mismatch", "2026-12-01T00:00:00Z", (), "linux/arm64")]
    host = imagecheck.host_facts("x86-1", "linux/amd64", {"runnable_platforms": ["linux/amd64"]})
    other = imagecheck.host_facts("x86-2", "linux/amd64", {"runnable_platforms": ["linux/amd64"]})
    answers = imagecheck.label_answer(["linux/amd64", "linux/arm64"], [host, other], seen, "demo:1")
    assert [(a.host_id, a.status, a.reason) for a in answers] == [("x86-1", runs.FAILS, "seen"), ("x86-2", runs.FAILS, "seen")]
    doc = check_view.answer_json("demo:1", answers, platforms=["linux/amd64"], source="query", seen=seen)
    assert doc["seen"] == {"exits": 1, "hosts": ["x86-1"], "since": "2026-12-01T00:00:00Z", "causes": ["arch_mismatch"]}
    assert doc["cannot_run"][0]["detail"].startswith("seen failing on 1 host(s) since 2026-12-01T00:00:00Z, cause arch_mismatch")


def test_a_read_binary_that_runs_outweighs_stale_exits_of_another_platform() -> None:
    seen = [Seen("x86-1", "linux/amd64", "arch_mismatch", "2026-12-01T00:00:00Z", (), "linux/arm64")]
    read = ImageRead("app:1", "", (platform("linux/amd64", "linux/amd64"), platform("linux/arm64", "linux/arm64")),
                     "registry", index=True)
    (a,) = imagecheck.answer(read, [imagecheck.host_facts("x86-1", "linux/amd64", {})], seen)
    assert a.status == runs.RUNS


def test_names_an_exit_may_be_recorded_under() -> None:
    assert imagecheck.names_of("nginx") == ["nginx", "nginx:latest"]
    assert imagecheck.names_of("nginx:latest") == ["nginx:latest", "nginx"]
    assert imagecheck.names_of("reg:5000/app:1.2") == ["reg:5000/app:1.2"]
    assert imagecheck.names_of("reg:5000/app") == ["reg:5000/app", "reg:5000/app:latest"]
