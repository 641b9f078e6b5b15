"""Judge one image present on the host against the host. Pure.

The entrypoint's facts come from the same reader the diagnosis uses (a
never-started helper container, :class:`agent.engine.binaries.BinaryReader`);
the verdict from :func:`enoexec.judge.runs.judge`, the same one ``check`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.diagnosis import entrypoint
from enoexec import platforms
from enoexec.facts import BinaryFacts, HostFacts, ImageFacts
from enoexec.judge import runs


@dataclass(frozen=True)
class Unrunnable:
    image: str
    image_id: str
    image_platform: str
    binary_platform: str
    cause: str
    explanation: str
    hint: str
    fix: str
    path: str


def command(attrs: dict[str, Any]) -> tuple[tuple[str, ...], str, str]:
    """(argv, PATH, working directory) from ``docker image inspect``."""
    c = attrs.get("Config") or {}
    argv = entrypoint.argv(c.get("Entrypoint"), c.get("Cmd"))
    return argv, entrypoint.path_from_env(c.get("Env")), str(c.get("WorkingDir") or "/")


def declared_platform(attrs: dict[str, Any]) -> str:
    return platforms.normalize(str(attrs.get("Os") or ""), str(attrs.get("Architecture") or ""), str(attrs.get("Variant") or ""))


def entry_of(binary: BinaryFacts) -> runs.Entrypoint:
    """What the reader found, as the judge takes it: a missing file is a finding, not "unreadable"."""
    if binary.kind == "unreadable" and binary.error.endswith("no such file"):
        if binary.shebang:  # the reader followed the #! line to an interpreter that is not there
            return runs.Entrypoint(binary, missing=binary.path, missing_kind=runs.MISSING_INTERPRETER)
        return runs.Entrypoint(binary, not_found=True)
    if binary.kind == "elf" and binary.missing and binary.missing == binary.interpreter:  # a deep read: no loader
        return runs.Entrypoint(binary, missing=binary.missing, missing_kind=runs.MISSING_LOADER)
    return runs.Entrypoint(binary)


def judge(name: str, image_id: str, attrs: dict[str, Any], binary: BinaryFacts, host: HostFacts) -> Unrunnable | None:
    """The finding for one image, or None when it runs here (or cannot be judged)."""
    declared = declared_platform(attrs)
    verdict = runs.judge(entry_of(binary), host, ImageFacts(name, image_id, declared_platform=declared))
    if verdict.status != runs.FAILS:
        return None
    return Unrunnable(name, image_id, declared, binary.platform, verdict.cause, verdict.explanation, verdict.hint_id,
                      verdict.fix, binary.path or binary.requested_path)
