"""``poselab assign`` and ``poselab grade``: student versions of the assignments, and grading of a
submitted notebook (sandboxed by default, or with otter and the autograder zip)."""
from __future__ import annotations

import argparse
from pathlib import Path

from poselab import assignments

from ._common import OK, Command, CliError, seconds

# poselab.grading loads numpy (about 0.3 s): imported in the grading handler ("deferred").

__all__ = ["COMMANDS"]

BUILT = "build/assignments"


def _add_assign(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="assignments (default: all in labs/assignments)")
    p.add_argument("--out", default=BUILT, help=f"output folder (default {BUILT})")


def _assign(args: argparse.Namespace) -> int:
    try:
        for built in assignments.build(args.out, args.names or None):
            print(f"{built.name}: student {built.student}  autograder {built.autograder}")
    except assignments.AssignmentError as exc:
        raise CliError(str(exc)) from None
    return OK


def _add_grade(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="the submitted .ipynb")
    p.add_argument("--assignment", default=None, help="assignment name (default: the file's stem)")
    p.add_argument("--timeout", type=seconds, default=120,
                   help="seconds for the whole submission (default 120)")
    p.add_argument("--otter", action="store_true",
                   help="grade with otter run and the autograder zip instead (no sandbox)")
    p.add_argument("--built", default=BUILT, help="with --otter: where poselab assign wrote them")
    p.add_argument("--out", default=None, help="with --otter: grading output folder")


def _grade(args: argparse.Namespace) -> int:
    name = args.assignment or Path(args.submission).stem
    if not args.otter:
        from poselab import grading  # deferred: numpy
        try:
            result = grading.grade_submission(args.submission, name, timeout=args.timeout)
        except grading.GradingError as exc:
            raise CliError(str(exc)) from None
        print(f"{args.submission}:")
        print("\n".join(grading.feedback_lines(result)))
        return OK
    zips = sorted((Path(args.built) / name / "autograder").glob("*-autograder_*.zip"))
    if not zips:
        raise CliError(f"no autograder for {name!r} under {args.built}; run poselab assign "
                       f"first (or pass --assignment NAME)")
    try:
        result = assignments.grade(args.submission, zips[-1], args.out)
    except assignments.AssignmentError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.submission}: {result['score']:g} / {result['max_score']:g}")
    return OK


COMMANDS = {
    "assign": Command("build student versions and autograders (otter assign)", _add_assign, _assign),
    "grade": Command("grade a submitted assignment notebook in a sandboxed process, with "
                     "per-test feedback", _add_grade, _grade),
}
