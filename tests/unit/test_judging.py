"""judging.plan: which exits are of the family, and what they cost to judge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.diagnosis import judging, runtime_message
from enoexec.judge.lookalike import Trigger

SOON, LATE = timedelta(seconds=1), timedelta(minutes=5)


def line(text: str) -> runtime_message.RuntimeFailure | None:
    return runtime_message.find(text, "/app", any_error=True)


@pytest.mark.parametrize(("code", "ran"), [(2, SOON), (3, SOON), (137, SOON), (143, SOON), (139, LATE), (132, None)])
def test_outside_the_family_nothing_is_read(code, ran) -> None:
    assert judging.plan(code, None, "ordinary output\n", ran) is None


def test_another_errno_named_by_the_runtime_is_not_ours() -> None:
    assert judging.plan(1, line("exec /app: permission denied\n"), "", SOON) is None


def test_enoent_reads_deep_and_keeps_runtime_evidence() -> None:
    p = judging.plan(1, line("exec /app: no such file or directory\n"), "", SOON)
    assert p is not None and (p.lookalike, p.deep, p.enoexec, p.evidence) == (Trigger.ENOENT, True, False, "runtime_message")


def test_enoexec_line_is_as_before() -> None:
    p = judging.plan(1, line("exec /app: exec format error\n"), "", SOON)
    assert p is not None and (p.enoexec, p.decisive_only, p.lookalike, p.deep) == (True, False, None, False)


def test_exec_failure_code_without_a_line_reads_the_file_as_before() -> None:
    p = judging.plan(1, None, "", None)
    assert p is not None and (p.evidence, p.enoexec, p.decisive_only, p.deep) == ("file_only", True, True, False)


def test_crash_in_the_first_seconds_and_loader_words() -> None:
    p = judging.plan(132, None, "", SOON)
    assert p is not None and (p.lookalike, p.deep, p.enoexec) == (Trigger.CRASH, True, False)
    p = judging.plan(127, None, "Fatal glibc error: CPU does not support x86-64-v3\n", LATE)
    assert p is not None and (p.lookalike, p.words, p.lookalike_evidence) == (Trigger.LOADER, "isa:3", "loader_message")
    assert judging.plan(3, None, "Fatal glibc error: CPU does not support x86-64-v3\n", SOON) is None


def test_exec_einval_is_judged_like_a_crash() -> None:
    p = judging.plan(1, line("exec /app: invalid argument\n"), "", LATE)
    assert p is not None and (p.lookalike, p.deep, p.evidence) == (Trigger.CRASH, True, "runtime_message")
