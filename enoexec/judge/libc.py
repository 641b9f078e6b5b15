"""Which libc a program loader path belongs to, and where the other family keeps
its loader for the same platform. Pure.

A dynamically linked ELF names its loader in ``PT_INTERP``; when the image lacks
that file the kernel fails ``execve`` with ENOENT and the runtime says "no such
file or directory" about a file that exists. Knowing which loader the image does
have (musl's on Alpine, glibc's on Debian) says what to fix.
"""

from __future__ import annotations

from enoexec import platforms

MUSL, GLIBC = "musl", "glibc"

# platform -> (musl loader, glibc loader)
_LOADERS = {
    platforms.AMD64: ("/lib/ld-musl-x86_64.so.1", "/lib64/ld-linux-x86-64.so.2"),
    platforms.ARM64: ("/lib/ld-musl-aarch64.so.1", "/lib/ld-linux-aarch64.so.1"),
    platforms.ARM_V7: ("/lib/ld-musl-armhf.so.1", "/lib/ld-linux-armhf.so.3"),
    platforms.ARM_V6: ("/lib/ld-musl-armhf.so.1", "/lib/ld-linux-armhf.so.3"),
    platforms.I386: ("/lib/ld-musl-i386.so.1", "/lib/ld-linux.so.2"),
}


def family(loader: str) -> str:
    """"musl" for ``/lib/ld-musl-*.so.1``, "glibc" for ``ld-linux*``, else ""."""
    name = loader.rsplit("/", 1)[-1]
    if name.startswith("ld-musl-"):
        return MUSL
    if name.startswith("ld-linux") or name == "ld64.so.2" or name.startswith("ld64.so"):
        return GLIBC
    return ""


def other_loader(loader: str, platform: str) -> tuple[str, str]:
    """(family, path) of the other libc's loader for ``platform``; ("", "") if unknown."""
    pair = _LOADERS.get(platform)
    wanted = family(loader)
    if pair is None or not wanted:
        return "", ""
    return (GLIBC, pair[1]) if wanted == MUSL else (MUSL, pair[0])
