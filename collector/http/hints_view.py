"""Hint groups as JSON and as a table for ``enoexec-collector hints``. Pure."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from collector.store.records import HintGroup
from enoexec import text


def group_json(g: HintGroup) -> dict[str, Any]:
    hint = (g.sample or {}).get("hint") or {}
    return {
        "image": g.image,
        "cause": g.cause,
        "host_platform": g.host_platform,
        "hint": g.hint_id,
        "title": hint.get("title", ""),
        "text": hint.get("text", ""),
        "commands": hint.get("commands", []),
        "hosts": g.hosts,
        "exits": g.exits,
        "first_seen": g.first_seen.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "last_seen": g.last_seen.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "example_hosts": list(g.example_hosts),
        "binary_platform": ((g.sample or {}).get("binary") or {}).get("platform", ""),
    }


def table(groups: list[dict[str, Any]]) -> str:
    """A readable table, one hint with its commands per block; image-made strings escaped."""
    if not groups:
        return "no exec format errors recorded: nothing to fix\n"
    out = []
    for g in groups:
        out.append(
            f"{g['image']}  cause={g['cause']}  host_platform={g['host_platform']}  "
            f"hosts={g['hosts']} exits={g['exits']}  last={g['last_seen']}"
        )
        out.append(f"  [{g['hint']}] {g['title']}")
        for line in str(g.get("text", "")).splitlines():
            out.append(f"  {line}")
        for cmd in g.get("commands", []):
            out.append(f"    $ {cmd}")
        if g.get("example_hosts"):
            out.append(f"  e.g. on {', '.join(g['example_hosts'])}")
        out.append("")
    return text.printable("\n".join(out).rstrip() + "\n")
