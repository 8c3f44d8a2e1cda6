"""The ``poselab`` command: run chapters, open the lab, train and record, make data.

    poselab run [CHAPTER ... | --all] [--fast] [--out DIR] [-p name=value ...] [--timeout S]
    poselab lab [--port N] [--no-browser]
    poselab list
    poselab train RECIPE [RECIPE ...] [--preset P] [--seeds N ...] [--data D] [--device D]
    poselab train RECIPE [--out DIR] [--no-cache] [--record FILE] [--jobs N]
    poselab recipes
    poselab arena [--recipes R ...] [--seeds N ...] [--data D] [--preset P] [--device D] [--out DIR]
    poselab results [--recipe NAME];  poselab results verify FILE [--seeds N ...] [--tol T]
    poselab replicate CHAPTER [--preset P] [--seeds N ...] [--jobs N] [--device D] [--recipes R ...] [--plan]
    poselab data synth [--root DIR] [--split train|val]
    poselab data fetch --out DIR [--split val2017|train2017] [--max-images N] [--from-dir DIR]
    poselab data generate --out DIR --n-images N [--seed N] [--split NAME] [--workers N]
    poselab assign [NAME ...] [--out DIR];  poselab grade SUBMISSION [--assignment NAME]
    poselab index [--write-readme | --check]
    poselab bench [--quick] [--only NAME ...] [--out FILE]
    poselab doctor [--device auto|cpu|cuda|mps]

A chapter is named by its number (``4`` or ``04``), its file stem (``04_hdm``) or the stem
without its number (``hdm``). Every command that takes seeds takes ``--seeds N [N ...]``
(``--seed`` is the same option; ``data generate`` takes one ``--seed N``). ``run`` writes the executed notebooks and a ``claims.json``
ledger into ``--out``.

Exit codes, the same for every command:

* 0: done (for a check: it passed).
* 1: the command ran and failed: a chapter failed or a math claim does not hold (``run``), a
  record does not reproduce (``results verify``), the README index is stale (``index --check``),
  a benchmark script failed (``bench``), a download could not be completed (``data fetch``).
* 2: refused before anything ran: a usage error from the parser (unknown command or option,
  missing argument, a bad number such as ``--jobs 0``), or a :class:`~poselab.errors.CliError`
  (unknown chapter, recipe or preset, a bad ``-p`` parameter, an ``--out`` that is a file, ...).
  The reason is one line on stderr, ``poselab: error: ...``, never a traceback.
* 130: interrupted (Ctrl-C).

One parser tree: each module of this package (``chapters``, ``training``, ``data``,
``teaching``, ``tools``) holds a table ``COMMANDS`` of :class:`~poselab.cli._common.Command`
rows (help, arguments, handler); :func:`build_parser` makes the tree from the tables and
:func:`main` calls the parsed command's handler. The engine (:mod:`poselab.experiments`) never
imports this package, and ``poselab --help`` imports neither torch nor numpy.
"""
from __future__ import annotations

import argparse
import sys

from poselab.errors import CliError
from poselab.labs import CHAPTER_PATTERN, labs_dir, list_chapters, resolve_chapters

from . import chapters, data, teaching, tools, training
from ._common import OK, USAGE, Command, Parser, dispatch
from .chapters import check_parameters, lab, parse_parameters, run

__all__ = ["main", "build_parser", "COMMANDS", "run", "lab", "parse_parameters",
           "check_parameters", "CliError", "labs_dir", "list_chapters", "resolve_chapters",
           "CHAPTER_PATTERN"]

#: Every top-level command, in the order ``poselab --help`` lists them.
COMMANDS: dict[str, Command] = {**chapters.COMMANDS, **training.COMMANDS, **data.COMMANDS,
                                **teaching.COMMANDS, **tools.COMMANDS}

EPILOG = ("exit codes: 0 done; 1 the command ran and failed (a chapter, a math claim, a record "
          "that does not reproduce, a stale index, a failed download); 2 refused before running "
          "(usage error, unknown chapter/recipe/preset, bad value); 130 interrupted. Commands "
          "that take seeds take --seeds N [N ...] (--seed is the same option; data generate "
          "takes one --seed N).")


def _add_commands(sub, table: dict[str, Command], dest: str) -> None:
    for name, command in table.items():
        parser = sub.add_parser(name, help=command.help, description=command.help)
        if command.subcommands:
            _add_commands(parser.add_subparsers(dest=f"{dest}_{name}", required=True,
                                                metavar="{" + ",".join(command.subcommands) + "}"),
                          command.subcommands, f"{dest}_{name}")
            continue
        if command.add_arguments is not None:
            command.add_arguments(parser)
        parser.set_defaults(handler=command.handler)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``poselab`` parser tree, built from the command tables."""
    parser = Parser(
        prog="poselab", epilog=EPILOG,
        description="Run the chapters, open the lab, train and record, make data.")
    _add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
                  COMMANDS, "command")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``poselab`` command line; return its exit code (see the module docstring).

    Never raises SystemExit: argparse's usage errors return 2 (after argparse printed them),
    ``--help`` returns 0."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the help (0) or the usage error (2)
        return USAGE if exc.code else OK
    args.argv = argv  # the command line as given (train --record writes it into the record)
    args.prog = "poselab"  # the name in a handler's own error lines
    return dispatch(args.handler, args, "poselab")
