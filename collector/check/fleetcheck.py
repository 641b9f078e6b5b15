"""Which hosts of the fleet could run an image, given the platforms it offers.

Pure: the same choice Docker's platform matcher makes when a host pulls a
multi-platform image, in order of preference: the host's own platform (or an older
arm variant it runs natively), then its 32-bit companion, then a platform it
emulates through binfmt_misc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from enoexec import platforms

NATIVE = "native"
COMPAT_32 = "32bit_compat"
EMULATED = "emulated"
NO_SUCH_PLATFORM = "no_such_platform"
NO_32BIT_SUPPORT = "no_32bit_support"


@dataclass(frozen=True)
class HostCapability:
    host_id: str
    platform: str
    can_run_32bit: bool
    emulated_platforms: tuple[str, ...] = ()  # enabled binfmt_misc entries with the F flag


@dataclass(frozen=True)
class Verdict:
    host_id: str
    host_platform: str
    runnable: bool
    reason: str  # NATIVE, COMPAT_32, EMULATED, NO_SUCH_PLATFORM or NO_32BIT_SUPPORT
    chosen_platform: str  # the platform Docker would pull, "" when none fits
    detail: str  # one sentence for people


def check(offered: Sequence[str], hosts: Sequence[HostCapability]) -> list[Verdict]:
    """One verdict per host, in the order given."""
    wanted = _canonical(offered)
    return [_judge(wanted, host) for host in hosts]


def _canonical(offered: Sequence[str]) -> tuple[str, ...]:
    out = []
    for raw in offered:
        platform = platforms.parse(raw)
        if platform and not platform.startswith("unknown/"):
            out.append(platform)
    return tuple(dict.fromkeys(out))


def _first(preferred: Sequence[str], offered: tuple[str, ...]) -> str:
    return next((p for p in preferred if p in offered), "")


def _judge(offered: tuple[str, ...], host: HostCapability) -> Verdict:
    own = host.platform
    native = platforms.native_platforms(own, can_run_32bit=False)
    companions = [p for p in platforms.native_platforms(own, True) if p not in native]
    listed = ", ".join(offered) or "no platform"

    def verdict(runnable: bool, reason: str, chosen: str, detail: str) -> Verdict:
        return Verdict(host.host_id, own, runnable, reason, chosen, detail)

    if chosen := _first(native, offered):
        return verdict(True, NATIVE, chosen, f"Runs natively as {chosen}.")
    if host.can_run_32bit and (chosen := _first(companions, offered)):
        return verdict(
            True, COMPAT_32, chosen, f"Runs {chosen} through the {own} host's 32-bit support."
        )
    emulated = [p for p in offered if p in host.emulated_platforms]
    if emulated:
        return verdict(
            True,
            EMULATED,
            emulated[0],
            f"Runs {emulated[0]} only under binfmt_misc emulation (QEMU): slow, "
            f"publish {own or 'a native platform'} for production.",
        )
    if chosen := _first(companions, offered):
        return verdict(
            False,
            NO_32BIT_SUPPORT,
            "",
            f"The image offers {listed}; its 32-bit {chosen} would fit, "
            f"but this {own} host cannot run 32-bit code.",
        )
    if not own:
        detail = f"The host's platform is unknown, and the image offers {listed}."
    else:
        detail = f"The image offers {listed}; this {own} host neither runs nor emulates any of them."
    return verdict(False, NO_SUCH_PLATFORM, "", detail)
