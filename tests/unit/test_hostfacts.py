import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from agent.host import cpuinfo, hostfacts
from agent.model import Emulator, HostFacts

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
ARM_32 = ("linux/arm/v7", "linux/arm/v6", "linux/arm/v5")


def fixture(name: str, root: Path = HOSTS, **overrides) -> dict:
    """gather() keyword arguments for a fixture host: its roots, uname and Docker answers."""
    host = root / name
    un = os.uname_result(json.loads((host / "uname.json").read_text()))
    kwargs = {
        "proc_root": host / "proc",
        "sys_root": host / "sys",
        "etc_root": host / "etc",
        "docker_info": json.loads((host / "docker-info.json").read_text()),
        "docker_version": json.loads((host / "docker-version.json").read_text()),
        "uname": lambda: un,
        "page_size": int((host / "page_size").read_text()) if (host / "page_size").exists() else 4096,
    }
    return kwargs | overrides


@pytest.mark.parametrize(
    ("name", "platform", "cpu_level", "page_size", "cpu_model"),
    [
        # ARM1176 says "CPU architecture: 7"; its model name and core say ARMv6.
        ("pi-zero-armv6", "linux/arm/v6", "armv6", 4096, "Raspberry Pi Zero W Rev 1.1"),
        ("pi5-16k", "linux/arm64", "armv8", 16384, "Raspberry Pi 5 Model B Rev 1.0"),
        # Sandy Bridge: AVX but no AVX2, BMI2, FMA: x86-64-v2.
        ("x86-no-avx2", "linux/amd64", "x86-64-v2", 4096, "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz"),
        ("x86-qemu-aarch64", "linux/amd64", "x86-64-v3", 4096, "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"),
    ],
)
def test_cpu_level_and_page_size_in_the_facts(name, platform, cpu_level, page_size, cpu_model):
    facts = hostfacts.gather(**fixture(name))
    assert (facts.platform, facts.cpu_level, facts.page_size, facts.cpu_model) == (platform, cpu_level, page_size, cpu_model)


def test_pi_armv7l():
    assert hostfacts.gather(**fixture("pi-armv7l")) == HostFacts(
        host_id=hostfacts.app_specific_id("c1f3b0e2a7d84f5c9e6b2a1d0c3f4e5a"),
        platform="linux/arm/v7",
        kernel_machine="armv7l",
        kernel_release="6.1.21-v7l+",
        docker_version="20.10.24",
        docker_platform="linux/arm/v7",
        default_runtime="runc",
        runtime_version="1.1.5",
        cpu_model="Raspberry Pi 4 Model B Rev 1.4",
        page_size=4096,
        memory_bytes=3881536 * 1024,
        can_run_32bit=True,
        emulators=(),
        hostname="pi-garage",
        runnable_platforms=ARM_32,
        cpu_level="armv7",
    )


def test_pi_aarch64_kernel_with_32bit_userland_is_arm_v7_and_runs_arm64_too():
    assert hostfacts.gather(**fixture("pi-aarch64-32bit-userland")) == HostFacts(
        host_id=hostfacts.app_specific_id("5b0c9d7e3a2f41e8b6d4c2a09f8e7d6c"),
        platform="linux/arm/v7",
        kernel_machine="aarch64",
        kernel_release="6.6.31+rpt-rpi-v8",
        docker_version="26.1.4",
        docker_platform="linux/arm/v7",
        default_runtime="runc",
        runtime_version="1.1.12",
        cpu_model="Raspberry Pi 4 Model B Rev 1.5",
        page_size=4096,
        memory_bytes=7998456 * 1024,
        can_run_32bit=True,
        emulators=(),
        hostname="pi-kitchen",
        runnable_platforms=(*ARM_32, "linux/arm64"),
        cpu_level="armv8",
    )


def test_graviton2_runs_32bit_arm():
    assert hostfacts.gather(**fixture("graviton2", page_size=65536)) == HostFacts(
        host_id=hostfacts.app_specific_id("9a4c2e71f05b4d3c8e2a6f1b7d9c0e34"),
        platform="linux/arm64",
        kernel_machine="aarch64",
        kernel_release="4.18.0-513.5.1.el8_9.aarch64",
        docker_version="26.1.3",
        docker_platform="linux/arm64",
        default_runtime="runc",
        runtime_version="1.1.12",
        cpu_model="Neoverse-N1",
        page_size=65536,
        memory_bytes=15891200 * 1024,
        can_run_32bit=True,
        emulators=(),
        hostname="ip-10-0-1-23.eu-west-1.compute.internal",
        runnable_platforms=("linux/arm64", *ARM_32),
        cpu_level="armv8",
    )


def test_graviton4_has_no_aarch32_and_no_machine_id():
    assert hostfacts.gather(**fixture("graviton4")) == HostFacts(
        host_id="ip-10-0-3-17",  # no /etc/machine-id: the Engine's hostname
        platform="linux/arm64",
        kernel_machine="aarch64",
        kernel_release="6.8.0-1015-aws",
        docker_version="27.1.1",
        docker_platform="linux/arm64",
        default_runtime="runc",
        runtime_version="1.1.13",
        cpu_model="Neoverse-V2",
        page_size=4096,
        memory_bytes=15962636 * 1024,
        can_run_32bit=False,
        emulators=(),
        hostname="ip-10-0-3-17",
        runnable_platforms=("linux/arm64",),
        cpu_level="armv8",
    )


def test_x86_with_qemu_counts_only_fix_binary_emulators_as_runnable():
    facts = hostfacts.gather(**fixture("x86-qemu-aarch64", host_id="build-07.example"))
    assert facts == HostFacts(
        host_id="build-07.example",
        platform="linux/amd64",
        kernel_machine="x86_64",
        kernel_release="6.5.0-41-generic",
        docker_version="24.0.7",
        docker_platform="linux/amd64",
        default_runtime="runc",
        runtime_version="1.1.10",
        cpu_model="Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz",
        page_size=4096,
        memory_bytes=32765972 * 1024,
        can_run_32bit=True,
        emulators=(
            Emulator("python3.10", "", "/usr/bin/python3.10", "", True),
            Emulator("qemu-aarch64", "linux/arm64", "/usr/bin/qemu-aarch64-static", "F", True),
            Emulator("qemu-arm", "linux/arm/v7", "/usr/bin/qemu-arm", "OC", True),
            Emulator("qemu-s390x", "linux/s390x", "/usr/libexec/qemu-binfmt/s390x-binfmt-P", "POCF", False),
        ),
        hostname="build-07",
        # qemu-arm lacks F (no use inside containers); qemu-s390x is disabled.
        runnable_platforms=("linux/amd64", "linux/386", "linux/arm64"),
        cpu_level="x86-64-v3",
    )


def test_without_docker_the_kernel_decides():
    facts = hostfacts.gather(**fixture("pi-aarch64-32bit-userland", docker_info=None, docker_version=None))
    assert (facts.platform, facts.docker_platform, facts.docker_version, facts.runtime_version) == (
        "linux/arm64",
        "",
        "",
        "",
    )
    assert (facts.hostname, facts.memory_bytes) == ("pi-kitchen", 7998456 * 1024)


def test_platform_hint_wins():
    facts = hostfacts.gather(**fixture("pi-aarch64-32bit-userland", docker_version=None, platform_hint="arm"))
    assert (facts.platform, facts.docker_platform) == ("linux/arm/v7", "linux/arm64")


def test_docker_info_alone_gives_the_kernel_view():
    facts = hostfacts.gather(**fixture("pi-aarch64-32bit-userland", docker_version=None))
    assert (facts.platform, facts.docker_platform, facts.docker_version) == ("linux/arm64", "linux/arm64", "26.1.4")


def test_armv6_kernel_with_docker_arm_is_arm_v6():
    un = os.uname_result(("Linux", "zero", "6.1.21+", "#1642 Mon Apr 3 17:19:14 BST 2023", "armv6l"))
    facts = hostfacts.gather(**fixture("pi-armv7l", uname=lambda: un))
    assert (facts.platform, facts.runnable_platforms) == ("linux/arm/v6", ("linux/arm/v6", "linux/arm/v5"))


def test_runtime_version_of_the_default_runtime():
    version = {"Version": "27.0.3", "Arch": "amd64", "Components": [
        {"Name": "Engine", "Version": "27.0.3"}, {"Name": "crun", "Version": "1.15"}]}  # fmt: skip
    facts = hostfacts.gather(**fixture("x86-qemu-aarch64", docker_version=version,
                                       docker_info={"DefaultRuntime": "crun"}))  # fmt: skip
    assert (facts.default_runtime, facts.runtime_version, facts.docker_version) == ("crun", "1.15", "27.0.3")
    nvidia = hostfacts.gather(**fixture("x86-qemu-aarch64", docker_info={"DefaultRuntime": "nvidia"}))
    assert nvidia.runtime_version == "1.1.10"  # nvidia wraps runc: fall back to runc's version


def test_host_id_falls_back_to_uname_nodename(tmp_path):
    facts = hostfacts.gather(**fixture("graviton4", docker_info=None))
    assert (facts.host_id, facts.hostname) == ("3f9c1d2b7a6e", "3f9c1d2b7a6e")
    (tmp_path / "machine-id").write_text("uninitialized\n")
    assert hostfacts.gather(**fixture("graviton4", docker_info=None, etc_root=tmp_path)).host_id == "3f9c1d2b7a6e"


def test_app_specific_id_matches_systemd_algorithm():
    # systemd-id128 machine-id --app-specific=777983e363fe462e8e1b606583ce554b
    # with machine id 3d1219c7c4c5404aaa1f6d2a48adfda4
    assert hostfacts.app_specific_id("3d1219c7c4c5404aaa1f6d2a48adfda4") == "3cf1f58c96e94a02b70d17d93e727c47"


def test_probe_overrides_cpu_knowledge():
    asked = []

    def probe(platform: str) -> bool:
        asked.append(platform)
        return True

    facts = hostfacts.gather(**fixture("graviton4", probe_32bit=probe))
    assert asked == ["linux/arm64"]
    assert facts.can_run_32bit and facts.runnable_platforms == ("linux/arm64", *ARM_32)
    assert not hostfacts.gather(**fixture("graviton2", probe_32bit=lambda p: False)).can_run_32bit


def copy_host(name: str, tmp_path: Path) -> Path:
    shutil.copytree(HOSTS / name, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("cmdline", "config", "expected"),
    [
        ("ro quiet ia32_emulation=0", None, False),
        ("ro quiet ia32_emulation=false", None, False),
        ("ro quiet", "# CONFIG_IA32_EMULATION is not set\n", False),
        ("ro quiet", "CONFIG_IA32_EMULATION=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n", False),
        ("ro ia32_emulation=1", "CONFIG_IA32_EMULATION=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n", True),
        ("ro quiet", "CONFIG_IA32_EMULATION=y\n", True),
    ],
)
def test_x86_ia32_emulation_from_kernel_config_and_cmdline(tmp_path, cmdline, config, expected):
    host = copy_host("x86-qemu-aarch64", tmp_path)
    (host / "proc/cmdline").write_text(cmdline + "\n")
    if config is not None:
        (host / "proc/config.gz").write_bytes(gzip.compress(config.encode()))
    facts = hostfacts.gather(**fixture("x86-qemu-aarch64", root=tmp_path))
    assert facts.can_run_32bit is expected
    assert ("linux/386" in facts.runnable_platforms) is expected


def test_arm64_kernel_without_compat(tmp_path):
    host = copy_host("graviton2", tmp_path)
    (host / "proc/config.gz").write_bytes(gzip.compress(b"CONFIG_ARM64=y\n# CONFIG_COMPAT is not set\n"))
    facts = hostfacts.gather(**fixture("graviton2", root=tmp_path))
    assert (facts.can_run_32bit, facts.runnable_platforms) == (False, ("linux/arm64",))


@pytest.mark.parametrize(
    ("text", "board", "expected"),
    [
        ("CPU implementer\t: 0x41\nCPU part\t: 0xd0b\n", "", "Cortex-A76"),
        ("CPU implementer\t: 0x41\nCPU part\t: 0xd40\n", "", "Neoverse-V1"),
        ("CPU implementer\t: 0x41\nCPU part\t: 0xd03\n", "Pine64 PINE A64+", "Pine64 PINE A64+"),
        ("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n"
         "processor\t: 4\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n", "", "Cortex-A55 + Cortex-A76"),
        ("model name\t: ARMv7 Processor rev 5 (v7l)\nCPU implementer\t: 0x41\nCPU part\t: 0xc07\n", "", "Cortex-A7"),
        ("CPU implementer\t: 0x41\nCPU part\t: 0xd99\n", "", "ARM part 0xd99"),
        ("CPU implementer\t: 0x61\nCPU part\t: 0x023\n", "", "Apple part 0x023"),
        ("cpu\t\t: POWER9 (raw), altivec supported\n", "", "POWER9 (raw), altivec supported"),
        ("", "", ""),
    ],
)  # fmt: skip
def test_cpu_model(text, board, expected):
    assert cpuinfo.cpu_model(cpuinfo.parse_cpuinfo(text), board=board) == expected


def test_devicetree_board_names_the_cpu_model_when_cpuinfo_has_no_model(tmp_path):
    host = copy_host("pi-aarch64-32bit-userland", tmp_path)
    cpuinfo = host / "proc/cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text().replace("Model\t\t: Raspberry Pi 4 Model B Rev 1.5\n", ""))
    facts = hostfacts.gather(**fixture("pi-aarch64-32bit-userland", root=tmp_path))
    assert facts.cpu_model == "Raspberry Pi 4 Model B Rev 1.5"  # from /sys/firmware/devicetree/base/model


def test_memory_falls_back_to_docker(tmp_path):
    host = copy_host("graviton4", tmp_path)
    (host / "proc/meminfo").unlink()
    assert hostfacts.gather(**fixture("graviton4", root=tmp_path)).memory_bytes == 16345739264


def test_apple_cores_lack_aarch32():
    cpu = cpuinfo.parse_cpuinfo("CPU implementer\t: 0x61\nCPU architecture: 8\nCPU part\t: 0x023\n")
    assert cpuinfo.lacks_aarch32(cpu)
    assert not cpuinfo.lacks_aarch32(cpuinfo.parse_cpuinfo("CPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"))


def test_binfmt_signature_tracks_fixture(tmp_path):
    host = copy_host("x86-qemu-aarch64", tmp_path)
    before = hostfacts.binfmt_signature(host / "proc")
    (host / "proc/sys/fs/binfmt_misc/qemu-arm").unlink()
    assert hostfacts.binfmt_signature(host / "proc") != before


def test_probe_personality32_restores_persona():
    import ctypes

    personality = ctypes.CDLL(None, use_errno=True).personality
    personality.argtypes, personality.restype = [ctypes.c_ulong], ctypes.c_int
    before = personality(0xFFFFFFFF)
    assert isinstance(hostfacts.probe_personality32(), bool)
    assert personality(0xFFFFFFFF) == before


def test_gather_defaults_use_real_page_size():
    facts = hostfacts.gather(**{k: v for k, v in fixture("graviton2").items() if k != "page_size"})
    assert facts.page_size == os.sysconf("SC_PAGE_SIZE")


def test_describes_running_kernel(tmp_path):
    assert hostfacts.describes_running_kernel(Path("/proc"))
    assert not hostfacts.describes_running_kernel(HOSTS / "graviton2" / "proc")
    host_proc = tmp_path / "host-proc"  # as if the host's /proc were bind-mounted here
    (host_proc / "sys/kernel/random").mkdir(parents=True)
    (host_proc / "sys/kernel/random/boot_id").write_text(Path("/proc/sys/kernel/random/boot_id").read_text())
    assert hostfacts.describes_running_kernel(host_proc)
    (host_proc / "sys/kernel/random/boot_id").write_text("0b9f6c2e-5d4a-4c3b-8a29-1f0e9d8c7b6a\n")
    assert not hostfacts.describes_running_kernel(host_proc)
