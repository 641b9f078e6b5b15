"""Hints for the look-alikes of exec format error: a missing loader or
interpreter, CRLF line endings, a corrupt file, a CPU level or page size the
host lacks. Pure."""

from __future__ import annotations

import shlex

from enoexec.hint_model import Hint, HintFacts


def missing_loader(f: HintFacts) -> Hint:
    commands: tuple[str, ...]
    loader = f.missing or "the program loader"
    if f.libc == "glibc":
        fixes = ("install glibc compatibility in the image (Alpine: `apk add gcompat`), base the image on a "
                 "glibc distribution (debian:bookworm-slim, ubuntu, distroless/base), or build the program "
                 "statically (CGO_ENABLED=0 for Go, -static or musl targets for C and Rust)")
        commands = (
            f"docker run --rm --entrypoint /bin/sh {f.image} -c 'ls -l {loader} /lib/ld-musl-* 2>&1'",
            "# Alpine base: RUN apk add --no-cache gcompat",
            f"docker buildx build --platform {f.host or 'linux/amd64'} -t {f.image} --push .",
        )
    else:
        fixes = ("base the image on the libc the program was built for (alpine for musl), or build the program "
                 "statically (CGO_ENABLED=0 for Go, -static or the musl target for C and Rust)")
        commands = (
            f"docker run --rm --entrypoint /bin/sh {f.image} -c 'ls -l {loader} /lib64/ld-linux-* /lib/ld-* 2>&1'",
            f"docker buildx build --platform {f.host or 'linux/amd64'} -t {f.image} --push .",
        )
    has = f" (the image has {f.image_libc}'s)" if f.image_libc else ""
    return Hint(
        id="add_loader",
        title=f"Give {f.raw_path} its {f.libc or 'libc'} loader {loader}",
        text=(
            f"{f.raw_path} is dynamically linked against {f.libc or 'a libc'} and names the program loader "
            f"{loader}, which the image lacks{has}: the kernel then answers \"no such file or directory\" about "
            f"a file that exists. Fix: {fixes}."
        ),
        commands=commands,
    )


def strip_crlf(f: HintFacts) -> Hint:
    return Hint(
        id="strip_crlf",
        title=f"Convert {f.raw_path} to LF line endings",
        text=(
            f"The #! line of {f.raw_path} ends in a carriage return (saved with Windows line endings), so the "
            f"kernel looks for an interpreter named \"{(f.missing or '/bin/sh').rstrip()}\\r\", which does not "
            f"exist. Strip the CRs in the build (or in the repository) and make Git keep LF for scripts."
        ),
        commands=(
            f"sed -i 's/\\r$//' {f.path}",
            "echo '*.sh text eol=lf' >> .gitattributes && git add --renormalize .",
            "# Dockerfile: RUN sed -i 's/\\r$//' " + f.raw_path,
        ),
    )


def add_interpreter(f: HintFacts) -> Hint:
    interp = f.missing or "the interpreter"
    return Hint(
        id="add_interpreter",
        title=f"Install {interp} in the image, or change the #! line of {f.raw_path}",
        text=(
            f"{f.raw_path} names {interp} in its #! line and the image has no such file (a slim or distroless "
            f"base, or another distribution's path). Install it in the image, or point the #! line at the "
            f"interpreter the image has (`#!/usr/bin/env` finds it through PATH)."
        ),
        commands=(
            f"docker run --rm --entrypoint /bin/sh {f.image} -c {shlex.quote('head -n1 ' + f.raw_path + '; ls -l ' + interp)}",
            f"sed -i {shlex.quote('1s|^#!.*|#!/usr/bin/env ' + interp.rsplit('/', 1)[-1] + '|')} {f.path}",
        ),
    )


def repull_image(f: HintFacts) -> Hint:
    return Hint(
        id="repull_image",
        title=f"Re-pull {f.image}: its entrypoint is damaged on this host",
        text=(
            f"{f.raw_path} is damaged on this host (cut short or zero-filled: an interrupted pull, a full disk, a "
            f"power loss), while the image itself is most likely fine: remove the local copy and pull it again "
            f"rather than rebuilding. If a re-pull gives the same file, the image was published damaged."
        ),
        commands=(
            f"docker rm -f {f.container}",
            f"docker rmi -f {f.image} && docker pull {f.image}",
            f"docker run --rm --entrypoint /bin/sh {f.image} -c {shlex.quote('ls -l ' + f.raw_path)}",
        ),
    )


def match_cpu_level(f: HintFacts) -> Hint:
    if f.isa_level:
        need = f"x86-64-v{f.isa_level}"
        fix = (f"use an image built for the host's level (x86-64-v2 or baseline), or rebuild with "
               f"-march=x86-64-v{min(f.isa_level - 1, 2) or 1}; run it only on hosts whose CPU has {need}")
        commands = (
            "grep -o -w -E 'avx2|bmi2|fma|avx512f' /proc/cpuinfo | sort -u   # what this CPU has",
            "/lib64/ld-linux-x86-64.so.2 --help | grep -A4 'Subdirectories of glibc-hwcaps'",
            f"docker buildx build --platform linux/amd64 --build-arg CFLAGS=-march=x86-64-v2 -t {f.image} --push .",
        )
    else:
        need = "ARMv7"
        fix = ("use a linux/arm/v6 image (built for ARMv6, e.g. from Raspberry Pi OS or Alpine's armhf), "
               "or run this image on an ARMv7 or newer board")
        commands = (
            "grep -m1 'model name' /proc/cpuinfo",
            f"docker pull --platform linux/arm/v6 {f.image}",
            f"docker buildx build --platform linux/arm/v6 -t {f.image} --push .",
        )
    return Hint(
        id="match_cpu_level",
        title=f"This {f.cpu_level or 'CPU'} host cannot run code built for {need}",
        text=f"{f.raw_path} (or its libraries) needs {need}; this host's CPU is {f.cpu_level or 'older'}. Fix: {fix}.",
        commands=commands,
    )


def match_page_size(f: HintFacts) -> Hint:
    page = f.page_size or 16384
    return Hint(
        id="match_page_size",
        title=f"Rebuild {f.raw_path} for {page}-byte pages",
        text=(
            f"This kernel uses {page}-byte pages, and {f.raw_path} (or its allocator, jemalloc built with "
            f"--with-lg-page=12) assumes 4096. Rebuild with segments aligned to 64 KiB "
            f"(-Wl,-z,max-page-size=65536; jemalloc --with-lg-page=16), use a build that supports large pages, "
            f"or boot a 4K-page kernel (Raspberry Pi 5: kernel=kernel8.img in config.txt)."
        ),
        commands=(
            "getconf PAGESIZE",
            f"docker run --rm --entrypoint /bin/sh {f.image} -c {shlex.quote('readelf -lW ' + f.raw_path + ' | grep LOAD')}",
            "# build: LDFLAGS=-Wl,-z,max-page-size=65536; jemalloc: ./configure --with-lg-page=16",
        ),
    )


def run_native(f: HintFacts) -> Hint:
    foreign = f.binary_platform or "another platform"
    return Hint(
        id="run_native",
        title=f"Run the {f.host or 'native'} variant of {f.image}: it runs under QEMU emulation",
        text=(
            f"The container runs, but its entrypoint is built for {foreign} and this {f.host or ''} host runs it "
            f"through a binfmt_misc emulator (QEMU): many times slower, and crashes such as \"qemu: uncaught "
            f"target signal 11\" come from the emulator, not the program. Pull the {f.host or 'native'} variant, or "
            f"publish a multi-platform image that has it; keep emulation for builds."
        ),
        commands=(
            f"docker pull --platform {f.host or 'linux/amd64'} {f.image}",
            f"docker buildx imagetools inspect {f.image}",
            f"docker rm -f {f.container} && docker run --platform {f.host or 'linux/amd64'} {f.image}",
        ),
    )
