"""Alert rule tests feed counters shaped as the collector exports them.

A counter is born at its first value: ``enoexec_exits_total`` at the first exit,
``enoexec_collector_events_rejected_total{reason}`` at the first refusal. A rule
test whose counter starts at 0 lets ``increase()``/``rate()`` see a step that no
real series shows, and an alert can pass its test yet never fire (issue 20).
So a ``*_total`` input series of a rule test may start at 0 only when the
comment lines right above it say why, with the words "born at 0" (the
collector's own counters that do start at 0, such as a host's dropped-events
counter from its first Hello).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus").glob("*.test.yml"))
_SERIES = re.compile(r"""^\s*- series: ['"]([A-Za-z_:][\w:]*)""")
_VALUES = re.compile(r"""^\s*values: ['"]([^'"]*)['"]""")


def counters_born_at_zero(text: str) -> list[tuple[int, str, bool]]:
    """(line number, series name, explained) of each ``*_total`` input series whose first value is 0."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = _SERIES.match(line)
        if not m or not m.group(1).endswith("_total"):
            continue
        values = next((v.group(1) for v in map(_VALUES.match, lines[i + 1:i + 3]) if v), "")
        first = next((tok for tok in values.split() if not tok.startswith("_")), "")
        if not re.match(r"^0(?![\d.e])", first):
            continue
        comments = []
        for above in reversed(lines[:i]):
            if not above.strip().startswith("#"):
                break
            comments.append(above)
        found.append((i + 1, m.group(1), any("born at 0" in c for c in comments)))
    return found


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_no_counter_in_a_rule_test_starts_at_0_unless_it_says_why(path: Path) -> None:
    text = path.read_text()
    assert re.search(r"^\s*- series: '\w+_total", text, re.M), f"{path.name}: no counter series: is this the right file?"
    unexplained = [f"{path.name}:{n}: {name}" for n, name, explained in counters_born_at_zero(text) if not explained]
    assert not unexplained, "counter series starting at 0 without a comment saying why (\"born at 0\"): " + ", ".join(unexplained)


def test_the_lint_sees_counters_that_start_at_0() -> None:
    text = """
      - series: 'enoexec_collector_events_rejected_total{reason="x"}'
        values: '0x10 1+1x9'
      - series: 'enoexec_exits_total{image="a"}'
        values: '_x5 0 1x40'
      # born at 0: the collector exports every known host's counter from its first Hello
      - series: 'enoexec_agent_dropped_events_total{host="h"}'
        values: '0x90'
      - series: 'enoexec_exits_total{image="b"}'
        values: '_x10 3x30'
      - series: 'enoexec_agent_spool_events{host="h"}'
        values: '0x10'
      - series: 'enoexec_exits_total{image="c"}'
        values: '0.5x10'
    """
    assert counters_born_at_zero(text) == [
        (2, "enoexec_collector_events_rejected_total", False),
        (4, "enoexec_exits_total", False),
        (7, "enoexec_agent_dropped_events_total", True),
    ]
