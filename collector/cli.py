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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from collector import config
from collector.errors import CollectorUnavailable, ConfigError
from collector.http import hints_view
from enoexec import __version__, clikit, limits, platforms, settings, text
from enoexec.errors import EXIT_FINDING, EXIT_NOT_FOUND, EXIT_OK, NotFound

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:9469"

# ``check``: 0 every known host can run IMAGE, 1 some cannot, 2 bad usage,
# 3 collector (or the registry it asked) unreachable, 4 no hosts known yet.
# README.md, "Exit codes".
EXIT_SOME_CANNOT = EXIT_FINDING
EXIT_NO_HOSTS = EXIT_NOT_FOUND
CHECK_EPILOG = ("IMAGE's entrypoint is read from its registry (or from a docker save / OCI archive file) and judged per host; "
                "--target/--facts judge without a collector (a CI gate: deploy/ci/). "
                "exit codes: 0 every known host can run IMAGE; 1 some host cannot (--strict: or is unknown); 2 bad usage; "
                "3 collector or registry unreachable; 4 no hosts known to the collector")


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
    check = sub.add_parser("check", help="which fleet hosts could not run IMAGE", description="Before deploying: each known host (or --target platform) runs IMAGE, fails (cause, fix) or is unknown (why), from IMAGE's real entrypoint and the exits the fleet saw.",
                           epilog=CHECK_EPILOG)
    check.add_argument("image", metavar="IMAGE", help="image reference, e.g. registry.example/app:1.4, or a docker save / OCI archive file")
    check.add_argument("--platform", action="append", default=[], metavar="P", help="a platform the image offers (repeatable): judge by this label alone; default: read the image's entrypoint from its registry")
    check.add_argument("--url", default=None, help=f"collector HTTP address (default $ENOEXEC_URL, then {DEFAULT_URL})")
    _client_flags(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--target", action="append", default=[], metavar="P", help="judge against this platform instead of the collector's hosts (repeatable; no collector needed)")
    check.add_argument("--facts", default=None, metavar="FILE", help="judge against the hosts in FILE (enoexec-agent facts --json, or a saved /api/v1/hosts); no collector needed")
    check.add_argument("--strict", action="store_true", help="exit 1 also when a host's answer is unknown (the entrypoint could not be read)")
    check.add_argument("--check-registries", default=None, metavar="LIST", help="registries this process may read from with --target/--facts (default: the well-known ones and IMAGE's own)")
    check.add_argument("--max-bytes", type=_above_zero(settings.positive_int), default=512 * 1024 * 1024, metavar="N", help="stop reading layers after N bytes (local reads)")
    check.add_argument("--timeout", type=_above_zero(settings.positive_float), default=60.0, metavar="S", help="stop reading after S seconds (local reads)")
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


def _above_zero(convert: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse type that says why a value is refused (``expected a number above 0, got -1``)."""
    def parse(value: str) -> Any:
        try:
            return convert(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


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


def base_url(value: str, where: str = "--url") -> str:
    """The collector's HTTP address as a URL: ``localhost:9469`` means ``http://localhost:9469``."""
    v = value.strip()
    if "://" not in v:
        v = "http://" + v
    parts = urllib.parse.urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} {value!r}: pass the collector's HTTP address, e.g. http://localhost:9469 or https://collector:9469")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"{where} {value!r}: the port must be a number from 0 to 65535") from None
    return v.rstrip("/")


def _url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.url:
        return base_url(args.url)
    if env.get("ENOEXEC_URL"):
        return base_url(env["ENOEXEC_URL"], "ENOEXEC_URL")
    return DEFAULT_URL


def _get(base: str, path: str, params: list[tuple[str, str]] | None = None,
         headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None, *, method: str = "GET") -> dict[str, Any]:
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}, method=method), timeout=30, context=context) as res:
            return json.load(res)
    except urllib.error.HTTPError as e:
        try:
            detail = json.load(e).get("error", "")
        except (ValueError, AttributeError):
            detail = ""
        said = f"{base}{path}: HTTP {e.code}" + (f": {detail}" if detail else "")
        if e.code == 401 or (e.code == 403 and "--check-registries" not in detail):
            raise ConfigError(f"{said} (pass --token-file with a token the collector accepts)") from None
        if e.code < 500:  # the request is wrong (or --url names no collector): asking again will not help
            raise HTTPRefused(said, e.code, detail) from None
        raise CollectorUnavailable(said) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise ConfigError(f"cannot verify the collector's certificate at {base} ({reason.verify_message}): "
                              "pass --cacert with the CA that signed it") from None
        raise CollectorUnavailable(f"cannot reach the collector at {base} ({getattr(e, 'reason', e)}); is it running? pass --url") from None


class HTTPRefused(ConfigError):
    """The collector answered 4xx: the request is wrong, or --url does not name a collector's API."""

    def __init__(self, said: str, status: int, detail: str) -> None:
        super().__init__(said)
        self.status, self.detail = status, detail


def _collector_libraries() -> None:
    """``serve`` needs the [collector] extra; an agent-only install says so in one line."""
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ModuleNotFoundError as e:
        raise ConfigError(f"the collector's libraries are not installed ({e.name} is missing): "
                          "pip install 'enoexec[collector]' (or 'enoexec[postgres]' for PostgreSQL)") from None


def cmd_serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    _collector_libraries()
    from collector.server import Collector
    from enoexec.logsetup import configure
    from enoexec.sdnotify import Notifier

    cfg = config.build(args, env)
    config.check_db(cfg.db)
    configure(cfg.log_level, cfg.log_format)
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
    doc = _get(_url(args, env), "/api/v1/hints", None, *_client(args, env))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(hints_view.table(doc.get("hints", [])))
    return EXIT_OK


def cmd_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    for p in args.platform:  # the collector checks the same; saying it here needs no collector
        if not platforms.is_known(platforms.parse(p)):
            raise ConfigError(f"--platform {p!r}: expected os/arch[/variant] with a known architecture, such as linux/arm64")
    local = bool(args.target or args.facts or Path(args.image).is_file())
    if local and args.platform:
        raise ConfigError("--platform judges a label through the collector; with --target, --facts or an archive file the image itself is read")
    if local:
        from collector import check_local

        hosts = check_local.targets(args.target) + (check_local.facts_file(args.facts) if args.facts else [])
        base, client = _url(args, env), _client(args, env)
        doc = check_local.run(args.image, hosts=hosts or None, fetch=lambda path, params: _get(base, path, params, *client),
                              check_registries=args.check_registries, max_bytes=args.max_bytes, timeout=args.timeout)
    else:
        params = [("image", args.image)] + [("platform", p) for p in args.platform]
        doc = _get(_url(args, env), "/api/v1/check", params, *_client(args, env))
    code = check_exit_code(doc, strict=args.strict)
    if args.json:
        print(json.dumps({**doc, "exit_code": code}, indent=2))
    else:
        sys.stdout.write(check_table(doc))
    return code


def check_exit_code(doc: Mapping[str, Any], *, strict: bool = False) -> int:
    if not doc.get("hosts"):
        return EXIT_NO_HOSTS
    if doc.get("cannot_run") or (strict and doc.get("unknown")):
        return EXIT_SOME_CANNOT
    return EXIT_OK


def check_table(doc: Mapping[str, Any]) -> str:
    """``check``'s answer for a person: one row per host, columns as wide as their values. Pure."""
    hosts = doc.get("hosts") or []
    lines = [f"{doc['image']} offers {', '.join(doc['platforms']) or 'no platforms'} (from {doc['platforms_from']})"]
    for e in doc.get("entrypoints") or []:
        what = e["binary_platform"] or e["kind"]
        cost = "cached" if e["cached"] else f"{e['bytes_read']} bytes read in {e['seconds']:g}s"
        whole = (f"; read whole: {', '.join(e['layers_read_whole'])}" if e["layers_read_whole"] and e["bytes_read"] > 1 << 20 else "")
        whole += f"; read to its end: {', '.join(e['files_read_to_end'])}" if e.get("files_read_to_end") else ""
        if e.get("missing"):  # the interpreter or loader the image lacks, as the kernel names it (a CR shown escaped)
            said = f"{e['requested_path'] or e['path']} needs {e['missing']!r}, which the image lacks"
        else:
            said = (f"{e['path'] or e['requested_path'] or '(no command)'} is {what}"
                    f"{' (' + e['error'] + ')' if e['error'] else ''}")
        lines.append(f"  {e['platform'] or '?'}: {said} [{cost}{whole}]")
    w_id = max([7, *(len(v["host_id"]) for v in hosts)])
    w_pf = max([8, *(len(v["host_platform"]) for v in hosts)])
    w_re = max([6, *(len(v.get("cause") or v["reason"]) for v in hosts)])
    for v in hosts:
        status = v.get("status", "runs" if v["runnable"] else "fails")
        mark = {"runs": "ok  ", "fails": "FAIL"}.get(status, "ok? " if v["runnable"] else "??  ")
        if not v["runnable"]:
            mark = "FAIL"
        row = f"  {mark} {v['host_id']:<{w_id}}  {v['host_platform']:<{w_pf}}  {v.get('cause') or v['reason']:<{w_re}}  {v.get('detail', '')}"
        if v.get("fix") and status == "fails":
            row += f"  fix: {v['fix']}"
        if v.get("note"):
            row += f"  (note: {v['note']})"
        lines.append(row.rstrip())
    seen = doc.get("seen") or {}
    if seen.get("exits"):
        lines.append(f"the fleet saw it fail {seen['exits']} time(s) on {len(seen['hosts'])} host(s) since {seen['since']}: "
                     f"{', '.join(seen['causes'])}")
    bad, unknown = len(doc.get("cannot_run") or []), len(doc.get("unknown") or [])
    if not hosts:
        lines.append("no hosts known to the collector yet: nothing was checked (is --url the right collector?)")
    else:
        if bad:
            lines.append(f"{bad} host(s) could not run it, of {len(hosts)} known")
        elif unknown:  # not "every known host can run it": some could not be judged
            lines.append(f"{len(hosts) - unknown} of {len(hosts)} known host(s) can run it")
        else:
            lines.append(f"every known host can run it ({len(hosts)})")
        if unknown:
            lines.append(f"{unknown} host(s) unknown: the entrypoint could not be judged (see above)")
    return text.printable("\n".join(lines) + "\n")


def cmd_forget(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if not limits.valid_host_id(args.host_id):
        raise ConfigError(f"HOST_ID {args.host_id!r}: use letters, digits and . _ : @ - only")
    path = "/api/v1/hosts/" + urllib.parse.quote(args.host_id, safe="")
    try:
        _get(_url(args, env), path, None, *_client(args, env), method="DELETE")
    except HTTPRefused as e:
        if e.status == 404 and e.detail.startswith("no host"):  # the API's own answer, not a wrong --url
            raise NotFound(str(e)) from None
        raise
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
    clikit.quiet_grpc(os.environ)  # before anything imports grpc
    args = clikit.parse(parser(), "enoexec-collector", argv)
    if isinstance(args, int):
        return args
    environ: Mapping[str, Any] = os.environ if env is None else env
    clikit.one_shot_logging()  # the daemons configure their own from their config
    return clikit.dispatch("enoexec-collector", COMMANDS, args, environ)


if __name__ == "__main__":
    sys.exit(main())
