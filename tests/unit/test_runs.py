"""The verdict before a container starts, from literal facts (enoexec.judge.runs and the agent's inventory judge)."""

from __future__ import annotations

from agent.inventory.judge import entry_of, judge
from enoexec.facts import BinaryFacts, HostFacts, ImageFacts
from enoexec.judge import runs

AMD64 = HostFacts("x86", "linux/amd64", runnable_platforms=("linux/amd64", "linux/386"), can_run_32bit=True)
ARM64 = HostFacts("graviton", "linux/arm64", runnable_platforms=("linux/arm64",))


def elf(platform: str, path: str = "/app") -> BinaryFacts:
    return BinaryFacts(path, "elf", platform)


def test_a_mislabeled_binary_fails_where_the_label_points_and_names_the_binary() -> None:
    v = runs.judge(runs.Entrypoint(elf("linux/amd64")), ARM64, ImageFacts("app:1", "sha256:x", "linux/arm64"))
    assert v.status == runs.FAILS and v.cause == "mislabeled_image" and "binary is linux/amd64" in v.explanation
    assert v.hint_id and v.fix


def test_a_mislabeled_binary_that_runs_here_runs_with_a_note() -> None:
    v = runs.judge(runs.Entrypoint(elf("linux/amd64")), AMD64, ImageFacts("app:1", "sha256:x", "linux/arm64"))
    assert v.status == runs.RUNS and "declares linux/arm64" in v.note


def test_32bit_on_a_host_without_32bit_support() -> None:
    v = runs.judge(runs.Entrypoint(elf("linux/arm/v7")), ARM64, ImageFacts("app:1", "", "linux/arm/v7"))
    assert v.status == runs.FAILS and v.cause == "no_32bit_support"


def test_unreadable_is_unknown_and_no_command_is_unknown() -> None:
    v = runs.judge(runs.Entrypoint(BinaryFacts("/app", "unreadable", error="the registry stalled")), AMD64, ImageFacts("a", ""))
    assert v.status == runs.UNKNOWN and "stalled" in v.explanation
    v = runs.judge(runs.Entrypoint(BinaryFacts("", "unreadable", error="x"), not_found=True), AMD64, ImageFacts("a", ""))
    assert v.status == runs.UNKNOWN and "no command" in v.explanation


def test_a_missing_interpreter_read_by_the_agent_is_a_finding_not_unknown() -> None:
    # What BinaryReader (and check's reader) return for "#!/bin/bash" in an image without bash.
    read = BinaryFacts("/bin/bash", "unreadable", shebang="/bin/bash", requested_path="/entry.sh",
                       error="/bin/bash: no such file", missing="/bin/bash")
    v = runs.judge(entry_of(read), AMD64, ImageFacts("a", ""))
    assert v.status == runs.FAILS and v.cause == runs.MISSING_INTERPRETER and v.hint_id == "add_interpreter"
    assert "/entry.sh names the interpreter /bin/bash" in v.explanation


def test_a_missing_entrypoint_is_not_found() -> None:
    read = BinaryFacts("/app", "unreadable", requested_path="/app", error="/app: no such file")
    assert runs.judge(entry_of(read), AMD64, ImageFacts("a", "")).cause == runs.NOT_FOUND


def test_inventory_judge_reports_only_failures() -> None:
    attrs = {"Os": "linux", "Architecture": "arm64", "Config": {"Entrypoint": ["/app"]}}
    found = judge("demo:1", "sha256:1", attrs, elf("linux/arm64"), AMD64)
    assert found is not None and found.cause == "arch_mismatch" and found.image_platform == "linux/arm64"
    assert judge("native:1", "sha256:2", {**attrs, "Architecture": "amd64"}, elf("linux/amd64"), AMD64) is None


# -- one judge: the look-alikes a file shows before it runs (enoexec.judge.lookalike.before_run) --

PI_ZERO = HostFacts("pi-zero", "linux/arm/v6", runnable_platforms=("linux/arm/v6", "linux/arm/v5"), cpu_level="armv6",
                    cpu_model="ARMv6-compatible processor rev 7 (v6l)")
PI5 = HostFacts("pi5", "linux/arm64", runnable_platforms=("linux/arm64",), cpu_level="armv8", page_size=16384)
V2 = HostFacts("old-x86", "linux/amd64", runnable_platforms=("linux/amd64",), cpu_level="x86-64-v2")


def test_crlf_in_the_shebang_is_crlf_shebang_with_its_hint() -> None:
    read = BinaryFacts("/bin/sh\r", "unreadable", shebang="/bin/sh", requested_path="/entry.sh",
                       error="/bin/sh\r: no such file", missing="/bin/sh\r")
    v = runs.judge(entry_of(read), AMD64, ImageFacts("a", ""))
    assert (v.status, v.cause, v.hint_id) == (runs.FAILS, "crlf_shebang", "strip_crlf") and "/entry.sh" in v.fix


def test_a_missing_loader_names_both_libcs() -> None:
    read = BinaryFacts("/app", "elf", "linux/amd64", interpreter="/lib64/ld-linux-x86-64.so.2",
                       missing="/lib64/ld-linux-x86-64.so.2", libc="glibc", image_libc="musl")
    v = runs.judge(runs.Entrypoint(read), AMD64, ImageFacts("a", ""))
    assert (v.cause, v.hint_id) == ("missing_loader", "add_loader")
    assert "glibc program loader" in v.explanation and "musl's loader instead" in v.explanation


def test_a_missing_loader_of_a_foreign_binary_is_the_foreign_binary() -> None:
    read = BinaryFacts("/app", "elf", "linux/arm64", interpreter="/lib/ld-linux-aarch64.so.1",
                       missing="/lib/ld-linux-aarch64.so.1", libc="glibc")
    assert runs.judge(runs.Entrypoint(read), AMD64, ImageFacts("a", "", "linux/arm64")).cause == "arch_mismatch"


def test_armv7_on_a_pi_zero_is_cpu_level_even_under_an_armv6_label() -> None:
    v7 = BinaryFacts("/app", "elf", "linux/arm/v7", size=1000)
    v = runs.judge(runs.Entrypoint(v7), PI_ZERO, ImageFacts("app:1", "", "linux/arm/v6"))
    assert (v.status, v.cause, v.hint_id) == (runs.FAILS, "cpu_level", "match_cpu_level")
    assert "declares linux/arm/v6" in v.note
    guessed = BinaryFacts("/app", "elf", "linux/arm/v7", variant_guessed=True)  # the tail was not read: no evidence
    assert runs.judge(runs.Entrypoint(guessed), PI_ZERO, ImageFacts("app:1", "", "linux/arm/v7")).status == runs.RUNS
    v6 = BinaryFacts("/app", "elf", "linux/arm/v6")
    assert runs.judge(runs.Entrypoint(v6), PI_ZERO, ImageFacts("app:1", "", "linux/arm/v6")).status == runs.RUNS


def test_x86_level_page_size_and_damage() -> None:
    v3 = BinaryFacts("/app", "elf", "linux/amd64", isa_level=3)
    assert runs.judge(runs.Entrypoint(v3), V2, ImageFacts("a", "")).cause == "cpu_level"
    assert runs.judge(runs.Entrypoint(v3), AMD64, ImageFacts("a", "")).status == runs.RUNS  # level unknown
    aligned4k = BinaryFacts("/app", "elf", "linux/arm64", load_align=4096)
    assert runs.judge(runs.Entrypoint(aligned4k), PI5, ImageFacts("a", "")).cause == "page_size"
    assert runs.judge(runs.Entrypoint(aligned4k), ARM64, ImageFacts("a", "")).status == runs.RUNS
    cut = BinaryFacts("/app", "elf", "linux/amd64", size=150, damage="its program headers end past the end of the file")
    v = runs.judge(runs.Entrypoint(cut), AMD64, ImageFacts("a", ""))
    assert (v.cause, v.hint_id) == ("corrupt_file", "repull_image")
    zeros = BinaryFacts("/app", "zeros", size=9000)
    assert runs.judge(runs.Entrypoint(zeros), AMD64, ImageFacts("a", "")).cause == "corrupt_file"


def test_the_inventory_reports_a_crlf_image() -> None:
    read = BinaryFacts("/bin/sh\r", "unreadable", shebang="/bin/sh", requested_path="/entry.sh",
                       error="/bin/sh\r: no such file", missing="/bin/sh\r")
    found = judge("crlf:1", "sha256:3", {"Os": "linux", "Architecture": "amd64", "Config": {"Entrypoint": ["/entry.sh"]}},
                  read, AMD64)
    assert found is not None and (found.cause, found.hint, found.path) == ("crlf_shebang", "strip_crlf", "/entry.sh")
def test_a_crlf_shebang_read_by_the_agent_is_crlf_not_a_missing_interpreter() -> None:
    # What BinaryReader returns for "#!/bin/sh\r\n": the kernel looks for "/bin/sh\r".
    read = BinaryFacts("/bin/sh\r", "unreadable", shebang="/bin/sh", requested_path="/entry.sh", error="/bin/sh\r: no such file",
                       missing="/bin/sh\r")
    v = runs.judge(entry_of(read), AMD64, ImageFacts("app:1", ""))
    assert v.status == runs.FAILS and v.cause == "crlf_shebang" and v.hint_id == "strip_crlf"
    assert "the #! line of /entry.sh ends in a carriage return" in v.explanation and "\r" not in v.explanation + v.fix
    assert "sed -i 's/\\r$//' /entry.sh" in v.commands


def test_a_missing_loader_read_by_the_agent_is_a_finding() -> None:
    # What a deep BinaryReader read returns for a musl binary in an image without musl's loader.
    read = BinaryFacts("/app", "elf", "linux/amd64", interpreter="/lib/ld-musl-x86_64.so.1", missing="/lib/ld-musl-x86_64.so.1")
    v = runs.judge(entry_of(read), AMD64, ImageFacts("app:1", ""))
    assert v.status == runs.FAILS and v.cause == runs.MISSING_LOADER and "/lib/ld-musl-x86_64.so.1" in v.explanation
