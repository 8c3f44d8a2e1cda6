"""What every command module of :mod:`poselab.cli` shares: the command table entry, the exit
codes, and the argparse types that check numbers when the command line is parsed (so a bad
number is a usage error, exit 2, before anything runs)."""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable

from poselab.errors import CliError

__all__ = ["Command", "Parser", "run_script", "CliError", "OK", "FAILED", "USAGE", "INTERRUPTED", "seconds",
           "non_negative", "positive_int", "seed", "port", "add_seeds", "add_jobs"]

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class Command:
    """One row of a command table: ``poselab NAME`` with its help line, a function adding its
    arguments to its sub-parser, and the handler ``handler(args) -> exit code``. A group such as
    ``poselab data`` has ``subcommands`` (its own table) instead of a handler."""
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    handler: Callable[[argparse.Namespace], int] | None = None
    subcommands: dict[str, "Command"] = field(default_factory=dict)


class Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line, ``PROG: error: MESSAGE (see PROG
    --help)``, exit code 2 (argparse prints the whole usage block first). Sub-parsers are made
    of this class too."""

    def error(self, message: str):
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, convert, ok, expected: str):
    try:
        value = convert(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds > 0 (0, -1, nan, inf refused)."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0,
                   "a positive number of seconds")


def non_negative(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: --jobs, --workers, --max-images)."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def seed(text: str) -> int:
    """A seed: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer seed >= 0")


def port(text: str) -> int:
    """A TCP port number."""
    return _number(text, int, lambda v: 1 <= v <= 65535, "a port number 1-65535")


def add_seeds(parser: argparse.ArgumentParser, default, help: str) -> None:
    """``--seeds N [N ...]``, with ``--seed`` accepted as the same option (every command)."""
    parser.add_argument("--seeds", "--seed", dest="seeds", type=seed, nargs="+", default=default,
                        metavar="N", help=help)


def add_jobs(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--jobs", type=positive_int, default=None, metavar="N", help=help)


def run_script(command: Command, prog: str, argv: Iterable[str] | None = None,
               description: str | None = None) -> int:
    """One command of the tree as a script of its own (``data_scripts/fetch_coco.py`` is
    ``poselab data fetch``): the row's arguments and handler under the program name ``prog``,
    the same exit codes as :func:`poselab.cli.main`."""
    name = prog.removesuffix(".py")
    parser = Parser(prog=prog, description=description or command.help)
    command.add_arguments(parser)
    try:
        args = parser.parse_args(None if argv is None else [str(a) for a in argv])
    except SystemExit as exc:  # the parser printed the help (0) or a usage error (2)
        return USAGE if exc.code else OK
    args.prog = name
    return dispatch(command.handler, args, name)


def dispatch(handler, args: argparse.Namespace, name: str) -> int:
    """Run a command's handler: its exit code, a :class:`CliError` as one line on stderr and
    exit 2, Ctrl-C as exit 130 (the rule :func:`poselab.cli.main` and scripts share)."""
    try:
        return handler(args)
    except CliError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return INTERRUPTED
