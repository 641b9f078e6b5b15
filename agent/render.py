"""Human-readable text for ``enoexec-agent diagnose`` and ``facts``.

Strings from images and containers are shown through ``enoexec.text.printable``:
control characters appear as ``\\xNN``, never reach the terminal raw."""

from __future__ import annotations

from typing import Any

from agent.model import Event, HostFacts
from enoexec import text

EVIDENCE = {
    "runtime_message": "runtime_message (the runtime said the file could not be executed)",
    "file_only": "file_only (no runtime message could be read; the file is one the kernel refuses and the exit code is the runtime's)",
    "exit_signal": "exit_signal (it died of a signal in its first seconds, and the file read shows why)",
    "loader_message": "loader_message (the loader's, glibc's or jemalloc's own words, and the file read agrees)",
}
FAILURES = {
    "exec_format_error": "exec format error (the kernel refused the file)",
    "start_failure": "start failure (a look-alike of exec format error)",
}


def _file_facts(b: Any) -> str:
    """What was read beyond the kind: size, a missing loader or interpreter, damage, needs."""
    facts = [f"{b.size} bytes"] if b.size >= 0 else []
    if b.missing:
        facts.append(f"needs {b.missing!r}, absent from the image"
                     + (f" (wants {b.libc}; the image has {b.image_libc or 'no libc loader'})" if b.libc else ""))
    if b.damage:
        facts.append(f"damaged: {b.damage}")
    if b.isa_level > 1:
        facts.append(f"marked for x86-64-v{b.isa_level}")
    if b.load_align:
        facts.append(f"segments aligned to {b.load_align}")
    return "; ".join(facts)


def hint_json(event: Event) -> dict[str, Any]:
    """The remediation hint for one event, as the collector would give it."""
    from agent.delivery import wire  # protobuf: only diagnose needs it, not facts
    from enoexec import hints

    return hints.hint_json(hints.hint_of(wire.event_pb(event)))


def event_text(event: Event) -> str:
    c, i, b, h = event.container, event.image, event.binary, event.host
    hint = hint_json(event)
    offered = (f"the registry offers {', '.join(i.available_platforms)}" if i.available_platforms is not None
               else "the registry's platforms not known (not asked, or no answer)")
    lines = [
        f"container  {c.name or c.id[:12]} ({c.id[:12]}) exit {c.exit_code}{' [removed]' if c.removed else ''}",
        *([f"pod        {c.kubernetes.namespace}/{c.kubernetes.pod} container {c.kubernetes.container}"
           + (f" attempt {c.kubernetes.restart_count}" if c.kubernetes.restart_count is not None else "")]
          if c.kubernetes is not None else []),
        f"runtime    {c.runtime_message or '(no runtime message could be read: log driver without reading, or the container is gone)'}",
        f"failure    {FAILURES.get(event.failure, event.failure)}",
        f"cause      {event.cause}: {event.explanation}",
        f"evidence   {EVIDENCE.get(event.evidence, event.evidence or '-')}" + (" [back-filled: from before the agent started]" if event.backfilled else ""),
        f"file       {b.requested_path or b.path}" + (f" -> {b.path}" if b.requested_path and b.path != b.requested_path else "") + f" (read from the {b.source or '?'})",
        f"kind       {b.description or b.kind}" + (f"; error: {b.error}" if b.error else ""),
        *([f"read       {_file_facts(b)}"] if _file_facts(b) else []),
        f"image      {i.ref or '-'} ({i.id[:19] or '-'}) declares {i.declared_platform or 'no platform'}; {offered}",
        f"host       {h.host_id} {h.platform}, kernel {h.kernel_release} ({h.kernel_machine}), "
        + (f"{h.engine} {h.engine_version or '?'}" if h.engine and h.engine != "docker" else f"docker {h.docker_version or '?'}"),
        f"runs       {', '.join(h.runnable_platforms) or h.platform}"
        + (f"; cpu {h.cpu_level}" if h.cpu_level else "") + f"; pages {h.page_size}",
        "",
        f"hint       [{hint['id']}] {hint['title']}",
        *("           " + line for line in hint["text"].splitlines()),
        *("  $ " + cmd for cmd in hint["commands"]),
    ]
    return text.printable("\n".join(lines))


def host_text(h: HostFacts, *, binfmt_mounted: bool = True) -> str:
    emus = [f"{e.name} -> {e.platform or '?'} ({'enabled' if e.enabled else 'disabled'}, flags {e.flags or '-'})" for e in h.emulators]
    rows = [
        ("host id", h.host_id),
        ("hostname", h.hostname),
        ("platform", h.platform),
        ("kernel", f"{h.kernel_release} ({h.kernel_machine})"),
        *([("engine", f"{h.engine} {h.engine_version or '?'}")] if h.engine and h.engine != "docker" else
          [("docker", f"{h.docker_version or '?'} ({h.docker_platform or '?'})")]),
        ("runtime", f"{h.default_runtime or '?'} {h.runtime_version}".strip()),
        ("cpu", h.cpu_model or "?"),
        ("cpu level", h.cpu_level or "?"),
        ("page size", str(h.page_size)),
        ("memory", f"{h.memory_bytes / 2**30:.1f} GiB" if h.memory_bytes else "?"),
        ("32-bit code", "yes" if h.can_run_32bit else "no"),
        ("runs", ", ".join(h.runnable_platforms) or "-"),
        ("binfmt_misc", "; ".join(emus) or ("none registered" if binfmt_mounted else "not mounted (no emulators can run)")),
    ]
    return text.printable("\n".join(f"{k:<12} {v}" for k, v in rows))
