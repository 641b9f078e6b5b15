"""Choose a remediation hint for a diagnosed exec format error.

Pure: one function, :func:`hint_for`, maps a cause and the platforms involved to a
:class:`Hint` whose commands have the image, path and platforms filled in and
shell-quoted, ready to paste.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from agent import platforms


@dataclass(frozen=True)
class Hint:
    id: str  # short stable id; the `hint` label of enoexec_hint_info
    title: str  # one line
    text: str  # a few sentences: why it failed and what to do
    commands: tuple[str, ...]  # runnable commands, values filled in and quoted


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
    }
)

_DEFAULT_BUILD_PLATFORMS = (platforms.AMD64, platforms.ARM64, platforms.ARM_V7)
_INSPECT_ENTRYPOINT = (
    "docker image inspect --format "
    "'{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}'"
)

# Interpreter to suggest for a script without a shebang, by file extension.
_INTERPRETERS = {
    ".sh": "/bin/sh",
    ".bash": "/bin/bash",
    ".py": "/usr/bin/env python3",
    ".pl": "/usr/bin/env perl",
    ".rb": "/usr/bin/env ruby",
    ".js": "/usr/bin/env node",
}


@dataclass(frozen=True)
class _Facts:
    image: str  # quoted image ref
    path: str  # quoted binary path
    raw_path: str
    host: str
    image_platform: str
    binary_platform: str
    available: tuple[str, ...] | None
    emulated: tuple[str, ...]
    binary_kind: str
    shebang: str
    container: str  # quoted container name or placeholder


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
) -> Hint:
    """The hint for one diagnosis; an unrecognised cause gets ``investigate``."""
    facts = _Facts(
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
    )
    return _BY_CAUSE.get(cause, _investigate)(facts)


def _arch_mismatch(f: _Facts) -> Hint:
    if f.available is not None and f.host and f.host in f.available:
        return _pull_platform(f)
    return _rebuild_multiplatform(f)


def _pull_platform(f: _Facts) -> Hint:
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


def _rebuild_multiplatform(f: _Facts) -> Hint:
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
        f"The entrypoint is built for {foreign or 'another platform'} and this {f.host or 'host'} "
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


def _no_32bit(f: _Facts) -> Hint:
    target = f.host if platforms.is_valid(f.host) else platforms.ARM64
    thirty_two = f.binary_platform or f.image_platform or "a 32-bit platform"
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


def _mislabeled(f: _Facts) -> Hint:
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


def _missing_shebang(f: _Facts) -> Hint:
    ext = "." + f.raw_path.rsplit(".", 1)[-1] if "." in f.raw_path.rsplit("/", 1)[-1] else ""
    interpreter = _INTERPRETERS.get(ext.lower(), "/bin/sh")
    program = interpreter.split()
    entrypoint = json.dumps([*program, f.raw_path])
    return Hint(
        id="add_shebang",
        title=f"Add a #! line to {f.raw_path}",
        text=(
            f"{f.raw_path} is a text script without `#!` on its first line, so the kernel does "
            f"not know which interpreter runs it (a shell runs such scripts; execve does not). "
            f"Add `#!{interpreter}` (or the right interpreter) as the very first line, or name "
            f"the interpreter in the Dockerfile: ENTRYPOINT {entrypoint}."
        ),
        commands=(
            f"sed -i {shlex.quote('1i #!' + interpreter)} {f.path}",
            f"head -n 1 {f.path}",
        ),
    )


def _bom(f: _Facts) -> Hint:
    line = f.shebang.strip()
    meant = f" (`{line if line.startswith('#!') else '#!' + line}`)" if line else ""
    return Hint(
        id="remove_bom",
        title=f"Remove the bytes before #! in {f.raw_path}",
        text=(
            f"{f.raw_path} starts with a UTF-8 byte-order mark (or other bytes) before `#!`, so "
            f"the kernel does not see its shebang{meant}. Strip the BOM, and convert CRLF line endings too "
            f"(`#!/bin/sh\\r` names an interpreter that does not exist). Set the editor to save "
            f"UTF-8 without BOM and LF endings (.editorconfig: charset = utf-8, end_of_line = lf; "
            f".gitattributes: *.sh text eol=lf)."
        ),
        commands=(
            f"sed -i '1s/^\\xEF\\xBB\\xBF//' {f.path}",
            f"dos2unix {f.path}",
            f"head -c 16 {f.path} | od -An -c",
        ),
    )


def _foreign_os(f: _Facts) -> Hint:
    what = {
        "macho": "a macOS Mach-O executable",
        "pe": "a Windows PE executable",
    }.get(f.binary_kind, "an executable for another operating system")
    target = f.host if platforms.is_valid(f.host) else platforms.AMD64
    arch = platforms.arch_of(target)
    goarm = f" GOARM={target.rsplit('/v', 1)[1]}" if arch == "arm" and "/v" in target else ""
    return Hint(
        id="use_linux_binary",
        title=f"Ship the Linux build of {f.raw_path}",
        text=(
            f"{f.raw_path} is {what}; a Linux container cannot execute it. Download the Linux "
            f"release asset for {target} or cross-compile for Linux, and rebuild the image. A "
            f"Windows program needs a Windows container host, not a Linux one."
        ),
        commands=(
            f"GOOS=linux GOARCH={arch}{goarm} go build -o app .",
            f"docker buildx build --platform {target} -t {f.image} --push .",
        ),
    )


def _empty(f: _Facts) -> Hint:
    return Hint(
        id="fix_empty_file",
        title=f"{f.raw_path} is empty or truncated",
        text=(
            f"{f.raw_path} has zero bytes or a truncated header: a COPY of an empty file or a "
            f"download that failed part-way while the build went on. Check the build logs for the "
            f"step that produced it, make downloads fail the build (curl -f), and rebuild."
        ),
        commands=(
            f"docker run --rm --entrypoint ls {f.image} -l {f.path}",
            f"docker history --no-trunc {f.image}",
            f"docker build --no-cache --progress=plain -t {f.image} . 2>&1 | tee build.log",
        ),
    )


def _not_a_binary(f: _Facts) -> Hint:
    show = f"docker run --rm --entrypoint head {f.image} -c 300 {f.path}"
    if f.binary_kind == "lfs_pointer":
        return Hint(
            id="git_lfs_pull",
            title=f"{f.raw_path} is a Git LFS pointer, not the file",
            text=(
                f"{f.raw_path} holds a Git LFS pointer (`version https://git-lfs...`): the build "
                f"context was checked out without LFS, so the image got the pointer instead of the "
                f"binary. Run `git lfs pull` in the build context before `docker build`; in CI, run "
                f"`git lfs install` before checkout or enable LFS in the checkout step."
            ),
            commands=("git lfs install", "git lfs pull", f"docker build -t {f.image} ."),
        )
    if f.binary_kind == "html":
        return Hint(
            id="fix_download",
            title=f"{f.raw_path} is an error page saved by a failed download",
            text=(
                f"{f.raw_path} is an HTML/XML page: the download URL failed (404, login page, rate "
                f"limit) and the error page was saved as the program. Use `curl -fL` so an HTTP "
                f"error fails the build, and verify a checksum of what was downloaded."
            ),
            commands=(
                show,
                "curl -fL -o app URL",
                'echo "SHA256  app" | sha256sum -c -',
            ),
        )
    return Hint(
        id="fix_not_a_binary",
        title=f"{f.raw_path} is not an executable",
        text=(
            f"{f.raw_path} is neither a program for this platform nor a script with `#!`"
            f"{f' (it looks like {f.binary_kind})' if f.binary_kind else ''}. Check what the "
            f"Dockerfile puts there and that ENTRYPOINT/CMD name the right file."
        ),
        commands=(show, f"{_INSPECT_ENTRYPOINT} {f.image}"),
    )


def _investigate(f: _Facts) -> Hint:
    return Hint(
        id="investigate",
        title="Exec format error: the cause could not be read",
        text=(
            "The runtime reported exec format error but the entrypoint could not be inspected "
            "(the container or image was removed, or the file was unreadable). Look at the "
            "image's platform and entrypoint, the container's logs, and diagnose it again while "
            "the container still exists."
        ),
        commands=(
            f"{_INSPECT_ENTRYPOINT} {f.image}",
            f"docker logs {f.container}",
            f"enoexec-agent diagnose {f.container}",
        ),
    )


_BY_CAUSE = {
    "arch_mismatch": _arch_mismatch,
    "no_32bit_support": _no_32bit,
    "mislabeled_image": _mislabeled,
    "missing_shebang": _missing_shebang,
    "bom_before_shebang": _bom,
    "foreign_os_binary": _foreign_os,
    "empty_file": _empty,
    "not_a_binary": _not_a_binary,
    "unknown": _investigate,
}
