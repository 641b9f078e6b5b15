"""``enoexec-agent demo`` picks a platform the host neither runs nor emulates."""

from __future__ import annotations

import pytest

from agent import cli, demo
from agent.errors import AgentError, ConfigError
from agent.host import hostfacts
from agent.model import Emulator, HostFacts
from tests.unit.test_hostfacts import fixture


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("pi-armv7l", "linux/arm64"),  # 32-bit kernel: arm64 is foreign
        ("pi-aarch64-32bit-userland", "linux/amd64"),  # the aarch64 kernel runs arm64
        ("graviton2", "linux/amd64"),
        ("graviton4", "linux/amd64"),
        ("x86-qemu-aarch64", "linux/s390x"),  # arm64 emulated (F), arm without F: neither
    ],
)
def test_fixture_hosts_get_a_platform_they_cannot_run(host: str, expected: str) -> None:
    facts = hostfacts.gather(**fixture(host))

    chosen = demo.choose_platform(facts)

    assert chosen == expected
    assert chosen not in facts.runnable_platforms
    assert chosen not in {e.platform for e in facts.emulators if e.enabled}


def test_plain_x86_host_gets_arm64() -> None:
    assert demo.choose_platform(HostFacts("h", "linux/amd64", runnable_platforms=("linux/amd64", "linux/386"))) == "linux/arm64"


def test_an_emulator_without_the_f_flag_still_rules_a_platform_out() -> None:
    # Without F the kernel looks for the emulator inside the image: "no such file", not exec format error.
    host = HostFacts(
        "h", "linux/arm64", runnable_platforms=("linux/arm64", "linux/arm/v7"),
        emulators=(Emulator("qemu-x86_64", "linux/amd64", "/usr/bin/qemu-x86_64", "", True),),
    )
    assert demo.choose_platform(host) == "linux/s390x"


def test_a_host_that_runs_everything_is_told_so() -> None:
    host = HostFacts("h", "linux/amd64", runnable_platforms=demo.TARGETS)
    with pytest.raises(AgentError, match="every demo platform"):
        demo.choose_platform(host)


def usage_status(argv: list[str]) -> int:
    """What ``enoexec-agent`` answers for ``argv``, whether argparse exits or main returns."""
    try:
        return cli.main(argv, {})
    except SystemExit as e:
        return int(e.code or 0)


def test_help_lists_the_valid_platforms(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.DEMO_PLATFORMS == demo.TARGETS
    assert usage_status(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for p in demo.TARGETS:
        assert p in out


def test_an_unknown_platform_is_refused_with_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_status(["demo", "--platform", "linux/mips"]) == 2
    assert "linux/s390x" in capsys.readouterr().err


def test_a_platform_the_host_runs_is_refused_with_the_one_it_would_pick() -> None:
    host = HostFacts("h", "linux/amd64", runnable_platforms=("linux/amd64", "linux/386"))
    with pytest.raises(ConfigError, match=r"--platform linux/amd64: this host runs or emulates it.*linux/arm64"):
        demo.check_platform(host, "linux/amd64")
    demo.check_platform(host, "linux/arm64")  # foreign: accepted


def test_diagnose_of_an_empty_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`diagnose ''` asked the Engine and exited 3 ("Resource ID was not provided"), as if Docker were down."""
    assert cli.main(["diagnose", ""], env={"DOCKER_HOST": "unix:///nonexistent.sock"}) == 2
    assert capsys.readouterr().err == "enoexec-agent: error: CONTAINER is empty: give a container's name or id (docker ps -a)\n"
