"""Choose a remediation hint for a diagnosed exec format error.

Pure: one function, :func:`hint_for`, maps a cause and the platforms involved to a
:class:`Hint` whose commands have the image, path and platforms filled in and
shell-quoted, ready to paste.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from enoexec import hint_files as hints_files
from enoexec import hint_lookalikes as lookalikes
from enoexec import platforms
from enoexec.hint_model import Hint, HintFacts
from enoexec.v1 import enoexec_pb2 as pb

__all__ = ["HINT_IDS", "Hint", "hint_for", "hint_json", "hint_of"]


HINT_IDS: frozenset[str] = frozenset(
    {
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
        "add_loader",
        "strip_crlf",
        "add_interpreter",
        "repull_image",
        "match_cpu_level",
        "match_page_size",
        "run_native",
    }
)

_DEFAULT_BUILD_PLATFORMS = (platforms.AMD64, platforms.ARM64, platforms.ARM_V7)


def hint_for(
    *,
    cause: str,
    image_ref: str,
    host_platform: str,
    image_platform: str = "",
    binary_platform: str = "",
    available_platforms: Sequence[str] | None = None,
    emulated_platforms: Sequence[str] = (),
    binary_path: str = "",
    binary_kind: str = "",
    shebang: str = "",
    container: str = "",
    missing: str = "",
    libc: str = "",
    image_libc: str = "",
    isa_level: int = 0,
    cpu_level: str = "",
    page_size: int = 0,
    load_align: int = 0,
) -> Hint:
    """The hint for one diagnosis; an unrecognised cause gets ``investigate``."""
    facts = HintFacts(
        image=shlex.quote(image_ref or "IMAGE"),
        path=shlex.quote(binary_path or "/path/to/entrypoint"),
        raw_path=binary_path or "/path/to/entrypoint",
        host=host_platform,
        image_platform=image_platform,
        binary_platform=binary_platform,
        available=None if available_platforms is None else tuple(available_platforms),
        emulated=tuple(emulated_platforms),
        binary_kind=binary_kind,
        shebang=shebang,
        container=shlex.quote(container) if container else "CONTAINER",
        missing=missing,
        libc=libc,
        image_libc=image_libc,
        isa_level=isa_level,
        cpu_level=cpu_level,
        page_size=page_size,
        load_align=load_align,
    )
    return _BY_CAUSE.get(cause, hints_files.investigate)(facts)


def _arch_mismatch(f: HintFacts) -> Hint:
    if f.available is not None and f.host and f.host in f.available:
        return _pull_platform(f)
    return _rebuild_multiplatform(f)


def _pull_platform(f: HintFacts) -> Hint:
    wrong = f.binary_platform or f.image_platform or "another platform"
    return Hint(
        id="pull_platform",
        title=f"Pull the {f.host} variant of the image",
        text=(
            f"The registry offers {f.host}, but this host holds the {wrong} variant: the image "
            f"was pulled with --platform, or a platform: setting, or it is pinned by a digest that "
            f"names one platform's manifest instead of the multi-platform index. Pull the {f.host} "
            f"variant and recreate the container. If the reference carries a digest, replace it with "
            f"the index digest shown by `docker buildx imagetools inspect`."
        ),
        commands=(
            f"docker pull --platform {f.host} {f.image}",
            f"docker buildx imagetools inspect {f.image}",
            f"docker rm -f {f.container} && docker run --platform {f.host} {f.image}",
        ),
    )


def _rebuild_multiplatform(f: HintFacts) -> Hint:
    foreign = f.binary_platform or f.image_platform
    build = list(_DEFAULT_BUILD_PLATFORMS)
    if platforms.is_valid(f.host) and f.host not in build:
        build.append(f.host)
    if f.available is None:
        offered = "It is not known which platforms the registry offers for it"
    elif f.available:
        offered = f"The registry offers only {', '.join(f.available)}"
    else:
        offered = "The registry offers no platform for it"
    text = (
        f"The entrypoint is built for {foreign or 'another platform'} and this {f.host + ' ' if f.host else ''}"
        f"host neither runs it natively nor emulates it. {offered}. Build and push a "
        f"multi-platform image; in the Dockerfile use `ARG TARGETARCH` to pick downloaded "
        f"binaries (or GOARCH=$TARGETARCH when compiling). As a stopgap only, register QEMU "
        f"emulation with tonistiigi/binfmt: it is slow and not for production."
    )
    if foreign and foreign in f.emulated:
        text += (
            f" This host already has binfmt_misc emulation registered for {foreign}, yet the "
            f"container failed anyway: without the F (fix-binary) flag the interpreter is not "
            f"usable inside containers. Re-registering with tonistiigi/binfmt sets that flag."
        )
    emulate = platforms.arch_of(foreign) or "all"
    return Hint(
        id="rebuild_multiplatform",
        title=f"Publish a multi-platform image that includes {f.host or 'this host'}",
        text=text,
        commands=(
            f"docker buildx build --platform {','.join(build)} -t {f.image} --push .",
            f"docker buildx imagetools inspect {f.image}",
            f"docker run --privileged --rm tonistiigi/binfmt --install {shlex.quote(emulate)}",
        ),
    )


def _no_32bit(f: HintFacts) -> Hint:
    target = f.host if platforms.is_valid(f.host) else platforms.ARM64
    thirty_two = f.binary_platform or f.image_platform or "32-bit"
    if target == platforms.AMD64:
        example = "an x86-64 kernel built without IA32 emulation"
    else:
        example = "Graviton 4 and other arm64 CPUs or kernels without AArch32"
    commands = [f"docker buildx build --platform {target} -t {f.image} --push ."]
    if f.available and target in f.available:
        commands.insert(0, f"docker pull --platform {target} {f.image}")
    return Hint(
        id="rebuild_64bit",
        title=f"Use a {target} image: this host cannot run 32-bit code",
        text=(
            f"The entrypoint is a {thirty_two} binary, and this {f.host or '64-bit'} host cannot "
            f"run 32-bit code at all ({example}); no emulation setting fixes that on the host side. "
            f"Rebuild or pull the image for {target}."
        ),
        commands=tuple(commands),
    )


def _mislabeled(f: HintFacts) -> Hint:
    declared = f.image_platform or "one platform"
    actual = f.binary_platform or "another"
    probe = shlex.quote(f"head -c 20 {f.path} | od -An -tx1")
    pin = f" --platform {f.image_platform}" if f.image_platform else ""
    return Hint(
        id="fix_image_platform",
        title=f"The image says {declared} but its entrypoint is built for {actual}",
        text=(
            f"The image declares {declared}, but the binary at {f.raw_path} is {actual}: the "
            f"Dockerfile copies a binary built for another platform, so the image is mislabeled "
            f"and pulling the right platform does not help. Check the bytes of the file, then fix "
            f"the build: cross-compile for the target (GOOS=linux GOARCH=$TARGETARCH with "
            f"`ARG TARGETARCH`, or `FROM --platform=$BUILDPLATFORM` for the builder stage) and "
            f"download release assets by $TARGETARCH."
        ),
        commands=(
            f"docker run --rm{pin} --entrypoint sh {f.image} -c {probe}",
            f'id=$(docker create{pin} {f.image}) && docker cp "$id":{f.path} ./entrypoint '
            f'&& docker rm "$id" && file ./entrypoint',
        ),
    )


_BY_CAUSE = {
    "arch_mismatch": _arch_mismatch,
    "no_32bit_support": _no_32bit,
    "mislabeled_image": _mislabeled,
    "missing_shebang": hints_files.missing_shebang,
    "bom_before_shebang": hints_files.bom,
    "foreign_os_binary": hints_files.foreign_os,
    "empty_file": hints_files.empty,
    "not_a_binary": hints_files.not_a_binary,
    "unknown": hints_files.investigate,
    "missing_loader": lookalikes.missing_loader,
    "crlf_shebang": lookalikes.strip_crlf,
    "missing_interpreter": lookalikes.add_interpreter,
    "corrupt_file": lookalikes.repull_image,
    "cpu_level": lookalikes.match_cpu_level,
    "page_size": lookalikes.match_page_size,
    "emulated": lookalikes.run_native,
}


def hint_of(event: pb.Event) -> Hint:
    """The remediation hint for one event (in Kubernetes terms when it came from a pod)."""
    hint = hint_for(
        cause=event.cause,
        image_ref=event.image.ref,
        host_platform=event.host.platform,
        image_platform=event.image.declared_platform,
        binary_platform=event.binary.platform,
        available_platforms=list(event.image.available_platforms) if event.image.available_platforms_known else None,
        emulated_platforms=[e.platform for e in event.host.emulators if e.enabled and e.platform],
        binary_path=event.binary.requested_path or event.binary.path,
        binary_kind=event.binary.kind,
        shebang=event.binary.shebang,
        container=event.container.name or event.container.id[:12],
        missing=event.binary.missing,
        libc=event.binary.libc,
        image_libc=event.binary.image_libc,
        isa_level=event.binary.isa_level,
        cpu_level=event.host.cpu_level,
        page_size=event.host.page_size,
        load_align=event.binary.load_align,
    )
    if event.container.HasField("kubernetes"):
        from enoexec import hints_kubernetes

        return hints_kubernetes.for_pod(hint, event)
    return hint


def hint_json(hint: Hint) -> dict[str, Any]:
    return {"id": hint.id, "title": hint.title, "text": hint.text, "commands": list(hint.commands)}
