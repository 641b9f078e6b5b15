"""The JSON of ``check``'s answer (``/api/v1/check`` and ``enoexec-collector check --json``). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.check.entrypoint_read import PlatformRead
from collector.check.imagecheck import HostAnswer, ImageRead, Seen
from enoexec.judge import runs


def host_json(a: HostAnswer) -> dict[str, Any]:
    v = a.verdict
    return {
        "host_id": a.host_id, "host_platform": a.host_platform, "runnable": a.runnable, "status": a.status,
        "reason": a.reason, "chosen_platform": a.chosen_platform, "binary_platform": a.binary_platform,
        "cause": v.cause, "detail": v.explanation, "fix": v.fix, "hint_id": v.hint_id, "commands": list(v.commands),
        "note": v.note, "seen_hosts": sorted({s.host_id for s in a.seen}),
    }


def entrypoint_json(p: PlatformRead) -> dict[str, Any]:
    b = p.entry.binary
    return {
        "platform": p.platform, "manifest_digest": p.manifest_digest, "argv": list(p.argv),
        "path": b.path, "requested_path": b.requested_path, "kind": b.kind, "binary_platform": b.platform,
        "shebang": b.shebang, "description": b.description, "error": b.error, "missing": p.entry.missing,
        "bytes_read": p.bytes_read, "layers_read_whole": list(p.layers_read_whole),
        "seconds": round(p.seconds, 3), "cached": p.cached,
    }


def seen_json(seen: Sequence[Seen]) -> dict[str, Any]:
    return {
        "exits": len(seen), "hosts": sorted({s.host_id for s in seen}),
        "since": min((s.time for s in seen), default=None), "causes": sorted({s.cause for s in seen}),
    }


def answer_json(image: str, answers: Sequence[HostAnswer], *, platforms: Sequence[str], source: str,
                read: ImageRead | None = None, seen: Sequence[Seen] = ()) -> dict[str, Any]:
    hosts = [host_json(a) for a in answers]
    doc: dict[str, Any] = {
        "image": image,
        "platforms": list(platforms),
        "platforms_from": source,
        "hosts": hosts,
        "cannot_run": [h for h in hosts if not h["runnable"]],
        "unknown": [h for h in hosts if h["status"] == runs.UNKNOWN],
        "seen": seen_json(seen),
    }
    if read is not None:
        doc.update({
            "digest": read.digest,
            "entrypoints": [entrypoint_json(p) for p in read.platforms],
            "bytes_read": read.bytes_read,
            "seconds": round(read.seconds, 3),
            "cached": bool(read.platforms) and all(p.cached for p in read.platforms),
        })
    return doc
