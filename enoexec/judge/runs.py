"""Would this entrypoint run on this host? Pure: the verdict before a container starts.

``check`` (the collector, from a registry or an archive) and the agent's image
inventory (from the Docker Engine) both read the file the runtime would execute
(:mod:`reading` turns the bytes into facts) and hand its facts here. There is
one judge: the look-alikes a file shows before it runs come from
:func:`lookalike.before_run` (a missing loader or interpreter, a CR in the #!
line, a damaged ELF, a CPU level or page size the host lacks), the cause of an
exec format error from :mod:`classify`, the same code that explains a container
after it died. A runnable binary is ``runs`` even when the image's label is
wrong (that is said as a note); the label alone never decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from enoexec import hints
from enoexec.causes import MISSING_INTERPRETER, MISSING_LOADER
from enoexec.facts import BinaryFacts, Diagnosis, HostFacts, ImageFacts
from enoexec.judge import classify as classifier
from enoexec.judge import lookalike

RUNS, FAILS, UNKNOWN = "runs", "fails", "unknown"
# A look-alike only a read image shows (the runtime says "no such file or directory"):
# an entrypoint that is not there. The others are enoexec.causes'.
NOT_FOUND = "entrypoint_not_found"
__all__ = ["FAILS", "MISSING_INTERPRETER", "MISSING_LOADER", "NOT_FOUND", "RUNS", "UNKNOWN", "Entrypoint", "Verdict", "judge"]


@dataclass(frozen=True)
class Entrypoint:
    """What the file the runtime would execute turned out to be, for one platform of an image."""

    # The file, or for a script the interpreter its #! names (with the script's ``shebang``
    # and ``requested_path``), as :mod:`enoexec.judge.reading` makes it: ``missing`` names a
    # loader or interpreter the image lacks; kind "unreadable" with ``error``.
    binary: BinaryFacts
    not_found: bool = False  # the runtime would not find the entrypoint at all

    @property
    def missing(self) -> str:
        """The #! interpreter or ELF loader path the image lacks ("" none)."""
        return self.binary.missing


@dataclass(frozen=True)
class Verdict:
    status: str  # RUNS, FAILS or UNKNOWN
    cause: str = ""  # for FAILS: a cause (enoexec.causes) or NOT_FOUND
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
    runnable = classifier.is_runnable(binary, host)
    note = ""
    if runnable and classifier._mislabeled(image, binary):
        note = f"the image declares {image.declared_platform} but {binary.path} is built for {binary.platform}"
    found = lookalike.before_run(binary, host)
    if found is not None:
        return _hinted(found, binary, host, image, note)
    if binary.kind == "unreadable":
        return Verdict(UNKNOWN, explanation=binary.error or "the entrypoint could not be read")
    if binary.kind == "script":  # a #! the kernel takes, naming no absolute path to read
        return Verdict(RUNS, explanation=f"{binary.path} is a script for {binary.shebang}")
    if runnable:
        return Verdict(RUNS, explanation=f"{binary.path} is built for {binary.platform}, which {host.platform} runs", note=note)
    diagnosis = classifier.classify(binary, host, image)
    if diagnosis.cause == classifier.RUNNABLE:  # cannot happen after is_runnable; kept total
        return Verdict(RUNS, explanation=diagnosis.explanation)
    return _hinted(diagnosis, binary, host, image)


def _hinted(diagnosis: Diagnosis, binary: BinaryFacts, host: HostFacts, image: ImageFacts, note: str = "") -> Verdict:
    lookalike_cause = diagnosis.cause in lookalike.BEFORE_RUN_CAUSES
    hint = hints.hint_for(
        cause=diagnosis.cause, image_ref=image.ref, host_platform=host.platform, image_platform=image.declared_platform,
        binary_platform=binary.platform, available_platforms=image.available_platforms,
        emulated_platforms=host.emulated_platforms,
        binary_path=(binary.requested_path or binary.path) if lookalike_cause else binary.path,
        binary_kind=binary.kind, shebang=binary.shebang, missing=binary.missing, libc=binary.libc,
        image_libc=binary.image_libc, isa_level=binary.isa_level, cpu_level=host.cpu_level, page_size=host.page_size,
        load_align=binary.load_align,
    )
    return Verdict(FAILS, diagnosis.cause, _binary_said(diagnosis.explanation, binary), hint.id, hint.title,
                   tuple(hint.commands), note)


def _binary_said(explanation: str, binary: BinaryFacts) -> str:
    if binary.kind == "elf" and binary.platform and f"binary is {binary.platform}" not in explanation:
        return f"binary is {binary.platform}: {explanation}"
    return explanation


def _fails(cause: str, explanation: str, fix: str) -> Verdict:
    return Verdict(FAILS, cause, explanation, "", fix)
