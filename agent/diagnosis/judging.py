"""Judge one exit, before and after its file is read. Pure.

:func:`plan` decides from the exit code, the runtime's line, the log and the
container's state alone whether the exit is of the family at all and which file
reads it needs (none for a native program's own exit outside the family);
:func:`verdict` names the cause from the file read: an exec format error
(:mod:`classify`) or a look-alike (:mod:`lookalike`), with the failure kind and
the evidence that decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from agent.diagnosis import runtime_message
from agent.model import BinaryFacts, Diagnosis, HostFacts, ImageFacts
from enoexec.causes import EXEC_FORMAT_ERROR, START_FAILURE, UNKNOWN
from enoexec.judge import classify, lookalike

RUNTIME_MESSAGE = "runtime_message"
FILE_ONLY = "file_only"
EXIT_SIGNAL = "exit_signal"  # died of a signal in its first seconds; the file shows why
LOADER_MESSAGE = "loader_message"  # the loader's, glibc's or jemalloc's words, and the file agrees
# A crash this soon after the start is judged as a possible start failure.
EARLY_CRASH = timedelta(seconds=10)


@dataclass(frozen=True)
class Plan:
    """What an exit looks like before any file is read, and how to read it."""

    evidence: str  # of an exec format error found
    enoexec: bool  # the kernel may have refused the file with ENOEXEC
    decisive_only: bool  # ENOEXEC only with a file the kernel refuses
    lookalike: lookalike.Trigger | None = None
    words: str = ""
    deep: bool = False
    lookalike_evidence: str = ""  # of a look-alike found; "" the same as ``evidence``


def plan(exit_code: int, failure: runtime_message.RuntimeFailure | None, log: str,
         ran: timedelta | None) -> Plan | None:
    """Decide from the exit code, the runtime's line, the log and how long the
    container ran (``None``: unknown) alone: no file is read here."""
    if failure is not None and failure.enoexec:
        return Plan(RUNTIME_MESSAGE, True, failure.glued)
    if failure is not None and failure.error == runtime_message.ENOENT:
        # tini's ENOENT may be execvp's shell fallback after ENOEXEC: then only the file decides.
        tini = failure.runtime == "tini"
        return Plan(FILE_ONLY if tini else RUNTIME_MESSAGE, tini, True, lookalike.Trigger.ENOENT, deep=True,
                    lookalike_evidence=RUNTIME_MESSAGE)
    if failure is not None and failure.error == "invalid argument":
        # execve's EINVAL before its point of no return: segments the kernel cannot map
        # (a page size they were not built for) or a damaged file: judged like a crash.
        return Plan(RUNTIME_MESSAGE, False, True, lookalike.Trigger.CRASH, deep=True)
    if failure is not None:
        return None  # the runtime named the file and another error (EACCES...): not ours
    words = lookalike.loader_words(log) if log else ""
    if words and (exit_code in runtime_message.EXEC_FAILURE_EXIT_CODES
                  or exit_code in lookalike.CRASH_EXIT_CODES):
        # The loader spoke, so the kernel ran the file; an exec-failure code still lets a
        # refused file decide, as without the words.
        return Plan(FILE_ONLY, exit_code in runtime_message.EXEC_FAILURE_EXIT_CODES, True, lookalike.Trigger.LOADER,
                    words, deep=True, lookalike_evidence=LOADER_MESSAGE)
    if exit_code in runtime_message.EXEC_FAILURE_EXIT_CODES:
        return Plan(FILE_ONLY, True, True, lookalike.Trigger.FILE)
    if exit_code in lookalike.CRASH_EXIT_CODES and ran is not None and ran <= EARLY_CRASH:
        return Plan(EXIT_SIGNAL, False, True, lookalike.Trigger.CRASH, deep=True)
    return None


def verdict(plan: Plan, binary: BinaryFacts, host: HostFacts,
            image: ImageFacts) -> tuple[Diagnosis, str, str] | None:
    """(diagnosis, failure kind, evidence) from the file read, or ``None``."""
    if plan.enoexec:
        refusal = classify.classify(binary, host, image)
        refused = refusal.cause not in (classify.RUNNABLE, UNKNOWN) or (
            refusal.cause == UNKNOWN and not plan.decisive_only)
        # A script whose interpreter is missing is "unreadable" to classify: not a refusal.
        if refused and not (plan.lookalike is not None and binary.kind == "unreadable" and binary.missing):
            return refusal, EXEC_FORMAT_ERROR, plan.evidence
    if plan.lookalike is not None:
        found = lookalike.judge(binary, host, plan.lookalike, plan.words)
        if found is not None:
            return found, START_FAILURE, plan.lookalike_evidence or plan.evidence
    return None
