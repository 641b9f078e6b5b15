"""What both command-line entry points share: one-line usage errors, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

Command = Callable[[argparse.Namespace, Mapping[str, str]], int]


class Parser(argparse.ArgumentParser):
    """Bad usage: one line naming what to fix, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def dispatch(
    prog: str,
    commands: Mapping[str, Command],
    args: argparse.Namespace,
    env: Mapping[str, Any],
    *,
    config_errors: tuple[type[BaseException], ...],
    errors: tuple[type[BaseException], ...],
) -> int:
    """Run the chosen command: 0 on success, 2 for bad config, 1 for other known errors."""
    try:
        return commands[args.command](args, env)
    except config_errors as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except errors as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
