"""``enoexec-collector``: serve the fleet, print hints, check an image before deploying."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from collector import config, hints_view
from collector.errors import CollectorError, ConfigError
from enoexec import __version__, clikit, limits

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:9469"


def parser() -> argparse.ArgumentParser:
    p = clikit.Parser(prog="enoexec-collector", description="The enoexec collector: gathers exec-format-error diagnoses from a fleet of agents.")
    p.add_argument("--version", action="version", version=f"enoexec-collector {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=clikit.Parser)
    serve = sub.add_parser("serve", help="receive agents' streams; serve /metrics and the JSON API",
                           description="Receive agents' gRPC streams, store the events, serve Prometheus metrics, the JSON API and hints.")
    config.add_arguments(serve)
    hints = sub.add_parser("hints", help="print remediation hints for the fleet", description="Print the fleet's remediation hints, grouped by image, cause and host platform.")
    hints.add_argument("--url", default=None, help=f"collector HTTP address (default $ENOEXEC_URL, then {DEFAULT_URL})")
    _client_flags(hints)
    hints.add_argument("--json", action="store_true", help="print JSON")
    check = sub.add_parser("check", help="which fleet hosts could not run IMAGE", description="Before deploying: list the known hosts that could not run IMAGE, and why.")
    check.add_argument("image", metavar="IMAGE", help="image reference, e.g. registry.example/app:1.4")
    check.add_argument("--platform", action="append", default=[], metavar="P", help="a platform the image offers (repeatable); default: ask the image's registry")
    check.add_argument("--url", default=None, help=f"collector HTTP address (default $ENOEXEC_URL, then {DEFAULT_URL})")
    _client_flags(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    forget = sub.add_parser("forget", help="retire a host: drop it from the fleet view (its past exits stay counted)",
                            description="Retire a decommissioned host: it leaves /api/v1/hosts and its per-host gauges "
                                        "(so AgentDown clears); its exits stay counted. An agent that comes back registers again.")
    forget.add_argument("host_id", metavar="HOST_ID", help="the host id, as in 'enoexec-collector hints' or /api/v1/hosts")
    forget.add_argument("--url", default=None, help=f"collector HTTP address (default $ENOEXEC_URL, then {DEFAULT_URL})")
    _client_flags(forget)
    token = sub.add_parser("token", help="make a bearer token for an agent or an API client",
                           description="Print a new random token and the line to add to --tokens-file (agents) or --http-token-file (API clients).")
    token.add_argument("name", metavar="HOST_ID", help="the host id the token is bound to (or a client name, for the HTTP API)")
    return p


def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", default=None, help="file holding the bearer token for the collector's API [ENOEXEC_TOKEN_FILE]")
    p.add_argument("--cacert", default=None, help="CA certificate to verify an https:// collector [ENOEXEC_CACERT]")


def _client(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[dict[str, str], ssl.SSLContext | None]:
    headers: dict[str, str] = {}
    token_file = args.token_file or env.get("ENOEXEC_TOKEN_FILE")
    if token_file:
        try:
            headers["Authorization"] = "Bearer " + Path(token_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"--token-file {token_file}: {e.strerror or e}") from None
    cacert = args.cacert or env.get("ENOEXEC_CACERT")
    try:
        ctx = ssl.create_default_context(cafile=cacert) if cacert else None
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"--cacert {cacert}: {e}") from None
    return headers, ctx


def _get(base: str, path: str, params: list[tuple[str, str]] | None = None,
         headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None, *, method: str = "GET") -> dict[str, Any]:
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}, method=method), timeout=30, context=context) as res:
            return json.load(res)
    except urllib.error.HTTPError as e:
        try:
            detail = json.load(e).get("error", "")
        except (ValueError, AttributeError):
            detail = ""
        raise CollectorError(f"{url}: HTTP {e.code} {detail}".strip()) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise CollectorError(f"cannot reach the collector at {base} ({getattr(e, 'reason', e)}); pass --url") from None


def cmd_serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from collector.server import Collector
    from enoexec.logsetup import configure
    from enoexec.sdnotify import Notifier

    cfg = config.build(args, env)
    configure(cfg.log_level)
    if cfg.insecure:
        logger.warning("TLS disabled by --insecure: agents connect in plaintext and are not authenticated")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        collector = await asyncio.to_thread(Collector, cfg)
        await collector.run(stop, Notifier.from_env(env))

    asyncio.run(main())
    return 0


def cmd_hints(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    doc = _get(args.url or env.get("ENOEXEC_URL", DEFAULT_URL), "/api/v1/hints", None, *_client(args, env))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(hints_view.table(doc.get("hints", [])))
    return 0


def cmd_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    params = [("image", args.image)] + [("platform", p) for p in args.platform]
    doc = _get(args.url or env.get("ENOEXEC_URL", DEFAULT_URL), "/api/v1/check", params, *_client(args, env))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 1 if doc.get("cannot_run") else 0
    print(f"{doc['image']} offers {', '.join(doc['platforms']) or 'no platforms'} (from {doc['platforms_from']})")
    for v in doc["hosts"]:
        mark = "ok  " if v["runnable"] else "FAIL"
        print(f"  {mark} {v['host_id']:<24} {v['host_platform']:<14} {v['reason']:<18} {v.get('detail', '')}")
    if not doc["hosts"]:
        print("  no hosts known to the collector yet")
    bad = len(doc.get("cannot_run", []))
    print(f"{bad} host(s) could not run it" if bad else "every known host can run it")
    return 1 if bad else 0


def cmd_forget(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if not limits.valid_host_id(args.host_id):
        raise ConfigError(f"HOST_ID {args.host_id!r}: use letters, digits and . _ : @ - only")
    path = "/api/v1/hosts/" + urllib.parse.quote(args.host_id, safe="")
    _get(args.url or env.get("ENOEXEC_URL", DEFAULT_URL), path, None, *_client(args, env), method="DELETE")
    print(f"forgot host {args.host_id}; its past exits stay counted")
    return 0


def cmd_token(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from collector import auth

    if not limits.valid_host_id(args.name):
        raise ConfigError(f"HOST_ID {args.name!r}: use letters, digits and . _ : @ - only")
    token = auth.new_token()
    print(f"token (give to {args.name} in its --token-file, mode 0600): {token}")
    print(f"line for the collector's tokens file: {args.name} {auth.token_hash(token)}")
    return 0


COMMANDS = {"serve": cmd_serve, "hints": cmd_hints, "check": cmd_check, "forget": cmd_forget, "token": cmd_token}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ: Mapping[str, Any] = os.environ if env is None else env
    return clikit.dispatch("enoexec-collector", COMMANDS, args, environ, config_errors=(ConfigError,), errors=(CollectorError,))


if __name__ == "__main__":
    sys.exit(main())
