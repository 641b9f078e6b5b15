"""What a remediation hint is, and the facts hint rules read. Pure data."""

from __future__ import annotations

from dataclasses import dataclass

INSPECT_ENTRYPOINT = (
    "docker image inspect --format "
    "'{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}'"
)


@dataclass(frozen=True)
class Hint:
    id: str  # short stable id; the `hint` label of enoexec_hint_info
    title: str  # one line
    text: str  # a few sentences: why it failed and what to do
    commands: tuple[str, ...]  # runnable commands, values filled in and quoted


@dataclass(frozen=True)
class HintFacts:
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
    missing: str = ""  # the loader or interpreter the image lacks
    libc: str = ""  # the libc family the binary's loader belongs to
    image_libc: str = ""  # the libc family whose loader the image has
    isa_level: int = 0  # x86-64 level the binary needs
    cpu_level: str = ""  # the host's
    page_size: int = 0  # the host's
    load_align: int = 0  # the binary's
