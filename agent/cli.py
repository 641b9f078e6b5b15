"""``enoexec-agent``: run the daemon, diagnose one container, show host facts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

# Only what parsing needs: each command imports its own modules, so --help and
# facts pay for neither asyncio nor grpc nor protobuf (see benchmarks/agent_imports_bench.py).
from agent import config
from agent.errors import ConfigError, DockerUnavailable, EngineUnavailable, NoSuchContainer
from enoexec import __version__, clikit, text
from enoexec.errors import EXIT_FINDING, EXIT_OK

# Exit codes of ``diagnose`` beyond the shared ones (0 diagnosed, 2 usage,
# 3 Docker unreachable, 4 no such container); README.md, "Exit codes".
EXIT_NOT_EXEC_FORMAT = EXIT_FINDING
EXIT_STILL_RUNNING = 5

logger = logging.getLogger(__name__)

# The demo's platforms (agent.demo.TARGETS), written here so --help needs no import.
DEMO_PLATFORMS = ("linux/arm64", "linux/amd64", "linux/s390x", "linux/ppc64le", "linux/riscv64", "linux/arm/v7")


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
                          description="Diagnose why CONTAINER failed, from its log, its image and the header of its entrypoint file.",
                          epilog="exit codes: 0 an exec format error or a look-alike, diagnosed; 1 neither; 2 bad usage; "
                                 "3 Docker Engine unreachable; 4 no such container; 5 container still running")
    diag.add_argument("container", metavar="CONTAINER", help="container name or id")
    diag.add_argument("--json", action="store_true", help="print the event JSON the collector would receive")
    diag.add_argument("--docker-host", metavar="URL", help="Docker Engine URL (default $DOCKER_HOST, then the local socket)")
    add_engine_arguments(diag)
    diag.add_argument("--host-id", metavar="ID", help="host id to report (default /etc/machine-id, then the hostname)")
    diag.add_argument("--no-registry", action="store_true", help="do not ask the registry which platforms the image offers")
    diag.add_argument("--no-lookup-registry", dest="no_registry", action="store_true", help=argparse.SUPPRESS)
    facts = sub.add_parser("facts", help="print this host's facts", description="Print what the agent knows about this host.")
    facts.add_argument("--json", action="store_true", help="print JSON")
    facts.add_argument("--docker-host", metavar="URL", help="Docker Engine URL (default $DOCKER_HOST, then the local socket)")
    facts.add_argument("--host-id", metavar="ID", help="host id to report")
    facts.add_argument("--runtime", choices=("auto", "docker", "containerd"), help="engine to ask (default $ENOEXEC_RUNTIME, then auto)")
    facts.add_argument("--containerd-address", metavar="SOCKET", help="containerd's socket (default /run/containerd/containerd.sock, then k3s's)")
    demo = sub.add_parser("demo", help="run a foreign-architecture image built here, to see an exit caught",
                          description="Build an image for another CPU from scratch (no registry), load it and run it once. A running agent reports the exit within seconds.")
    demo.add_argument("--platform", choices=DEMO_PLATFORMS, metavar="PLATFORM",
                      help=f"platform of the demo image, one of {', '.join(DEMO_PLATFORMS)} "
                           "(default: the first this host neither runs nor emulates)")
    demo.add_argument("--docker-host", metavar="URL", help="Docker Engine URL (default $DOCKER_HOST, then the local socket)")
    return p


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=("auto", "docker", "containerd"), help="engine to ask (default $ENOEXEC_RUNTIME, then auto)")
    p.add_argument("--containerd-address", metavar="SOCKET", help="containerd's socket (default /run/containerd/containerd.sock, then k3s's)")
    p.add_argument("--containerd-namespaces", metavar="NS,NS", help="containerd namespaces to look in (default k8s.io,default)")
    p.add_argument("--containerd-root", metavar="DIR", help="containerd's root directory (default /var/lib/containerd)")
    p.add_argument("--cri-log-root", metavar="DIR", help="where pods' logs are (default /var/log/pods)")


def _engine_choice(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str]:
    from agent.engine import registry

    runtime = args.runtime or env.get("ENOEXEC_RUNTIME") or "auto"
    address = args.containerd_address or env.get("ENOEXEC_CONTAINERD_ADDRESS", "")
    return registry.choose(runtime, _docker_url(args, env), address)


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from agent import demo
    from agent.engine.connect import docker_client, gather_facts

    api = docker_client(_docker_url(args, env))
    host = gather_facts(api, "demo")
    if args.platform:
        demo.check_platform(host, args.platform)
    platform = args.platform or demo.choose_platform(host)
    result = demo.run(api, platform)
    log = text.oneline(result["log"] or "(no log)")
    print(f"ran {result['image']}: exit {result['exit_code']}: {log}")
    print(f"container {result['container'][:12]}; see it with: {self_command(sys.argv[0])} diagnose {result['container'][:12]}")
    return 0


def self_command(argv0: str, prog: str = "enoexec-agent") -> str:
    """How the user can run this program again: its name when PATH finds this very
    program, else its full path (e.g. ``.venv/bin/enoexec-agent``)."""
    here = Path(argv0).resolve()
    found = shutil.which(prog)
    if found and Path(found).resolve() == here:
        return prog
    if here.name == prog and here.is_file():
        return str(here)
    return f"{sys.executable} -m agent.cli"


def _docker_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.docker_host:
        return config.docker_url(args.docker_host)
    for var in ("ENOEXEC_DOCKER_HOST", "DOCKER_HOST"):
        if env.get(var):
            return config.docker_url(env[var], var)
    return config.DEFAULT_DOCKER_HOST


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import asyncio
    import signal

    cfg = config.build(args, env)  # every config error, before any log line or connection
    from enoexec.logsetup import Repeats, configure

    configure(cfg.log_level, cfg.log_format)
    from agent.delivery.backoff import Backoff
    from agent.errors import SpoolError
    from agent.service import Agent
    from enoexec.sdnotify import Notifier

    if cfg.insecure:
        logger.warning("TLS disabled by --insecure: events travel to the collector in plaintext")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        backoff = Backoff(base=1.0, cap=30.0)
        docker_down = Repeats(logger, "waiting for the container engine", every=300.0)
        while not stop.is_set():
            try:
                agent = await asyncio.to_thread(Agent, cfg)
            except EngineUnavailable as e:
                docker_down.failed(str(e), runtime=cfg.runtime, docker_host=cfg.docker_host)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff.next())
                except TimeoutError:
                    pass
                continue
            except SpoolError as e:  # a state dir we cannot write: no retry will fix it
                raise ConfigError(str(e)) from None
            docker_down.recovered()
            running = asyncio.create_task(agent.run(stop, Notifier.from_env(env)))
            refused = asyncio.create_task(agent.sender.failed.wait())
            await asyncio.wait({running, refused}, return_when=asyncio.FIRST_COMPLETED)
            refused.cancel()
            if agent.sender.fatal is not None:  # the collector refused us for good
                stop.set()
                await running
                raise agent.sender.fatal
            await running

    asyncio.run(serve())
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if not args.container.strip():
        raise ConfigError("CONTAINER is empty: give a container's name or id (docker ps -a)")
    url = _docker_url(args, env)
    host_id = config.check_host_id(args.host_id or env.get("ENOEXEC_HOST_ID", ""))
    engine, address = _engine_choice(args, env)
    if engine == "containerd":
        return _diagnose_containerd(args, env, address, host_id)
    import docker.errors
    import requests.exceptions

    from agent import render
    from agent.delivery import wire
    from agent.diagnosis.diagnose import Diagnoser, Exit
    from agent.engine.connect import docker_client, gather_facts
    from agent.engine.images import ImageInspector
    from enoexec import eventjson

    api = docker_client(url)
    try:
        attrs = api.inspect_container(args.container)
    except docker.errors.NotFound:
        raise NoSuchContainer(f"no such container: {args.container} (on the Docker Engine at {url})") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        explanation = getattr(e, "explanation", None) or str(e).splitlines()[0]
        raise DockerUnavailable(f"cannot inspect container {args.container!r} at {url}: {explanation}") from None
    host = gather_facts(api, host_id)
    state = attrs.get("State") or {}
    if state.get("Running"):
        return _outcome(args, attrs["Id"], EXIT_STILL_RUNNING, f"{args.container}: still running; nothing to diagnose")
    diagnoser = Diagnoser(api, lambda: host, images=ImageInspector(api), lookup_registry=not args.no_registry)
    outcome = diagnoser.diagnose(Exit(attrs["Id"], int(state.get("ExitCode", 0)), (attrs.get("Config") or {}).get("Image", "")))
    if outcome.event is None:
        message = f"{args.container}: exit code {state.get('ExitCode')}; not an exec format error"
        return _outcome(args, attrs["Id"], EXIT_NOT_EXEC_FORMAT, message)
    doc = eventjson.to_json(wire.event_pb(outcome.event))
    doc["hint"] = render.hint_json(outcome.event)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render.event_text(outcome.event))
    return EXIT_OK


def _diagnose_containerd(args: argparse.Namespace, env: Mapping[str, str], address: str, host_id: str) -> int:
    from datetime import datetime

    from agent import render
    from agent.delivery import wire
    from agent.engine.containerd.engine import ContainerdEngine
    from agent.engine.exits import Exit, parse_docker_time
    from enoexec import eventjson

    try:
        namespaces = config.namespaces(args.containerd_namespaces or env.get("ENOEXEC_CONTAINERD_NAMESPACES") or "k8s.io,default")
    except ValueError as e:
        raise ConfigError(f"--containerd-namespaces: {e}") from None
    engine = ContainerdEngine(
        address, namespaces=namespaces,
        root=Path(args.containerd_root or env.get("ENOEXEC_CONTAINERD_ROOT") or "/var/lib/containerd"),
        cri_log_root=Path(args.cri_log_root or env.get("ENOEXEC_CRI_LOG_ROOT") or "/var/log/pods"),
    )
    try:
        engine.client.ping()
        attrs = engine.containers.inspect_container(args.container)
        if attrs is None:
            raise NoSuchContainer(f"no such container: {args.container} (in namespaces {','.join(namespaces)} of containerd at {address})")
        host = engine.facts(host_id, Path("/proc"))
        state = attrs["State"]
        if state.get("Running"):
            return _outcome(args, attrs["Id"], EXIT_STILL_RUNNING, f"{args.container}: still running; nothing to diagnose")
        diagnoser = engine.diagnoser(lambda: host, lookup_registry=not args.no_registry, image_fallback=True,
                                     clock=lambda: datetime.now(UTC), daemon=False)
        when = parse_docker_time(state.get("FinishedAt", ""))
        outcome = diagnoser.diagnose(Exit(attrs["Id"], int(state.get("ExitCode", 0)), attrs["Config"]["Image"], time=when))
        if outcome.event is None:
            message = f"{args.container}: exit code {state.get('ExitCode')}; not an exec format error"
            return _outcome(args, attrs["Id"], EXIT_NOT_EXEC_FORMAT, message)
        event = engine.enrich(outcome.event)
    finally:
        engine.close()
    doc = eventjson.to_json(wire.event_pb(event))
    doc["hint"] = render.hint_json(event)
    print(json.dumps(doc, indent=2) if args.json else render.event_text(event))
    return EXIT_OK


def _outcome(args: argparse.Namespace, container_id: str, code: int, message: str) -> int:
    """A ``diagnose`` outcome that is not an event: one line, or its JSON."""
    if args.json:
        print(json.dumps({"container": container_id, "exec_format_error": False, "exit_code": code, "message": message}))
    else:
        print(text.printable(message))
    return code


def cmd_facts(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from agent import render
    from agent.engine.connect import docker_client, gather_facts
    from agent.host import binfmt

    url = _docker_url(args, env)
    host_id = config.check_host_id(args.host_id or env.get("ENOEXEC_HOST_ID", ""))
    engine, address = _engine_choice(args, env)
    try:
        if engine == "containerd":
            from agent.engine.containerd.engine import ContainerdEngine

            ctrd = ContainerdEngine(address)
            try:
                host = ctrd.facts(host_id, Path("/proc"))
            finally:
                ctrd.close()
        else:
            host = gather_facts(docker_client(url), host_id)
    except DockerUnavailable as e:  # the host's own facts are still worth showing
        logger.warning("without the Docker Engine's view: %s", e)
        from agent.host import hostfacts

        host = hostfacts.gather(host_id=host_id or None, proc_root=Path("/proc"), docker_info=None, docker_version=None)
    if args.json:
        from agent.delivery import wire  # the wire's JSON form: protobuf only for --json
        from enoexec import eventjson

        print(json.dumps(eventjson.to_json(wire.host_pb(host)), indent=2))
    else:
        print(render.host_text(host, binfmt_mounted=binfmt.mounted(Path("/proc"))))
    return EXIT_OK


COMMANDS = {"run": cmd_run, "diagnose": cmd_diagnose, "facts": cmd_facts, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    clikit.quiet_grpc(os.environ)  # before anything imports grpc
    args = clikit.parse(parser(), "enoexec-agent", argv)
    if isinstance(args, int):
        return args
    environ: Mapping[str, Any] = os.environ if env is None else env
    clikit.one_shot_logging()  # the daemons configure their own from their config
    return clikit.dispatch("enoexec-agent", COMMANDS, args, environ)


if __name__ == "__main__":
    sys.exit(main())
