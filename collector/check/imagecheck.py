"""``check``: would each known host run this image? From its real entrypoint, and what the fleet saw.

:func:`read_registry` reads every platform's entrypoint from the registry
(bounded, cached by manifest digest); :func:`answer` (pure) gives each host the
platform Docker would pull for it (:mod:`fleetcheck`'s choice) and judges that
platform's file against the host's facts with the agent's classifier
(:mod:`enoexec.judge.runs`). Exits the fleet already recorded for the image
override what a label or a read says: a host seen failing fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from collector.check import fleetcheck
from collector.check.entrypoint_read import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, EntrypointCache, PlatformRead, read_platform
from collector.check.registry_image import RegistryImage
from collector.check.registry_policy import RegistryPolicy
from collector.errors import RegistryError
from enoexec import platforms
from enoexec.facts import HostFacts, ImageFacts
from enoexec.judge import runs


@dataclass(frozen=True)
class ImageRead:
    ref: str
    digest: str  # the reference's manifest or index digest; "" for an archive without one
    platforms: tuple[PlatformRead, ...]
    source: str  # "registry" or "archive"
    seconds: float = 0.0
    names: tuple[str, ...] = ()  # an archive's image names (docker save's RepoTags)
    index: bool = False  # a multi-platform index: a host pulls only a platform it runs

    @property
    def bytes_read(self) -> int:
        return sum(p.bytes_read for p in self.platforms)


@dataclass(frozen=True)
class Seen:
    """One exit the fleet recorded for this image."""

    host_id: str
    host_platform: str
    cause: str
    time: str
    digests: tuple[str, ...] = ()
    image_platform: str = ""  # the platform the host had pulled ("" unknown)


@dataclass(frozen=True)
class HostAnswer:
    host_id: str
    host_platform: str
    status: str  # runs.RUNS / FAILS / UNKNOWN
    reason: str  # how the platform was chosen (fleetcheck), or "seen" when the fleet's exits decided
    chosen_platform: str
    verdict: runs.Verdict
    binary_platform: str = ""
    seen: tuple[Seen, ...] = field(default=())
    label_runnable: bool = True  # what the platform labels alone say

    @property
    def runnable(self) -> bool:
        """Runs, or nothing read says otherwise and the label says it runs."""
        return self.status == runs.RUNS or (self.status == runs.UNKNOWN and self.label_runnable)


async def read_registry(
    ref: str, *, allowed: RegistryPolicy, cache: EntrypointCache | None = None, session: aiohttp.ClientSession | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT,
    insecure_registries: Collection[str] = ("localhost", "127.0.0.1"),
) -> ImageRead:
    """Every platform's entrypoint of ``ref``. RegistryRefused/RegistryError as ``fetch_platforms``."""
    started = time.monotonic()
    own = session is None
    if session is None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout))
    try:
        image = RegistryImage(ref, allowed=allowed, session=session, insecure_registries=insecure_registries)
        reads = []

        def left() -> float:  # the whole check shares one time limit
            return max(1.0, timeout - (time.monotonic() - started))

        for platform, digest in await _bounded(image.platforms(), ref, left()):
            hit = cache.get(digest) if cache is not None else None
            if hit is not None:
                reads.append(hit)
                continue
            loaded = await _bounded(image.load(platform, digest), ref, left())
            reads.append(await read_platform(loaded, cache=cache, max_bytes=max_bytes, timeout=left()))
        return ImageRead(ref, image.digest, tuple(reads), "registry", time.monotonic() - started, index=image.index)
    finally:
        if own:
            await session.close()


async def _bounded(coro: Any, ref: str, timeout: float) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await coro
    except TimeoutError:
        raise RegistryError(f"the registry did not answer within {timeout:g}s for {ref}") from None
    except aiohttp.ClientError as e:
        raise RegistryError(f"could not reach the registry for {ref}: {e}") from e


def host_facts(host_id: str, platform: str, facts: dict[str, Any]) -> HostFacts:
    """HostFacts from a host's JSON facts (the agent's ``facts --json`` and ``/api/v1/hosts`` shape)."""
    can_32 = bool(facts.get("can_run_32bit", False))
    emulated = [e.get("platform", "") for e in facts.get("emulators") or []
                if isinstance(e, dict) and e.get("enabled") and e.get("platform") and "F" in e.get("flags", "")]
    runnable = [*(facts.get("runnable_platforms") or platforms.native_platforms(platform, can_32)), *emulated]
    return HostFacts(host_id=host_id, platform=platform, kernel_machine=str(facts.get("kernel_machine", "")),
                     can_run_32bit=can_32, runnable_platforms=tuple(dict.fromkeys(p for p in runnable if p)),
                     page_size=_int(facts.get("page_size")), cpu_level=str(facts.get("cpu_level") or ""),
                     cpu_model=str(facts.get("cpu_model") or ""))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# The CPU level a 32-bit ARM platform promises: a linux/arm/v6 host is an ARMv6 core (a Pi
# Zero or 1) until its facts say more. Other platforms promise nothing beyond their baseline.
_TARGET_LEVEL = {platforms.ARM_V6: "armv6", platforms.ARM_V7: "armv7"}


def target_host(platform: str) -> HostFacts:
    """A host that is only a platform (``--target``): runs that platform natively (an arm/v7 one runs
    arm/v6 too), no 32-bit companion and no emulation, so the gate errs on the side of failing; an
    arm/v6 one has an ARMv6 CPU (armv7 code fails there: ``cpu_level``)."""
    return HostFacts(host_id=platform, platform=platform, can_run_32bit=False,
                     runnable_platforms=platforms.native_platforms(platform, can_run_32bit=False),
                     cpu_level=_TARGET_LEVEL.get(platform, ""))


def answer(read: ImageRead, hosts: Sequence[HostFacts], seen: Sequence[Seen] = ()) -> list[HostAnswer]:
    """One answer per host, in the order given. Pure."""
    offered = [p.platform for p in read.platforms if p.platform]
    by_platform = {p.platform: p for p in read.platforms}
    available = tuple(offered)
    out = []
    for host in hosts:
        cap = fleetcheck.HostCapability(host.host_id, host.platform, host.can_run_32bit, _emulated(host))
        choice = fleetcheck.check(offered, [cap])[0] if offered else None
        if choice is None or not choice.chosen_platform:
            # A single image is pulled and run whatever its platform: its file decides.
            chosen = read.platforms[0] if len(read.platforms) == 1 and not read.index else None
            if chosen is None:
                detail = choice.detail if choice else "the image names no platform"
                v = runs.Verdict(runs.FAILS, "arch_mismatch", detail, "rebuild_multiplatform",
                                 f"Publish the image for {host.platform} too (docker buildx build --platform ...)")
                out.append(_with_seen(HostAnswer(host.host_id, host.platform, runs.FAILS,
                                                 choice.reason if choice else "no_such_platform", "", v,
                                                 label_runnable=False), read, seen))
                continue
        else:
            chosen = by_platform[choice.chosen_platform]
        image = ImageFacts(_image_name(read), chosen.manifest_digest, declared_platform=chosen.platform, available_platforms=available)
        v = runs.judge(chosen.entry, host, image)
        out.append(_with_seen(HostAnswer(host.host_id, host.platform, v.status, choice.reason if choice else "native",
                                         chosen.platform, v, chosen.entry.binary.platform), read, seen))

    return out


def _emulated(host: HostFacts) -> tuple[str, ...]:
    own = set(platforms.native_platforms(host.platform, True))
    return tuple(p for p in host.runnable_platforms if p not in own) or host.emulated_platforms


def _with_seen(a: HostAnswer, read: ImageRead, seen: Sequence[Seen]) -> HostAnswer:
    """The fleet's own exits decide for the hosts they happened on, and for their platform
    when nothing read from the image says it runs there."""
    relevant = [s for s in seen if not (read.digest and s.digests and not any(read.digest in d for d in s.digests))]
    from_label = not read.platforms  # nothing was read: only a label said it runs, and labels lie
    if not from_label:  # the file of the platform this host pulls was read: exits of another platform are stale
        relevant = [s for s in relevant if not (s.image_platform and a.chosen_platform and s.image_platform != a.chosen_platform)]
    mine = [s for s in relevant if s.host_id == a.host_id]
    same = [s for s in relevant if s.host_platform == a.host_platform]
    decisive = mine or (same if a.status != runs.RUNS or from_label else [])
    if not decisive:
        return a if not same else HostAnswer(**{**a.__dict__, "seen": tuple(same)})
    first = min(decisive, key=lambda s: s.time)
    hosts = sorted({s.host_id for s in decisive})
    why = (f"seen failing on {len(hosts)} host(s) since {first.time}, cause {first.cause}"
           + (f"; {a.verdict.explanation}" if a.verdict.explanation else ""))
    v = runs.Verdict(runs.FAILS, a.verdict.cause if a.status == runs.FAILS else first.cause, why,
                     a.verdict.hint_id, a.verdict.fix, a.verdict.commands, a.verdict.note)
    reason = a.reason if a.status == runs.FAILS else "seen"  # "seen": the fleet's exits alone decided
    return HostAnswer(a.host_id, a.host_platform, runs.FAILS, reason, a.chosen_platform, v, a.binary_platform,
                      tuple(decisive), False)


def names_of(ref: str) -> list[str]:
    """The names exits of ``ref`` may be recorded under: as run (``nginx``) or with its tag (``nginx:latest``)."""
    name = ref.split("@", 1)[0]
    tagged = name.rfind(":") > name.rfind("/")
    if not tagged:
        return [ref, f"{name}:latest"]
    return [ref, name[: -len(":latest")]] if name.endswith(":latest") else [ref]


def seen_from_events(events: Sequence[dict[str, Any]]) -> list[Seen]:
    """Seen exits from ``/api/v1/events`` documents (back-filled ones too: they happened)."""
    out = []
    for e in events:
        host, image = e.get("host") or {}, e.get("image") or {}
        out.append(Seen(str(host.get("host_id") or host.get("id") or ""), str(host.get("platform", "")),
                        str(e.get("cause", "")), str(e.get("time", "")), tuple(image.get("repo_digests") or ()),
                        str(image.get("declared_platform", ""))))
    return out


def label_answer(offered: Sequence[str], hosts: Sequence[HostFacts], seen: Sequence[Seen] = (), ref: str = "") -> list[HostAnswer]:
    """``--platform``: judge by the platforms named alone (no file to read), then by what the fleet saw."""
    caps = [fleetcheck.HostCapability(h.host_id, h.platform, h.can_run_32bit, _emulated(h)) for h in hosts]
    out = []
    empty = ImageRead(ref, "", (), "query")
    for c in fleetcheck.check(offered, caps):
        status = runs.RUNS if c.runnable else runs.FAILS
        v = runs.Verdict(status, "" if c.runnable else "arch_mismatch", c.detail)
        out.append(_with_seen(HostAnswer(c.host_id, c.host_platform, status, c.reason, c.chosen_platform, v,
                                         label_runnable=c.runnable), empty, seen))
    return out


def _image_name(read: ImageRead) -> str:
    """The name the hints' commands use: an archive's saved name, never its file's path ("" for none: IMAGE)."""
    if read.source == "archive":
        return read.names[0] if read.names else ""
    return read.ref
