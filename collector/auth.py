"""Agent identity: which host id a connecting agent may report as. Pure.

Two ways to prove identity:
- **mTLS**: the agent's client certificate names its host id (CN, or a SAN
  ``URI:enoexec://host/ID`` / ``DNS:ID``); ``deploy/tls/make-certs.sh agent``
  makes such certificates.
- **Tokens**: a file of ``HOST_ID SHA256_HEX`` lines (the SHA-256 of each
  agent's token; the tokens themselves are never stored at the collector).
  ``enoexec-collector token HOST_ID`` makes a token and its line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from collector.errors import ConfigError

SAN_URI_PREFIX = "enoexec://host/"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Tokens:
    """host id -> SHA-256 of its token."""

    by_host: Mapping[str, str]

    def host_for(self, token: str) -> str | None:
        """The host id ``token`` is bound to, or None."""
        digest = token_hash(token)
        found = None
        for host, expected in self.by_host.items():
            if hmac.compare_digest(digest, expected):
                found = host
        return found


def parse_tokens(lines: Iterable[str], source: str = "tokens file") -> Tokens:
    out: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64 or any(c not in "0123456789abcdef" for c in parts[1].lower()):
            raise ConfigError(f"{source} line {n}: expected 'HOST_ID SHA256_HEX' (make one with: enoexec-collector token HOST_ID)")
        out[parts[0]] = parts[1].lower()
    return Tokens(out)


def load_tokens(path: Path, flag: str = "--tokens-file") -> Tokens:
    """The token hashes in ``path``; a file without one is refused: it would let nobody in."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{flag} {path}: {e.strerror or e}") from None
    tokens = parse_tokens(text.splitlines(), source=str(path))
    if not tokens.by_host:
        raise ConfigError(f"{flag} {path} holds no token, so every request would be refused; "
                          "add a line made by 'enoexec-collector token NAME'")
    return tokens


def bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The bearer token in gRPC invocation metadata, if any."""
    for key, value in metadata:
        if key.lower() == "authorization":
            v = value.decode() if isinstance(value, bytes) else value
            if v.lower().startswith("bearer "):
                return v[7:].strip()
    return None


def certificate_hosts(auth_context: Mapping[str, Iterable[bytes]]) -> tuple[str, ...] | None:
    """Host ids a client certificate names; None when the peer did not use TLS."""
    if list(auth_context.get("transport_security_type", [b""]))[:1] != [b"ssl"]:
        return None
    names: list[str] = []
    for cn in auth_context.get("x509_common_name", []):
        names.append(cn.decode(errors="replace"))
    for san in auth_context.get("x509_subject_alternative_name", []):
        s = san.decode(errors="replace")
        names.append(s[len(SAN_URI_PREFIX):] if s.startswith(SAN_URI_PREFIX) else s)
    return tuple(dict.fromkeys(n for n in names if n))
