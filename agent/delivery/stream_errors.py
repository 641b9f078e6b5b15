"""What a failed collector stream means, in one line, and whether to retry it. Pure.

Only transient failures (network, collector restarting) are retried. A refusal
the collector will repeat forever (a bad host id, a certificate or token for
another host, no credentials) stops the agent: exit 2 with one line, and under
systemd ``RestartPreventExitStatus=2`` keeps it stopped until fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

PERMANENT_CODES = frozenset({"INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED"})


@dataclass(frozen=True)
class StreamFailure:
    permanent: bool
    message: str


def explain(code: str, details: str, target: str, *, tls: bool) -> StreamFailure:
    """The meaning of gRPC status ``code`` with ``details`` on the stream to ``target``."""
    d = (details or "").strip()
    low = d.lower()
    if code == "INVALID_ARGUMENT":
        return StreamFailure(True, f"the collector at {target} refused this agent: {d}")
    if code == "PERMISSION_DENIED":
        return StreamFailure(True, f"the collector at {target} refused this agent's identity: {d} "
                                   "(is the certificate or token issued for this --host-id?)")
    if code == "UNAUTHENTICATED":
        return StreamFailure(True, f"the collector at {target} does not know this agent: {d} "
                                   "(pass --tls-cert/--tls-key or --token-file the collector accepts)")
    if "failed parsing http/2" in low or "trying to connect an http1.x server" in low:
        return StreamFailure(False, f"{target} does not speak gRPC: is it the collector's HTTP port (9469)? "
                                    "point --collector at its gRPC port (7469)")
    if not tls and "socket closed" in low:
        return StreamFailure(False, f"the collector at {target} closed the plaintext connection: it probably speaks TLS; "
                                    "drop --insecure and pass --tls-ca (with --tls-cert/--tls-key or --token-file)")
    if tls and "socket closed" in low:
        return StreamFailure(False, f"the collector at {target} closed the TLS connection: it may require a client "
                                    "certificate (--tls-cert/--tls-key) signed by its CA")
    if tls and ("wrong_version_number" in low or "ssl handshake failed" in low or "handshake" in low and "ssl" in low):
        return StreamFailure(False, f"TLS handshake with the collector at {target} failed: if the collector runs with "
                                    f"--insecure, pass --insecure here too; else check --tls-ca ({_tail(d)})")
    if "cancelling all calls" in low or "server shutdown" in low:
        return StreamFailure(False, f"the collector at {target} ended the stream: it is stopping or restarting")
    if "store is unavailable" in low:
        return StreamFailure(False, f"the collector at {target} cannot store events now (its database is "
                                    "unavailable); it is retried with backoff")
    if "connection refused" in low:
        return StreamFailure(False, f"nothing answers at {target} (collector down or restarting?)")
    return StreamFailure(False, f"collector stream to {target} failed: {code} {_tail(d)}".strip())


def _tail(details: str) -> str:
    """The last, most specific clause of a gRPC details string, bounded."""
    return details.rsplit(": ", 1)[-1][:200] if details else ""
