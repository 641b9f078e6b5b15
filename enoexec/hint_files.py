"""Hints for exec format errors that are about the file, not the platform:
scripts without a shebang, a BOM before it, Windows/macOS binaries, empty files,
Git LFS pointers and saved error pages. Pure."""

from __future__ import annotations

import json
import shlex

from enoexec import platforms
from enoexec.hint_model import INSPECT_ENTRYPOINT, Hint, HintFacts

# Interpreter to suggest for a script without a shebang, by file extension.
_INTERPRETERS = {
    ".sh": "/bin/sh",
    ".bash": "/bin/bash",
    ".py": "/usr/bin/env python3",
    ".pl": "/usr/bin/env perl",
    ".rb": "/usr/bin/env ruby",
    ".js": "/usr/bin/env node",
}


def missing_shebang(f: HintFacts) -> Hint:
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


def bom(f: HintFacts) -> Hint:
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


def foreign_os(f: HintFacts) -> Hint:
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


def empty(f: HintFacts) -> Hint:
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


def not_a_binary(f: HintFacts) -> Hint:
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
        commands=(show, f"{INSPECT_ENTRYPOINT} {f.image}"),
    )


def investigate(f: HintFacts) -> Hint:
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
            f"{INSPECT_ENTRYPOINT} {f.image}",
            f"docker logs {f.container}",
            f"enoexec-agent diagnose {f.container}",
        ),
    )
