"""check: which fleet hosts could run an image, and why not."""

from __future__ import annotations

from collector.check.fleetcheck import HostCapability, Verdict, check

AMD64 = HostCapability("x86-1", "linux/amd64", can_run_32bit=True)
AMD64_NO_IA32 = HostCapability("x86-2", "linux/amd64", can_run_32bit=False)
GRAVITON4 = HostCapability("graviton-4", "linux/arm64", can_run_32bit=False)
GRAVITON2 = HostCapability("graviton-2", "linux/arm64", can_run_32bit=True)
PI3 = HostCapability("pi-3", "linux/arm/v7", can_run_32bit=False)
PI_ZERO = HostCapability("pi-zero", "linux/arm/v6", can_run_32bit=False)
QEMU_HOST = HostCapability(
    "builder", "linux/amd64", can_run_32bit=True, emulated_platforms=("linux/arm64", "linux/arm/v7")
)


def _by_host(verdicts: list[Verdict]) -> dict[str, tuple[bool, str, str]]:
    return {v.host_id: (v.runnable, v.reason, v.chosen_platform) for v in verdicts}


def test_native_everywhere_for_a_full_multiplatform_image() -> None:
    verdicts = check(["linux/amd64", "linux/arm64", "linux/arm/v7"], [AMD64, GRAVITON4, PI3])

    assert _by_host(verdicts) == {
        "x86-1": (True, "native", "linux/amd64"),
        "graviton-4": (True, "native", "linux/arm64"),
        "pi-3": (True, "native", "linux/arm/v7"),
    }
    assert all(v.detail.endswith(".") for v in verdicts)


def test_amd64_only_image() -> None:
    verdicts = check(["linux/amd64"], [AMD64, GRAVITON4, QEMU_HOST])

    assert _by_host(verdicts)["graviton-4"] == (False, "no_such_platform", "")
    assert verdicts[1].host_platform == "linux/arm64"
    assert "linux/amd64" in verdicts[1].detail and "linux/arm64" in verdicts[1].detail


def test_older_arm_variant_runs_natively() -> None:
    verdicts = check(["linux/arm/v6"], [PI3, PI_ZERO])

    assert _by_host(verdicts) == {
        "pi-3": (True, "native", "linux/arm/v6"),
        "pi-zero": (True, "native", "linux/arm/v6"),
    }


def test_newer_arm_variant_does_not_run_on_older_core() -> None:
    [verdict] = check(["linux/arm/v7"], [PI_ZERO])

    assert (verdict.runnable, verdict.reason) == (False, "no_such_platform")


def test_own_platform_preferred_over_older_variant() -> None:
    [verdict] = check(["linux/arm/v6", "linux/arm/v7"], [PI3])

    assert verdict.chosen_platform == "linux/arm/v7"


def test_32bit_only_image() -> None:
    verdicts = check(["linux/arm/v7"], [GRAVITON2, GRAVITON4])

    assert _by_host(verdicts) == {
        "graviton-2": (True, "32bit_compat", "linux/arm/v7"),
        "graviton-4": (False, "no_32bit_support", ""),
    }
    assert "cannot run 32-bit code" in verdicts[1].detail


def test_386_on_x86_hosts() -> None:
    verdicts = check(["linux/386"], [AMD64, AMD64_NO_IA32])

    assert _by_host(verdicts) == {
        "x86-1": (True, "32bit_compat", "linux/386"),
        "x86-2": (False, "no_32bit_support", ""),
    }


def test_native_preferred_over_32bit_compat_and_emulation() -> None:
    [verdict] = check(["linux/arm64", "linux/386", "linux/amd64"], [QEMU_HOST])

    assert (verdict.reason, verdict.chosen_platform) == ("native", "linux/amd64")


def test_32bit_compat_preferred_over_emulation() -> None:
    [verdict] = check(["linux/arm64", "linux/386"], [QEMU_HOST])

    assert (verdict.reason, verdict.chosen_platform) == ("32bit_compat", "linux/386")


def test_emulated_is_runnable_but_flagged_slow() -> None:
    [verdict] = check(["linux/arm64"], [QEMU_HOST])

    assert (verdict.runnable, verdict.reason, verdict.chosen_platform) == (
        True,
        "emulated",
        "linux/arm64",
    )
    assert "slow" in verdict.detail


def test_emulation_beats_missing_32bit_support() -> None:
    host = HostCapability("g4-qemu", "linux/arm64", False, emulated_platforms=("linux/arm/v7",))

    [verdict] = check(["linux/arm/v7"], [host])

    assert (verdict.runnable, verdict.reason) == (True, "emulated")


def test_attestations_and_aliases_in_offered_are_handled() -> None:
    [verdict] = check(["unknown/unknown", "linux/aarch64"], [GRAVITON4])

    assert (verdict.reason, verdict.chosen_platform) == ("native", "linux/arm64")


def test_nothing_offered_and_unknown_host_platform() -> None:
    mystery = HostCapability("mystery", "", can_run_32bit=False)

    verdicts = check([], [AMD64, mystery])

    assert _by_host(verdicts) == {
        "x86-1": (False, "no_such_platform", ""),
        "mystery": (False, "no_such_platform", ""),
    }
    assert "unknown" in verdicts[1].detail


def test_no_hosts() -> None:
    assert check(["linux/amd64"], []) == []
