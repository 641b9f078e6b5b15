"""hint_for: one hint per cause, with the image, path and platforms filled in."""

from __future__ import annotations

import shlex

import pytest

from enoexec.hints import HINT_IDS, Hint, hint_for, hint_json, hint_of
from enoexec.v1 import enoexec_pb2 as pb

CAUSES = (
    "arch_mismatch",
    "no_32bit_support",
    "mislabeled_image",
    "missing_shebang",
    "bom_before_shebang",
    "foreign_os_binary",
    "empty_file",
    "not_a_binary",
    "unknown",
)


@pytest.mark.parametrize("cause", CAUSES)
def test_every_cause_has_a_complete_hint(cause: str) -> None:
    hint = hint_for(cause=cause, image_ref="acme/app:1", host_platform="linux/arm64")

    assert isinstance(hint, Hint)
    assert hint.id in HINT_IDS
    assert hint.title and "\n" not in hint.title
    assert len(hint.text) > 40
    assert hint.commands
    assert all(isinstance(c, str) and c for c in hint.commands)
    for command in hint.commands:
        shlex.split(command)  # every command is well-formed shell quoting


def test_unknown_cause_gets_investigate() -> None:
    hint = hint_for(cause="cosmic_rays", image_ref="acme/app:1", host_platform="linux/amd64")

    assert hint.id == "investigate"
    assert hint == hint_for(cause="unknown", image_ref="acme/app:1", host_platform="linux/amd64")


def test_investigate_names_the_tools_to_look_with() -> None:
    hint = hint_for(
        cause="unknown", image_ref="acme/app:1", host_platform="linux/amd64", container="web-1"
    )

    joined = "\n".join(hint.commands)
    assert "docker image inspect" in joined and "acme/app:1" in joined
    assert "docker logs web-1" in hint.commands
    assert "enoexec-agent diagnose web-1" in hint.commands


def test_arch_mismatch_when_registry_offers_the_host_platform() -> None:
    hint = hint_for(
        cause="arch_mismatch",
        image_ref="ghcr.io/acme/app:1.2",
        host_platform="linux/arm64",
        image_platform="linux/amd64",
        binary_platform="linux/amd64",
        available_platforms=["linux/amd64", "linux/arm64"],
    )

    assert hint.id == "pull_platform"
    assert "docker pull --platform linux/arm64 ghcr.io/acme/app:1.2" in hint.commands
    assert "docker buildx imagetools inspect ghcr.io/acme/app:1.2" in hint.commands
    assert "digest" in hint.text and "recreate" in hint.text


@pytest.mark.parametrize("available", [None, [], ["linux/amd64"]])
def test_arch_mismatch_without_the_host_platform_means_rebuild(available: list[str] | None) -> None:
    hint = hint_for(
        cause="arch_mismatch",
        image_ref="acme/app:1",
        host_platform="linux/arm64",
        binary_platform="linux/amd64",
        available_platforms=available,
    )

    assert hint.id == "rebuild_multiplatform"
    assert hint.commands[0] == (
        "docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t acme/app:1 --push ."
    )
    assert "docker run --privileged --rm tonistiigi/binfmt --install amd64" in hint.commands
    assert "ARG TARGETARCH" in hint.text
    assert "not for production" in hint.text
    assert "F (fix-binary) flag" not in hint.text


def test_rebuild_includes_an_unusual_host_platform() -> None:
    hint = hint_for(
        cause="arch_mismatch",
        image_ref="acme/app:1",
        host_platform="linux/ppc64le",
        binary_platform="linux/amd64",
    )

    assert "--platform linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le " in hint.commands[0]


def test_rebuild_mentions_emulation_already_registered_without_f_flag() -> None:
    hint = hint_for(
        cause="arch_mismatch",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_platform="linux/arm/v7",
        emulated_platforms=["linux/arm/v7", "linux/arm64"],
    )

    assert "already has binfmt_misc emulation registered for linux/arm/v7" in hint.text
    assert "F (fix-binary) flag" in hint.text
    assert "docker run --privileged --rm tonistiigi/binfmt --install arm" in hint.commands


def test_no_32bit_support_on_arm64() -> None:
    hint = hint_for(
        cause="no_32bit_support",
        image_ref="acme/app:1",
        host_platform="linux/arm64",
        binary_platform="linux/arm/v7",
    )

    assert hint.id == "rebuild_64bit"
    assert "Graviton 4" in hint.text and "cannot run 32-bit code" in hint.text
    assert hint.commands == ("docker buildx build --platform linux/arm64 -t acme/app:1 --push .",)


def test_no_32bit_support_on_amd64_with_the_64bit_image_available() -> None:
    hint = hint_for(
        cause="no_32bit_support",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_platform="linux/386",
        available_platforms=["linux/386", "linux/amd64"],
    )

    assert "IA32" in hint.text
    assert hint.commands[0] == "docker pull --platform linux/amd64 acme/app:1"
    assert "docker buildx build --platform linux/amd64 -t acme/app:1 --push ." in hint.commands


def test_mislabeled_image_shows_how_to_look_at_the_bytes() -> None:
    hint = hint_for(
        cause="mislabeled_image",
        image_ref="acme/app:1",
        host_platform="linux/arm64",
        image_platform="linux/arm64",
        binary_platform="linux/amd64",
        binary_path="/usr/local/bin/app",
    )

    assert hint.id == "fix_image_platform"
    assert "declares linux/arm64" in hint.text and "linux/amd64" in hint.text
    assert "GOARCH" in hint.text and "TARGETARCH" in hint.text
    assert hint.commands[0] == (
        "docker run --rm --platform linux/arm64 --entrypoint sh acme/app:1 "
        "-c 'head -c 20 /usr/local/bin/app | od -An -tx1'"
    )
    assert "docker cp" in hint.commands[1] and "file ./entrypoint" in hint.commands[1]


def test_paths_and_images_with_shell_metacharacters_are_quoted() -> None:
    hint = hint_for(
        cause="mislabeled_image",
        image_ref="acme/app:1;rm -rf /",
        host_platform="linux/arm64",
        image_platform="linux/arm64",
        binary_path="/opt/my app/run",
    )

    words = shlex.split(hint.commands[0])
    assert "acme/app:1;rm -rf /" in words
    assert words[-1] == "head -c 20 '/opt/my app/run' | od -An -tx1"


def test_missing_shebang() -> None:
    hint = hint_for(
        cause="missing_shebang",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_path="/entrypoint.sh",
    )

    assert hint.id == "add_shebang"
    assert "#!/bin/sh" in hint.text
    assert 'ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]' in hint.text
    assert "sed -i '1i #!/bin/sh' /entrypoint.sh" in hint.commands


def test_missing_shebang_suggests_the_interpreter_by_extension() -> None:
    hint = hint_for(
        cause="missing_shebang",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_path="/app/main.py",
    )

    assert 'ENTRYPOINT ["/usr/bin/env", "python3", "/app/main.py"]' in hint.text


def test_bom_before_shebang() -> None:
    hint = hint_for(
        cause="bom_before_shebang",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_path="/entrypoint.sh",
        shebang="/bin/bash",  # as sniff reports it: the line after "#!"
    )

    assert hint.id == "remove_bom"
    assert r"sed -i '1s/^\xEF\xBB\xBF//' /entrypoint.sh" in hint.commands
    assert "dos2unix /entrypoint.sh" in hint.commands
    assert "CRLF" in hint.text and "editor" in hint.text and "#!/bin/bash" in hint.text


@pytest.mark.parametrize(("kind", "what"), [("pe", "Windows PE"), ("macho", "macOS Mach-O")])
def test_foreign_os_binary(kind: str, what: str) -> None:
    hint = hint_for(
        cause="foreign_os_binary",
        image_ref="acme/app:1",
        host_platform="linux/arm/v7",
        binary_path="/app.exe",
        binary_kind=kind,
    )

    assert hint.id == "use_linux_binary"
    assert what in hint.text
    assert "GOOS=linux GOARCH=arm GOARM=7 go build -o app ." in hint.commands


def test_empty_file() -> None:
    hint = hint_for(
        cause="empty_file", image_ref="acme/app:1", host_platform="linux/amd64", binary_path="/app"
    )

    assert hint.id == "fix_empty_file"
    assert "zero bytes" in hint.text and "build logs" in hint.text
    assert "docker run --rm --entrypoint ls acme/app:1 -l /app" in hint.commands


def test_lfs_pointer() -> None:
    hint = hint_for(
        cause="not_a_binary",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_path="/app",
        binary_kind="lfs_pointer",
    )

    assert hint.id == "git_lfs_pull"
    assert hint.commands == ("git lfs install", "git lfs pull", "docker build -t acme/app:1 .")
    assert "before `docker build`" in hint.text


def test_html_error_page() -> None:
    hint = hint_for(
        cause="not_a_binary",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_path="/app",
        binary_kind="html",
    )

    assert hint.id == "fix_download"
    assert "curl -fL" in hint.text and "checksum" in hint.text
    assert any(c.startswith("curl -fL ") for c in hint.commands)


def test_other_non_binary() -> None:
    hint = hint_for(
        cause="not_a_binary",
        image_ref="acme/app:1",
        host_platform="linux/amd64",
        binary_path="/app",
        binary_kind="text",
    )

    assert hint.id == "fix_not_a_binary"
    assert "docker run --rm --entrypoint head acme/app:1 -c 300 /app" in hint.commands


def test_hint_ids_are_the_contract_ids() -> None:
    assert HINT_IDS == {
        "pull_platform",
        "rebuild_multiplatform",
        "rebuild_64bit",
        "fix_image_platform",
        "add_shebang",
        "remove_bom",
        "use_linux_binary",
        "fix_empty_file",
        "git_lfs_pull",
        "fix_download",
        "fix_not_a_binary",
        "investigate",
        # look-alikes
        "add_loader",
        "strip_crlf",
        "add_interpreter",
        "repull_image",
        "match_cpu_level",
        "match_page_size",
        "run_native",
    }


def test_every_cause_has_its_own_hint() -> None:
    from enoexec.causes import CAUSES

    for cause in CAUSES - {"unknown"}:
        assert hint_for(cause=cause, image_ref="acme/app:1", host_platform="linux/amd64").id != "investigate", cause
@pytest.mark.parametrize("host", ["", "Linux/AMD64", "x86_64", "linux/amd64;rm -rf /"])
def test_rebuild_leaves_an_empty_or_invalid_host_platform_out_of_the_build_command(host: str) -> None:
    hint = hint_for(cause="arch_mismatch", image_ref="acme/app:1", host_platform=host, binary_platform="linux/s390x")

    assert hint.id == "rebuild_multiplatform"
    assert hint.commands[0] == "docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t acme/app:1 --push ."


@pytest.mark.parametrize("host", ["linux/amd64", "linux/arm64", "linux/arm/v7"])
def test_rebuild_names_a_default_host_platform_once(host: str) -> None:
    hint = hint_for(cause="arch_mismatch", image_ref="acme/app:1", host_platform=host, binary_platform="linux/s390x")

    assert hint.commands[0] == "docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t acme/app:1 --push ."


@pytest.mark.parametrize(("available", "says"), [
    (None, "It is not known which platforms the registry offers for it"),
    ([], "The registry offers no platform for it"),
    (["linux/amd64", "linux/s390x"], "The registry offers only linux/amd64, linux/s390x"),
])
def test_rebuild_says_what_the_registry_is_known_to_offer(available: list[str] | None, says: str) -> None:
    hint = hint_for(cause="arch_mismatch", image_ref="acme/app:1", host_platform="linux/arm64",
                    binary_platform="linux/amd64", available_platforms=available)
    assert f"{says}." in hint.text


def test_rebuild_for_a_host_with_emulation_keeps_the_whole_advice() -> None:
    hint = hint_for(cause="arch_mismatch", image_ref="acme/app:1", host_platform="linux/amd64",
                    binary_platform="linux/arm/v7", emulated_platforms=["linux/arm/v7"])
    assert hint.text.startswith("The entrypoint is built for linux/arm/v7 and this linux/amd64 host")
    assert "ARG TARGETARCH" in hint.text and "F (fix-binary) flag" in hint.text


def test_pull_names_the_binarys_platform_before_the_images() -> None:
    hint = hint_for(cause="arch_mismatch", image_ref="acme/app:1", host_platform="linux/arm64", image_platform="linux/amd64",
                    binary_platform="linux/386", available_platforms=["linux/arm64"])
    assert "holds the linux/386 variant" in hint.text
    hint = hint_for(cause="arch_mismatch", image_ref="acme/app:1", host_platform="linux/arm64", image_platform="linux/amd64",
                    available_platforms=["linux/arm64"])
    assert "holds the linux/amd64 variant" in hint.text


@pytest.mark.parametrize("host", ["", "x86_64"])
def test_no_32bit_with_an_unknown_host_platform_suggests_arm64(host: str) -> None:
    hint = hint_for(cause="no_32bit_support", image_ref="acme/app:1", host_platform=host, binary_platform="linux/arm/v7")
    assert hint.commands == ("docker buildx build --platform linux/arm64 -t acme/app:1 --push .",)
    assert "this 64-bit host" in hint.text if not host else "this x86_64 host" in hint.text


def test_mislabeled_without_a_declared_platform_pins_nothing() -> None:
    hint = hint_for(cause="mislabeled_image", image_ref="acme/app:1", host_platform="linux/amd64", binary_platform="linux/arm64")
    assert hint.commands[0].startswith("docker run --rm --entrypoint sh acme/app:1 -c ")
    assert hint.title == "The image says one platform but its entrypoint is built for linux/arm64"
    pinned = hint_for(cause="mislabeled_image", image_ref="acme/app:1", host_platform="linux/amd64",
                      image_platform="linux/amd64", binary_platform="linux/arm64")
    assert pinned.commands[0].startswith("docker run --rm --platform linux/amd64 --entrypoint sh acme/app:1 -c ")


def test_the_hint_of_an_event_reads_every_fact_it_needs() -> None:
    ev = pb.Event(
        cause="mislabeled_image",
        host=pb.HostFacts(platform="linux/amd64"),
        image=pb.ImageFacts(ref="acme/app:1", declared_platform="linux/amd64"),
        binary=pb.BinaryFacts(path="/opt/app-real", requested_path="/app", kind="elf", platform="linux/arm64"),
        container=pb.ContainerFacts(id="0123456789abcdef", name=""),
    )
    assert hint_of(ev) == hint_for(cause="mislabeled_image", image_ref="acme/app:1", host_platform="linux/amd64",
                                   image_platform="linux/amd64", binary_platform="linux/arm64", binary_path="/app",
                                   binary_kind="elf", container="0123456789ab")
    assert hint_json(hint_of(ev)) == {"id": "fix_image_platform", "title": hint_of(ev).title, "text": hint_of(ev).text,
                                      "commands": list(hint_of(ev).commands)}


@pytest.mark.parametrize(("binary", "image", "says"), [
    ("linux/arm/v7", "linux/arm/v6", "The entrypoint is a linux/arm/v7 binary,"),
    ("", "linux/arm/v6", "The entrypoint is a linux/arm/v6 binary,"),
    ("", "", "The entrypoint is a 32-bit binary,"),  # was "is a a 32-bit platform binary" (found by mutation testing)
])
def test_no_32bit_names_the_32bit_platform_it_knows(binary: str, image: str, says: str) -> None:
    hint = hint_for(cause="no_32bit_support", image_ref="acme/app:1", host_platform="linux/arm64",
                    binary_platform=binary, image_platform=image)
    assert hint.text.startswith(says)


def test_the_hint_of_an_event_uses_its_container_kind_registry_answer_and_enabled_emulators() -> None:
    def ev(**kw: object) -> pb.Event:
        e = pb.Event(host=pb.HostFacts(platform="linux/amd64"), image=pb.ImageFacts(ref="acme/app:1"),
                     container=pb.ContainerFacts(id="0123456789abcdef"))
        for path, value in kw.items():
            part, _, field = path.partition("__")
            target = getattr(e, part) if field else e
            setattr(target, field or part, value)
        return e

    assert "docker logs 0123456789ab" in hint_of(ev(cause="unknown")).commands
    assert "docker logs web-1" in hint_of(ev(cause="unknown", container__name="web-1")).commands
    assert hint_of(ev(cause="not_a_binary", binary__kind="lfs_pointer")).id == "git_lfs_pull"
    offered = ev(cause="arch_mismatch", binary__platform="linux/arm64")
    offered.image.available_platforms.append("linux/amd64")
    assert hint_of(offered).id == "rebuild_multiplatform"  # a list the agent did not know is no answer
    offered.image.available_platforms_known = True
    assert hint_of(offered).id == "pull_platform"
    emulated = ev(cause="arch_mismatch", binary__platform="linux/arm64")
    emulated.host.emulators.append(pb.Emulator(platform="linux/arm64", enabled=False))
    emulated.host.emulators.append(pb.Emulator(platform="", enabled=True))
    assert "already has binfmt_misc emulation" not in hint_of(emulated).text
    emulated.host.emulators[0].enabled = True
    assert "already has binfmt_misc emulation registered for linux/arm64" in hint_of(emulated).text


def test_a_hint_without_facts_shows_placeholders_a_reader_fills_in() -> None:
    rebuild = hint_for(cause="arch_mismatch", image_ref="", host_platform="")
    assert rebuild.title == "Publish a multi-platform image that includes this host"
    # was "this host host neither runs it" (found by mutation testing)
    assert rebuild.text.startswith("The entrypoint is built for another platform and this host neither runs it natively")
    assert rebuild.commands == ("docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t IMAGE --push .",
                                "docker buildx imagetools inspect IMAGE", "docker run --privileged --rm tonistiigi/binfmt --install all")
    shebang = hint_for(cause="missing_shebang", image_ref="", host_platform="")
    assert shebang.commands == ("sed -i '1i #!/bin/sh' /path/to/entrypoint", "head -n 1 /path/to/entrypoint")
    investigate = hint_for(cause="unknown", image_ref="", host_platform="")
    assert investigate.commands[1:] == ("docker logs CONTAINER", "enoexec-agent diagnose CONTAINER")
