"""What both command-line entry points share: one-line errors, exit codes, --json errors.

Every error a command raises on purpose is an ``EnoexecError`` whose class carries
its exit code (enoexec.errors). ``dispatch`` turns it into one line on stderr,
``prog: error: ...``, and, when the command was asked for ``--json``, a JSON
object on stdout too, so a script that parses stdout always gets JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, TextIO

from enoexec import text
from enoexec.errors import ConfigError, EnoexecError

Command = Callable[[argparse.Namespace, Mapping[str, str]], int]

# gRPC's C core writes its own lines (``E1129 ... add_port.cc ...``) to stderr,
# read from the environment once when grpc is first imported. Our own messages
# say what went wrong, so the core stays quiet unless the user asks for it.
GRPC_QUIET = {"GRPC_VERBOSITY": "NONE", "GRPC_TRACE": ""}


def quiet_grpc(environ: MutableMapping[str, str]) -> None:
    """Silence gRPC's C-core logging unless the user set GRPC_VERBOSITY; call before grpc is imported."""
    for key, value in GRPC_QUIET.items():
        environ.setdefault(key, value)


def one_shot_logging() -> None:
    """Warnings of one-shot commands (diagnose, hints...) as short human lines on stderr."""
    from enoexec import logsetup

    logsetup.configure("warning", "human")


class UsageError(ConfigError):
    """Bad flags or arguments, found by the parser (``prog`` is the (sub)command)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{message} (see {prog} --help)")
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """Bad usage: one line naming what to fix, exit 2 (see ``parse``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(self.prog, message)


def parse(parser: argparse.ArgumentParser, prog: str, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code after saying the usage error (as JSON too with ``--json``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return parser.parse_args(argv)
    except UsageError as e:
        return report(prog, e, as_json="--json" in argv, out=sys.stdout, err=sys.stderr)


def one_line(message: object) -> str:
    """An error message as one printable line."""
    return " ".join(text.printable(str(message)).split("\n")).strip()


def report(prog: str, error: EnoexecError, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Say ``error`` (one line on ``err``; JSON on ``out`` too when asked) and return its exit code."""
    code = error.exit_code
    line = one_line(error)
    print(f"{prog}: error: {line}", file=err)
    if as_json:
        print(json.dumps({"error": str(error), "kind": type(error).__name__, "exit_code": code}), file=out)
    return code


def dispatch(
    prog: str,
    commands: Mapping[str, Command],
    args: argparse.Namespace,
    env: Mapping[str, Any],
) -> int:
    """Run the chosen command; an ``EnoexecError`` becomes its one line and its exit code."""
    try:
        return commands[args.command](args, env)
    except EnoexecError as e:
        return report(prog, e, as_json=bool(getattr(args, "json", False)), out=sys.stdout, err=sys.stderr)
    except KeyboardInterrupt:
        return 130
