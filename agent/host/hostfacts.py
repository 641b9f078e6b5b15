"""This host's facts: platform, kernel, Docker, CPU, 32-bit support and emulators.

Everything is read from roots passed in (``/proc``, ``/sys``, ``/etc``) and from
``client.info()`` / ``client.version()`` mappings as docker-py returns them, so a
fixture tree describes a whole host. See ``gather`` for which source wins where.
"""

from __future__ import annotations

import ctypes
import errno
import gzip
import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from agent.host import binfmt, cpulevel
from agent.host.binfmt import signature as binfmt_signature
from agent.host.cpuinfo import CpuInfo, cpu_model, lacks_aarch32, parse_cpuinfo
from agent.model import HostFacts
from enoexec import platforms

__all__ = [
    "gather",
    "binfmt_signature",
    "describes_running_kernel",
    "probe_personality32",
    "app_specific_id",
    "parse_cpuinfo",
    "cpu_model",
    "lacks_aarch32",
]

logger = logging.getLogger(__name__)

# Key for the application-specific host id derived from /etc/machine-id. Operators
# get the same value with `systemd-id128 machine-id --app-specific=<this>`.
APP_ID = "777983e363fe462e8e1b606583ce554b"

PER_LINUX32 = 0x0008
_PERSONALITY_QUERY = 0xFFFFFFFF
_LIVE_PROC = Path("/proc")
_BOOT_ID = "sys/kernel/random/boot_id"
_32BIT = frozenset({platforms.I386, platforms.ARM_V7, platforms.ARM_V6, platforms.ARM_V5})


def gather(
    *,
    host_id: str | None = None,
    proc_root: Path = Path("/proc"),
    sys_root: Path = Path("/sys"),
    etc_root: Path = Path("/etc"),
    docker_info: Mapping | None = None,
    docker_version: Mapping | None = None,
    uname: Callable[[], os.uname_result] = os.uname,
    page_size: int | None = None,
    probe_32bit: Callable[[str], bool] | None = None,
    platform_hint: str = "",
) -> HostFacts:
    """Establish this host's facts.

    - platform: ``platform_hint`` if set (an operator's override), else the Docker
      Engine's view (``version()["Arch"]``, the GOARCH of dockerd, which is ``arm``
      on a Raspberry Pi running a 32-bit userland on an aarch64 kernel), else the
      kernel's ``uname -m``.
    - runnable_platforms: what the platform and the kernel run natively, plus the
      platforms of binfmt_misc entries usable in containers (enabled, flag F).
    - can_run_32bit: see ``_can_run_32bit``; ``probe_32bit(platform)`` overrides it.
    - host_id: explicit, else derived from ``etc_root/machine-id``, else the hostname
      (the Engine's ``info()["Name"]``, else ``uname().nodename``).
    """
    info = docker_info or {}
    version = docker_version or {}
    un = uname()
    cpu = parse_cpuinfo(_read(Path(proc_root) / "cpuinfo"))
    kernel_platform = platforms.from_uname(un.machine)
    docker_platform = _docker_platform(info, version, kernel_platform, cpu)
    platform = platforms.parse(platform_hint) or docker_platform or kernel_platform
    can_32 = _can_run_32bit(platform, Path(proc_root), cpu, probe_32bit)
    emulators = binfmt.to_emulators(binfmt.read_entries(Path(proc_root)))
    runnable = [*platforms.native_platforms(platform, can_32)]
    if platform != kernel_platform:  # e.g. 32-bit userland on a 64-bit kernel: both run
        runnable += platforms.native_platforms(kernel_platform, can_32)
    for e in emulators:
        if binfmt.usable_in_containers(e) and e.platform:
            runnable += platforms.native_platforms(e.platform, can_run_32bit=False)
    hostname = str(info.get("Name") or un.nodename)
    return HostFacts(
        host_id=host_id or _machine_host_id(Path(etc_root)) or hostname,
        platform=platform,
        kernel_machine=un.machine,
        kernel_release=un.release,
        docker_version=str(version.get("Version") or info.get("ServerVersion") or ""),
        docker_platform=docker_platform,
        default_runtime=str(info.get("DefaultRuntime") or ""),
        runtime_version=_runtime_version(info, version),
        cpu_model=cpu_model(cpu, board=_devicetree_model(Path(sys_root))),
        page_size=page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE"),
        memory_bytes=_mem_total(Path(proc_root)) or int(info.get("MemTotal") or 0),
        can_run_32bit=can_32,
        emulators=emulators,
        hostname=hostname,
        runnable_platforms=tuple(dict.fromkeys(p for p in runnable if p)),
        cpu_level=cpulevel.cpu_level(un.machine, cpu),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _docker_platform(info: Mapping, version: Mapping, kernel_platform: str, cpu: CpuInfo) -> str:
    """The platform dockerd pulls for: its GOARCH, else the Engine host's ``uname -m``."""
    arch = str(version.get("Arch") or "")
    if not arch:
        return platforms.from_uname(str(info.get("Architecture") or ""))
    os_name = str(version.get("Os") or info.get("OSType") or "linux")
    if platforms.arch_of(platforms.normalize(os_name, arch)) != "arm":
        return platforms.normalize(os_name, arch)
    # GOARCH "arm" names no variant: an ARMv6 kernel or CPU means v6 (Pi 1, Zero).
    if kernel_platform in (platforms.ARM_V6, platforms.ARM_V5):
        return platforms.normalize(os_name, arch, kernel_platform.rsplit("/", 1)[-1])
    if cpu.fields.get("model name", "").lower().startswith("armv6"):
        return platforms.normalize(os_name, arch, "v6")
    return platforms.normalize(os_name, arch, "v7")


def _runtime_version(info: Mapping, version: Mapping) -> str:
    """Version of the default runtime from ``version()["Components"]``, else of runc."""
    components = {str(c.get("Name", "")).lower(): str(c.get("Version", "")) for c in version.get("Components") or ()}
    default = str(info.get("DefaultRuntime") or "").lower()
    return components.get(default) or components.get("runc", "")


def _mem_total(proc_root: Path) -> int:
    for line in _read(proc_root / "meminfo").splitlines():
        key, _, value = line.partition(":")
        if key == "MemTotal":
            number, _, unit = value.strip().partition(" ")
            return int(number) * (1024 if unit.strip().lower() == "kb" else 1)
    return 0


def _devicetree_model(sys_root: Path) -> str:
    return _read(sys_root / "firmware/devicetree/base/model").rstrip("\0\n ")


def _machine_host_id(etc_root: Path) -> str:
    machine_id = _read(etc_root / "machine-id").strip()
    try:
        return app_specific_id(machine_id)
    except ValueError:
        if machine_id:
            logger.warning("%s is not a 128-bit hex id; using the hostname as host id", etc_root / "machine-id")
        return ""


def app_specific_id(machine_id: str, app_id: str = APP_ID) -> str:
    """machine-id(5) asks not to expose the id itself: derive one keyed to this app.

    Same algorithm as systemd's ``sd_id128_get_machine_app_specific``: HMAC-SHA256
    of the app id keyed with the machine id, truncated and marked as a v4 UUID.
    """
    key, message = bytes.fromhex(machine_id), bytes.fromhex(app_id)
    if len(key) != 16:
        raise ValueError("machine id must be 32 hex digits")
    out = bytearray(hmac.new(key, message, hashlib.sha256).digest()[:16])
    out[6] = (out[6] & 0x0F) | 0x40
    out[8] = (out[8] & 0x3F) | 0x80
    return out.hex()


def _kernel_config(proc_root: Path) -> dict[str, str]:
    """``CONFIG_X`` -> value from ``/proc/config.gz`` ("n" for "is not set"); {} if absent."""
    try:
        text = gzip.decompress((proc_root / "config.gz").read_bytes()).decode(errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
        elif line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _cmdline_bool(proc_root: Path, name: str) -> bool | None:
    for word in _read(proc_root / "cmdline").split():
        key, _, value = word.partition("=")
        if key == name:
            return value[:1].lower() in ("1", "y", "t") or value.lower() == "on"  # kstrtobool
    return None


def _can_run_32bit(
    platform: str, proc_root: Path, cpu: CpuInfo, probe: Callable[[str], bool] | None
) -> bool:
    """Whether this host runs 32-bit code (i386 on amd64, arm on arm64).

    A 32-bit platform runs it by definition; other platforms have no 32-bit
    companion we name, so False. For amd64 and arm64, in order:

    1. ``probe(platform)`` when given: the caller knows best.
    2. The kernel says no: ``/proc/config.gz`` lacks IA32 emulation (amd64) or
       ``CONFIG_COMPAT`` (arm64), or amd64 booted with ``ia32_emulation=0`` or
       defaults it off without ``ia32_emulation=1``. Only when that file exists.
    3. arm64 CPUs known to lack AArch32 at EL0 (Graviton 4's Neoverse-V2, Apple...).
    4. arm64, when ``proc_root`` is the running kernel's (``/proc`` or a bind mount
       of the host's): ``probe_personality32()``, which asks the kernel itself.
    5. Otherwise True. On amd64 there is no cheap runtime test (``personality``
       always accepts PER_LINUX32 there), so an amd64 kernel without IA32
       emulation and without ``/proc/config.gz`` is reported as able: a known gap.
    """
    if platform in _32BIT:
        return True
    if platform not in (platforms.AMD64, platforms.ARM64):
        return False
    if probe is not None:
        return probe(platform)
    config = _kernel_config(proc_root)
    if platform == platforms.AMD64:
        if config.get("CONFIG_IA32_EMULATION") == "n":
            return False
        boot = _cmdline_bool(proc_root, "ia32_emulation")
        if boot is not None:
            return boot
        return config.get("CONFIG_IA32_EMULATION_DEFAULT_DISABLED") != "y"
    if config.get("CONFIG_COMPAT") == "n" or lacks_aarch32(cpu):
        return False
    if describes_running_kernel(proc_root):
        return probe_personality32()
    return True


def describes_running_kernel(proc_root: Path) -> bool:
    """True if ``proc_root`` shows the kernel this process runs on (same boot id),
    not a fixture tree: only then does asking the kernel say anything about it."""
    boot_id = _read(Path(proc_root) / _BOOT_ID).strip()
    return bool(boot_id) and boot_id == _read(_LIVE_PROC / _BOOT_ID).strip()


def probe_personality32() -> bool:
    """Ask the kernel whether it runs 32-bit tasks, via ``personality(PER_LINUX32)``.

    arm64 kernels refuse PER_LINUX32 with EINVAL when no CPU has AArch32 at EL0; the
    previous persona is restored at once (it is per thread). Docker's default seccomp
    profile allows both calls. On x86-64 the call always succeeds, so this proves
    nothing there. Any other failure is logged and taken as "yes".
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        personality = libc.personality
    except (OSError, AttributeError) as e:
        logger.debug("personality(2) unavailable (%s); assuming 32-bit support", e)
        return True
    personality.argtypes = [ctypes.c_ulong]
    personality.restype = ctypes.c_int
    previous = personality(_PERSONALITY_QUERY)
    if previous == -1 or previous & 0xFF == PER_LINUX32:
        return True  # cannot ask, or already running as a 32-bit persona
    if personality((previous & ~0xFF) | PER_LINUX32) == -1:
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            return False
        logger.debug("personality(PER_LINUX32) failed: %s; assuming 32-bit support", os.strerror(err))
        return True
    if personality(previous) == -1:
        logger.warning("could not restore persona %#x after probing 32-bit support", previous)
    return True
