"""``enoexec-agent``: run the daemon, diagnose one container, show host facts."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from agent import config, render
from agent.delivery import wire
from agent.errors import AgentError, ConfigError
from enoexec import __version__, clikit, eventjson

logger = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = clikit.Parser(
        prog="enoexec-agent",
        description="Catch containers that die of 'exec format error', say why, and stream the diagnosis to the enoexec collector.",
    )
    p.add_argument("--version", action="version", version=f"enoexec-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=clikit.Parser)
    run = sub.add_parser("run", help="watch the Docker Engine and stream diagnoses to the collector (the daemon)",
                         description="Watch the Docker Engine's events, diagnose every exec format error, keep it in a durable spool and stream it to the collector.")
    config.add_arguments(run)
    diag = sub.add_parser("diagnose", help="diagnose one container now (no collector needed)",
                          description="Diagnose why CONTAINER failed, from its log, its image and the header of its entrypoint file.")
    diag.add_argument("container", metavar="CONTAINER", help="container name or id")
    diag.add_argument("--json", action="store_true", help="print the event JSON the collector would receive")
    diag.add_argument("--docker-host", metavar="URL", help="Docker Engine URL (default $DOCKER_HOST, then the local socket)")
    diag.add_argument("--host-id", metavar="ID", help="host id to report (default /etc/machine-id, then the hostname)")
    diag.add_argument("--no-registry", action="store_true", help="do not ask the registry which platforms the image offers")
    facts = sub.add_parser("facts", help="print this host's facts", description="Print what the agent knows about this host.")
    facts.add_argument("--json", action="store_true", help="print JSON")
    facts.add_argument("--docker-host", metavar="URL", help="Docker Engine URL (default $DOCKER_HOST, then the local socket)")
    facts.add_argument("--host-id", metavar="ID", help="host id to report")
    demo = sub.add_parser("demo", help="run a foreign-architecture image built here, to see an exit caught",
                          description="Build an image for another CPU from scratch (no registry), load it and run it once. A running agent reports the exit within seconds.")
    demo.add_argument("--platform", default="linux/arm64", help="platform of the demo image (default linux/arm64)")
    demo.add_argument("--docker-host", metavar="URL", help="Docker Engine URL (default $DOCKER_HOST, then the local socket)")
    return p


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from agent import demo
    from agent.service import docker_client

    result = demo.run(docker_client(_docker_url(args, env)), args.platform)
    print(f"ran {result['image']}: exit {result['exit_code']}: {result['log'] or '(no log)'}")
    print(f"container {result['container'][:12]}; see it with: enoexec-agent diagnose {result['container'][:12]}")
    return 0


def _docker_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    return args.docker_host or env.get("ENOEXEC_DOCKER_HOST") or env.get("DOCKER_HOST") or config.DEFAULT_DOCKER_HOST


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from agent.delivery.backoff import Backoff
    from agent.errors import DockerUnavailable
    from agent.service import Agent
    from enoexec.logsetup import configure
    from enoexec.sdnotify import Notifier

    cfg = config.build(args, env)
    configure(cfg.log_level)
    if cfg.insecure:
        logger.warning("TLS disabled by --insecure: events travel to the collector in plaintext")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        backoff = Backoff(base=1.0, cap=30.0)
        while not stop.is_set():
            try:
                agent = await asyncio.to_thread(Agent, cfg)
            except DockerUnavailable as e:
                logger.warning("waiting for docker error=%s", e)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff.next())
                except asyncio.TimeoutError:
                    pass
                continue
            await agent.run(stop, Notifier.from_env(env))

    asyncio.run(main())
    return 0


def cmd_diagnose(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from agent.diagnosis.diagnose import Diagnoser, Exit
    from agent.engine.images import ImageInspector
    from agent.service import docker_client, gather_facts

    api = docker_client(_docker_url(args, env))
    host = gather_facts(api, args.host_id or env.get("ENOEXEC_HOST_ID", ""))
    try:
        attrs = api.inspect_container(args.container)
    except Exception as e:  # noqa: BLE001 - translated below
        raise AgentError(f"cannot inspect container {args.container!r}: {str(e).splitlines()[0]}") from e
    state = attrs.get("State") or {}
    if state.get("Running"):
        print(f"{args.container}: still running; nothing to diagnose")
        return 1
    diagnoser = Diagnoser(api, lambda: host, images=ImageInspector(api), lookup_registry=not args.no_registry)
    outcome = diagnoser.diagnose(Exit(attrs["Id"], int(state.get("ExitCode", 0)), (attrs.get("Config") or {}).get("Image", "")))
    if outcome.event is None:
        if args.json:
            print(json.dumps({"container": attrs["Id"], "exec_format_error": False}))
        else:
            print(f"{args.container}: exit code {state.get('ExitCode')}; not an exec format error")
        return 1
    doc = eventjson.to_json(wire.event_pb(outcome.event))
    doc["hint"] = render.hint_json(outcome.event)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render.event_text(outcome.event))
    return 0


def cmd_facts(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from agent.service import docker_client, gather_facts

    host = gather_facts(docker_client(_docker_url(args, env)), args.host_id or env.get("ENOEXEC_HOST_ID", ""))
    if args.json:
        print(json.dumps(eventjson.to_json(wire.host_pb(host)), indent=2))
    else:
        print(render.host_text(host))
    return 0


COMMANDS = {"run": cmd_run, "diagnose": cmd_diagnose, "facts": cmd_facts, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ: Mapping[str, Any] = os.environ if env is None else env
    return clikit.dispatch("enoexec-agent", COMMANDS, args, environ, config_errors=(ConfigError,), errors=(AgentError,))


if __name__ == "__main__":
    sys.exit(main())
