"""Course assignments with otter-grader: build student versions and autograders, grade submissions.

Sources live in ``labs/assignments/<name>.ipynb`` in otter's format: a raw ``# ASSIGNMENT CONFIG``
cell, questions between raw ``# BEGIN QUESTION`` / ``# END QUESTION`` cells, each solution code cell
between raw ``# BEGIN SOLUTION`` / ``# END SOLUTION`` cells **and** with the solved lines between
``# BEGIN SOLUTION`` / ``# END SOLUTION`` comments inside the cell (otter replaces them by ``...``),
tests between raw ``# BEGIN TESTS`` / ``# END TESTS`` cells — one ``def test_...`` per cell, a first
line ``# HIDDEN`` for tests kept for grading. Hidden tests compare the student's function with
``poselab``'s own implementation on random inputs.

    poselab assign [--out build/assignments]     # student/ and autograder/ per assignment
    poselab grade SUBMISSION.ipynb [--assignment NAME] [--out DIR]

:func:`build` runs ``otter assign`` (which fails when a solution fails its own tests), then
:func:`check_student_version` verifies that no solution line and no hidden test reached the
student notebook. The generated folders are build artefacts, never committed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["assignments_dir", "list_assignments", "solution_lines", "hidden_test_names", "build",
           "check_student_version", "grade", "AssignmentError", "BuiltAssignment"]

_ROOT = Path(__file__).resolve().parent.parent


class AssignmentError(RuntimeError):
    """An assignment could not be built or graded (the message says which and why)."""


@dataclass(frozen=True)
class BuiltAssignment:
    name: str
    student: Path      # the student notebook
    autograder: Path   # the autograder zip


def assignments_dir() -> Path:
    """``labs/assignments`` of the checkout (env ``POSELAB_ASSIGNMENTS`` overrides)."""
    env = os.environ.get("POSELAB_ASSIGNMENTS")
    return Path(env) if env else _ROOT / "labs" / "assignments"


def list_assignments(folder: str | os.PathLike | None = None) -> list[Path]:
    folder = assignments_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise AssignmentError(f"assignments folder {str(folder)!r} is not a folder")
    return sorted(folder.glob("*.ipynb"))


def _cells(nb_path: Path) -> list[dict]:
    try:
        cells = json.loads(Path(nb_path).read_text(encoding="utf-8"))["cells"]
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise ValueError("'cells' is not a list of cells")
    except FileNotFoundError:
        raise AssignmentError(f"no notebook at {nb_path}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssignmentError(f"{nb_path} is not a readable notebook (.ipynb JSON with cells): "
                              f"{exc}") from None
    return cells


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def solution_lines(source_nb: Path) -> list[str]:
    """The non-trivial code lines between ``# BEGIN SOLUTION`` / ``# END SOLUTION`` comments of
    the source notebook (what must never reach a student)."""
    out = []
    for cell in _cells(source_nb):
        if cell.get("cell_type") != "code":
            continue
        inside = False
        for line in _src(cell).splitlines():
            if re.match(r"\s*# BEGIN SOLUTION", line):
                inside = True
            elif re.match(r"\s*# END SOLUTION", line):
                inside = False
            elif inside and len(line.strip()) > 8 and not line.strip().startswith("#"):
                out.append(line.strip())
    return out


def hidden_test_names(source_nb: Path) -> list[str]:
    """Names of the hidden test functions of the source notebook."""
    names = []
    for cell in _cells(source_nb):
        text = _src(cell)
        if cell.get("cell_type") == "code" and re.match(r"\s*#.*\bhidden\b", text.splitlines()[0] if text else "",
                                                    re.IGNORECASE):
            names += re.findall(r"def (test_\w+)", text)
    return names


def check_student_version(source_nb: Path, student_nb: Path) -> None:
    """Raise :class:`AssignmentError` if a solution line or a hidden test is anywhere in the
    student notebook — its cells or its metadata (otter keeps the public tests there)."""
    raw = Path(student_nb).read_text()
    text = "\n".join([_src(c) for c in _cells(student_nb)] + [json.dumps(json.loads(raw), ensure_ascii=False)])
    leaked = [line for line in solution_lines(source_nb) if line in text]
    hidden = [name for name in hidden_test_names(source_nb) if name in text]
    if leaked or hidden:
        raise AssignmentError(f"{student_nb} leaks solution lines {leaked[:3]} / hidden tests {hidden}")


def _otter(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "otter", *args]
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:  # pragma: no cover - python itself missing
        raise AssignmentError(f"could not start otter: {exc}") from None


def build(out: str | os.PathLike = "build/assignments", names: list[str] | None = None,
          run_tests: bool | Iterable[str] = True) -> list[BuiltAssignment]:
    """Build every assignment (or ``names``) into ``out/<name>/{student,autograder}``.

    ``otter assign`` executes the solution against all its tests and fails if one fails; then the
    student version is checked for leaked solutions and hidden tests. ``run_tests``: False skips
    otter's execution of the solutions (about half of a build's time; for callers that grade the
    solutions themselves), or the names of the assignments whose solutions it runs.
    """
    try:
        import otter  # noqa: F401  # deferred: otter-grader is optional; this checks for it
    except ImportError:
        raise AssignmentError("otter-grader is not installed: pip install otter-grader "
                              "(it comes with poselab's test extras: pip install -e .[test])") from None
    if isinstance(names, str):
        names = [names]
    if names is not None and not all(isinstance(n, str) for n in names):
        raise AssignmentError(f"names must be assignment names (strings), got {names!r}")
    out = Path(out)
    if any(p.exists() and not p.is_dir() for p in (out, *out.parents)):
        raise AssignmentError(f"--out {out} is (under) a file; pass a folder")
    if isinstance(run_tests, str):
        run_tests = [run_tests]
    if not isinstance(run_tests, bool):
        try:
            chosen = set(run_tests)
        except TypeError:          # not iterable, or unhashable names
            chosen = {None}
        if not all(isinstance(n, str) for n in chosen):
            raise AssignmentError(f"run_tests must be True, False or assignment names, got {run_tests!r}")
        run_tests = chosen
        unknown_runs = run_tests - {p.stem for p in list_assignments()}
        if unknown_runs:
            raise AssignmentError(f"run_tests names unknown assignment(s) {sorted(unknown_runs)}")
    sources = list_assignments()
    if names:
        wanted = set(names)
        unknown = wanted - {p.stem for p in sources}
        if unknown:
            raise AssignmentError(f"unknown assignment(s) {sorted(unknown)}; available: "
                                  f"{[p.stem for p in sources]}")
        sources = [p for p in sources if p.stem in wanted]
    if not sources:
        raise AssignmentError(f"no assignment notebooks in {assignments_dir()}")
    built = []
    for src in sources:
        dest = out / src.stem
        if dest.exists():
            marker = dest / ".poselab-assignment"
            if not marker.exists():
                raise AssignmentError(f"{dest} exists and was not made by poselab assign; choose "
                                      "another --out")
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        (dest / ".poselab-assignment").write_text(src.name)
        run = run_tests if isinstance(run_tests, bool) else src.stem in run_tests
        proc = _otter("assign", *(() if run else ("--no-run-tests",)), str(src.resolve()), str(dest.resolve()))
        if proc.returncode != 0:
            raise AssignmentError(f"otter assign failed for {src.name} (a solution that fails its "
                                  f"tests fails the build):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        student = dest / "student" / src.name
        zips = sorted((dest / "autograder").glob("*-autograder_*.zip"))
        if not student.is_file() or not zips:
            raise AssignmentError(f"otter assign made no student notebook / autograder zip for "
                                  f"{src.name} (is 'generate: true' in its ASSIGNMENT CONFIG?)")
        check_student_version(src, student)
        built.append(BuiltAssignment(src.stem, student, zips[-1]))
    return built


def grade(submission: str | os.PathLike, autograder_zip: str | os.PathLike,
          out: str | os.PathLike | None = None) -> dict:
    """Grade one submitted notebook with ``otter run``; returns ``{"score", "max_score",
    "tests": [...]}`` (hidden tests included)."""
    submission, autograder_zip = Path(submission), Path(autograder_zip)
    for p, what in ((submission, "submission"), (autograder_zip, "autograder zip")):
        if not p.is_file():
            raise AssignmentError(f"no {what} at {p}")
    if submission.suffix != ".ipynb":
        raise AssignmentError(f"submission {submission} must be a .ipynb notebook")
    _cells(submission)  # a notebook that is not JSON fails here with its name, not inside otter
    out = Path(out) if out else submission.parent / f"{submission.stem}-grading"
    if any(p.exists() and not p.is_dir() for p in (out, *out.parents)):
        raise AssignmentError(f"grading output {out} is (under) a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    proc = _otter("run", "-a", str(autograder_zip.resolve()), "-o", str(out.resolve()),
                  str(submission.resolve()))
    results = out / "results.json"
    if not results.is_file():
        raise AssignmentError(f"otter run produced no results for {submission}:\n"
                              f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    try:
        data = json.loads(results.read_text())
        scored = [t for t in data.get("tests", []) if isinstance(t, dict) and "score" in t]
    except (ValueError, AttributeError) as exc:
        raise AssignmentError(f"otter wrote an unreadable {results}: {exc}") from None
    return {"score": float(sum(t["score"] for t in scored)),
            "max_score": float(sum(t.get("max_score", 0) for t in scored)), "tests": data.get("tests", [])}
