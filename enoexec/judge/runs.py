"""Would this entrypoint run on this host? Pure: the verdict before a container starts.

``check`` (the collector, from a registry or an archive) and the agent's image
inventory (from the Docker Engine) both read the file the runtime would execute
and hand its facts here; the cause of a failure comes from :mod:`classify`, the
same classifier that explains a container after it died. A runnable binary is
``runs`` even when the image's label is wrong (that is said as a note); the
label alone never decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from enoexec import hints
from enoexec.causes import CRLF_SHEBANG, MISSING_INTERPRETER, MISSING_LOADER
from enoexec.facts import BinaryFacts, HostFacts, ImageFacts
from enoexec.judge import classify as classifier

RUNS, FAILS, UNKNOWN = "runs", "fails", "unknown"
# Look-alikes a read image shows before it starts (the kernel says "no such file or directory"):
# MISSING_INTERPRETER and MISSING_LOADER (enoexec.causes), and an entrypoint that is not there.
NOT_FOUND = "entrypoint_not_found"
__all__ = ["FAILS", "MISSING_INTERPRETER", "MISSING_LOADER", "NOT_FOUND", "RUNS", "UNKNOWN", "Entrypoint", "Verdict", "judge"]


@dataclass(frozen=True)
class Entrypoint:
    """What the file the runtime would execute turned out to be, for one platform of an image."""

    # The file, or for a script the interpreter its #! names (with the script's ``shebang``
    # and ``requested_path``), as the agent reads it; kind "unreadable" with ``error``.
    binary: BinaryFacts
    missing: str = ""  # the #! interpreter or ELF loader path the image lacks
    missing_kind: str = ""  # MISSING_INTERPRETER or MISSING_LOADER
    not_found: bool = False  # the runtime would not find the entrypoint at all


@dataclass(frozen=True)
class Verdict:
    status: str  # RUNS, FAILS or UNKNOWN
    cause: str = ""  # for FAILS: a cause (enoexec.causes) or a look-alike above
    explanation: str = ""
    hint_id: str = ""
    fix: str = ""  # the hint's title: what to do
    commands: tuple[str, ...] = ()
    note: str = ""  # e.g. "the image is mislabeled" for a binary that runs anyway


def judge(entry: Entrypoint, host: HostFacts, image: ImageFacts) -> Verdict:
    """The verdict for one host and the platform of the image it would pull."""
    binary = entry.binary
    if entry.not_found and not binary.requested_path:
        return Verdict(UNKNOWN, explanation="the image names no command (ENTRYPOINT or CMD): it runs what `docker run` is given")
    if entry.not_found:
        return _fails(NOT_FOUND, binary.error or f"{binary.requested_path or 'the entrypoint'} does not exist in the image",
                      "Fix the image's ENTRYPOINT/CMD or the file's path (and its execute bit).")
    if entry.missing and entry.missing_kind == MISSING_INTERPRETER and entry.missing.endswith("\r"):
        return _crlf(entry, host, image)
    if entry.missing:
        what = "interpreter" if entry.missing_kind == MISSING_INTERPRETER else "program loader"
        needs = binary.requested_path or binary.path
        return _fails(entry.missing_kind or MISSING_INTERPRETER,
                      f"{needs} needs the {what} {entry.missing}, which the image does not have",
                      f"Install {entry.missing} in the image, or point {needs} at one the image has.")
    if binary.kind == "unreadable":
        return Verdict(UNKNOWN, explanation=binary.error or "the entrypoint could not be read")
    if binary.kind == "script":  # a #! the kernel takes, naming no absolute path to read
        return Verdict(RUNS, explanation=f"{binary.path} is a script for {binary.shebang}")
    if classifier.is_runnable(binary, host):
        note = ""
        if classifier._mislabeled(image, binary):
            note = f"the image declares {image.declared_platform} but {binary.path} is built for {binary.platform}"
        return Verdict(RUNS, explanation=f"{binary.path} is built for {binary.platform}, which {host.platform} runs", note=note)
    diagnosis = classifier.classify(binary, host, image)
    cause = diagnosis.cause
    if cause == classifier.RUNNABLE:  # cannot happen after is_runnable; kept total
        return Verdict(RUNS, explanation=diagnosis.explanation)
    hint = hints.hint_for(
        cause=cause, image_ref=image.ref, host_platform=host.platform, image_platform=image.declared_platform,
        binary_platform=binary.platform, available_platforms=image.available_platforms,
        emulated_platforms=host.emulated_platforms, binary_path=binary.path, binary_kind=binary.kind,
        shebang=binary.shebang,
    )
    return Verdict(FAILS, cause, _binary_said(diagnosis.explanation, binary), hint.id, hint.title, tuple(hint.commands))


def _crlf(entry: Entrypoint, host: HostFacts, image: ImageFacts) -> Verdict:
    """A #! line saved with Windows line endings: the interpreter's name ends in a CR."""
    script, wanted = entry.binary.requested_path or entry.binary.path, entry.missing.rstrip("\r")
    hint = hints.hint_for(cause=CRLF_SHEBANG, image_ref=image.ref, host_platform=host.platform, binary_path=script,
                          missing=wanted)
    explanation = (f"the #! line of {script} ends in a carriage return (Windows line endings): the kernel looks for "
                   f"{wanted}\\r, which does not exist")
    return Verdict(FAILS, CRLF_SHEBANG, explanation, hint.id, hint.title, tuple(hint.commands))


def _binary_said(explanation: str, binary: BinaryFacts) -> str:
    if binary.kind == "elf" and binary.platform and f"binary is {binary.platform}" not in explanation:
        return f"binary is {binary.platform}: {explanation}"
    return explanation


def _fails(cause: str, explanation: str, fix: str) -> Verdict:
    return Verdict(FAILS, cause, explanation, "", fix)
