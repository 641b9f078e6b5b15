"""Work out which file a container executes. Pure path logic, no Docker.

``Entrypoint`` + ``Cmd`` give argv; a bare ``argv[0]`` is searched in the
container's ``PATH``; symlinks are followed inside the container's filesystem
with relative and absolute targets, chains and loops bounded.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_SYMLINKS = 40  # the kernel's own limit (MAXSYMLINKS)
MAX_INTERPRETER_DEPTH = 4  # binfmt_script recursion limit in Linux


def argv(entrypoint: Sequence[str] | None, cmd: Sequence[str] | None) -> tuple[str, ...]:
    """The argv Docker executes: Entrypoint followed by Cmd (shell form is already
    ``["/bin/sh", "-c", ...]`` in the config)."""
    return tuple(entrypoint or ()) + tuple(cmd or ())


def path_from_env(env: Sequence[str] | None) -> str:
    """The ``PATH`` in a container's ``Config.Env`` list, or Docker's default."""
    for item in env or ():
        if item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


def candidates(argv0: str, path: str = DEFAULT_PATH, workdir: str = "/") -> tuple[str, ...]:
    """Absolute paths to try for ``argv0``, in lookup order."""
    if not argv0:
        return ()
    if "/" in argv0:
        return (posixpath.normpath(posixpath.join(workdir or "/", argv0)),)
    out = []
    for d in path.split(":"):
        d = d or "."
        out.append(posixpath.normpath(posixpath.join(workdir or "/", d, argv0)))
    return tuple(dict.fromkeys(out))


def follow(link_path: str, target: str) -> str:
    """Where the symlink at ``link_path`` with ``target`` points, as an absolute path
    inside the container (``..`` never climbs above ``/``)."""
    base = posixpath.dirname(link_path) if not target.startswith("/") else "/"
    joined = posixpath.normpath(posixpath.join(base, target))
    return "/" + joined.lstrip("/")


def shebang_interpreter(shebang: str) -> str:
    """The interpreter a ``#!`` line names: ``/usr/bin/env python3 -u`` -> ``/usr/bin/env``."""
    parts = shebang.strip().split()
    return parts[0] if parts else ""
