"""Grading a submitted assignment in a sandboxed process, with per-test feedback.

    poselab grade SUBMISSION.ipynb [--assignment NAME] [--timeout 120]

The student's code runs in a **separate process** that never sees the tests: the grader (this
process) runs every test, public and hidden, and each test calls the student's function through a
proxy that sends the arguments to the student process and reads back the result. So:

- the hidden tests and the reference values stay in the grader: a submission cannot read them,
  nor monkeypatch the reference (it lives in another process, computed there);
- ``poselab`` cannot be imported by the submission (the assignments ask for numpy): a submission
  that calls the library's own implementation fails with a message saying so;
- results come back as plain data (numbers, strings, numpy arrays, lists, tuples, dicts) decoded
  from JSON, never unpickled: a returned object cannot run code in the grader;
- the student process starts in an empty scratch folder (its working directory and ``HOME``),
  with a minimal environment, limits on CPU seconds, address space and file size, and the whole
  submission has a wall-clock limit: a submission that hangs gets 0 for the tests it did not
  finish, with a message, and the grade still comes back.

What it does **not** protect against: the student process runs as the same user without an
operating-system sandbox, so it can read and write files that user can (outside its scratch
folder too) and open network connections. Grade untrusted submissions inside a container or a
throw-away account.

:func:`grade_submission` returns ``{score, max_score, tests: [{name, hidden, points, score,
message}], timed_out}``; public tests carry their failure message, hidden tests only their name
and points.
"""
from __future__ import annotations

import json
import linecache
import os
import pickle
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .assignments import AssignmentError, _src, assignments_dir, list_assignments
from .assignments import _cells as read_cells

__all__ = ["GradingError", "AssignmentTest", "assignment_tests", "submission_code", "grade_submission",
           "feedback_lines"]

DEFAULT_TIMEOUT_S = 120.0
MEMORY_LIMIT_MB = 4096
FILE_SIZE_LIMIT_MB = 16


class GradingError(RuntimeError):
    """A submission or assignment could not be graded (the message says why)."""


@dataclass(frozen=True)
class AssignmentTest:
    name: str
    code: str
    hidden: bool
    points: float
    function: str


def _cells(path: Path) -> list[dict]:
    """The notebook's cells (:func:`poselab.assignments` reads them), errors as GradingError."""
    try:
        return read_cells(path)
    except AssignmentError as exc:
        raise GradingError(str(exc)) from None


def assignment_tests(source_nb: str | os.PathLike) -> list[AssignmentTest]:
    """The tests of an assignment source (otter format): each ``def test_...(FUNCTION, np)`` cell
    between ``# BEGIN TESTS`` / ``# END TESTS``, hidden when its first line is ``# HIDDEN``; a
    question's points are shared equally by its tests."""
    questions: list[tuple[float, list[tuple[str, str, bool, str]]]] = []
    points, in_tests = None, False
    for cell in _cells(Path(source_nb)):
        text = _src(cell)
        if cell.get("cell_type") == "raw":
            if text.startswith("# BEGIN QUESTION"):
                m = re.search(r"points:\s*([0-9.]+)", text)
                points = float(m.group(1)) if m else 1.0
                questions.append((points, []))
            in_tests = text.startswith("# BEGIN TESTS") or (in_tests and not text.startswith("# END TESTS"))
            continue
        if in_tests and cell.get("cell_type") == "code" and questions:
            m = re.search(r"def (test_\w+)\(\s*(\w+)", text)
            if m:
                questions[-1][1].append((m.group(1), text, text.lstrip().startswith("# HIDDEN"), m.group(2)))
    out = []
    for pts, tests in questions:
        for name, code, hidden, fn in tests:
            out.append(AssignmentTest(name, code, hidden, pts / len(tests), fn))
    if not out:
        raise GradingError(f"{source_nb} holds no tests (cells with def test_... between # BEGIN TESTS "
                           "and # END TESTS)")
    return out


_OTTER_LINE = re.compile(r"(import otter\b|grader\s*=\s*otter\.|grader\.\w+\()")


def submission_code(submission: str | os.PathLike) -> str:
    """The submission's code cells, in order (IPython magics, shell lines and otter's
    ``grader = otter.Notebook()`` / ``grader.check(...)`` lines dropped)."""
    lines = []
    for cell in _cells(Path(submission)):
        if cell.get("cell_type") != "code":
            continue
        for line in _src(cell).splitlines():
            stripped = line.lstrip()
            if stripped.startswith(("%", "!")) or _OTTER_LINE.match(stripped):
                continue  # magics, shell lines and otter's own check cells are not the answer
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the student process
_CHILD = r'''
import json, os, pickle, resource, struct, sys
limits = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
proto_in = os.fdopen(os.dup(0), "rb")
proto_out = os.fdopen(os.dup(1), "wb")
devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(devnull, 0)
os.dup2(2, 1)                      # the student's prints go to stderr, never into the protocol
for name in ("poselab",):          # the assignments ask for numpy: the library is not importable
    sys.modules[name] = None
import numpy as np

def send(obj):
    data = json.dumps(obj).encode()
    proto_out.write(struct.pack(">I", len(data)) + data)
    proto_out.flush()

def encode(value, depth=0):
    if depth > 20:
        raise TypeError("result nested too deeply")
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"array of dtype {value.dtype}")
        return {"__array__": value.astype(float).ravel().tolist(), "shape": list(value.shape),
                "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"__int__": str(value)}
    if isinstance(value, float):
        return {"__float__": repr(value)}
    if isinstance(value, (list, tuple)):
        return {"__seq__": [encode(v, depth + 1) for v in value], "tuple": isinstance(value, tuple)}
    if isinstance(value, dict):
        return {"__dict__": [[str(k), encode(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(f"a {type(value).__name__} cannot be graded (return numbers or numpy arrays)")

namespace = {"__name__": "__submission__"}
size = struct.unpack(">I", proto_in.read(4))[0]
source = proto_in.read(size).decode()
try:
    exec(compile(source, "submission", "exec"), namespace)
    send({"ok": True})
except BaseException as exc:
    send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    sys.exit(0)
while True:
    head = proto_in.read(4)
    if len(head) < 4:
        break
    name, args, kwargs = pickle.loads(proto_in.read(struct.unpack(">I", head)[0]))
    fn = namespace.get(name)
    if not callable(fn):
        send({"ok": False, "error": f"the submission defines no function {name}"})
        continue
    try:
        send({"ok": True, "value": encode(fn(*args, **kwargs))})
    except BaseException as exc:
        send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
'''


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            dtype = value.get("dtype", "float64")
            arr = np.asarray(value["__array__"], dtype=np.float64).reshape(value["shape"])
            return arr.astype(dtype) if np.dtype(dtype).kind in "biuf" else arr
        if "__int__" in value:
            return int(value["__int__"])
        if "__float__" in value:
            return float(value["__float__"])
        if "__seq__" in value:
            items = [_decode(v) for v in value["__seq__"]]
            return tuple(items) if value.get("tuple") else items
        if "__dict__" in value:
            return {k: _decode(v) for k, v in value["__dict__"]}
    return value


class _TimedOut(Exception):
    pass


class _StudentProcess:
    def __init__(self, code: str, scratch: Path, deadline: float, cpu_s: int):
        limits = {"cpu": int(cpu_s), "memory": MEMORY_LIMIT_MB * 2 ** 20, "fsize": FILE_SIZE_LIMIT_MB * 2 ** 20}
        env = {"HOME": str(scratch), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.deadline = deadline
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", _CHILD, json.dumps(limits)], cwd=scratch,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self._send(code.encode())
        reply = self._read()
        if not reply.get("ok"):
            raise GradingError(f"the submission does not run: {reply.get('error')}")

    def _send(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise GradingError("the submission's process ended (it exceeded a limit or exited)") from None

    def _read_exact(self, n: int) -> bytes:
        out = b""
        fd = self.proc.stdout.fileno()
        while len(out) < n:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _TimedOut()
            chunk = os.read(fd, n - len(out))
            if not chunk:
                raise GradingError("the submission's process ended (it exceeded a limit or exited)")
            out += chunk
        return out

    def _read(self) -> dict:
        size = struct.unpack(">I", self._read_exact(4))[0]
        if size > 256 * 2 ** 20:
            raise GradingError("the submission returned more than 256 MB")
        return json.loads(self._read_exact(size))

    def call(self, name: str, args, kwargs):
        self._send(pickle.dumps((name, args, kwargs)))
        reply = self._read()
        if not reply.get("ok"):
            raise AssertionError(f"your {name} raised {reply.get('error')}")
        return _decode(reply.get("value"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _failure_message(exc: BaseException, test: AssignmentTest) -> str:
    if isinstance(exc, AssertionError):
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == f"<test {test.name}>"]
        where = f"line: {frames[-1].line}" if frames and frames[-1].line else ""
        detail = str(exc)
        return "; ".join(p for p in (f"assertion failed{': ' + detail if detail else ''}", where) if p)
    return f"{type(exc).__name__}: {exc}"


def grade_submission(submission: str | os.PathLike, assignment: str | os.PathLike, *,
                     timeout: float = DEFAULT_TIMEOUT_S) -> dict:
    """Grade ``submission`` (a notebook) against ``assignment`` (a source notebook path, or an
    assignment name in ``labs/assignments``) in a sandboxed student process (module docstring).

    ``timeout``: wall-clock seconds for the whole submission (its CPU time is limited alike);
    tests not finished by then score 0 with a "timed out" message.
    """
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout <= 3600):
        raise GradingError(f"timeout must be a number of seconds in (0, 3600], got {timeout!r}")
    submission = Path(submission)
    if not submission.is_file() or submission.suffix != ".ipynb":
        raise GradingError(f"submission {submission} must be an existing .ipynb notebook")
    source = Path(assignment)
    if not source.suffix == ".ipynb":
        source = assignments_dir() / f"{assignment}.ipynb"
    if not source.is_file():
        try:
            names = ", ".join(p.stem for p in list_assignments()) or "none"
        except AssignmentError:
            names = "none (no assignments folder)"
        raise GradingError(f"no assignment source at {source}; the assignments in {assignments_dir()}: "
                           f"{names} (pass --assignment NAME when the submission's file name differs)")
    tests = assignment_tests(source)
    code = submission_code(submission)
    scratch = Path(tempfile.mkdtemp(prefix="poselab-grade-"))
    deadline = time.monotonic() + float(timeout)
    results, timed_out, student = [], False, None
    try:
        try:
            student = _StudentProcess(code, scratch, deadline, cpu_s=int(timeout) + 1)
            setup_error = None
        except _TimedOut:
            setup_error, timed_out = f"timed out after {timeout:g} s while running the submission", True
        except GradingError as exc:
            setup_error = str(exc)
        for test in tests:
            entry = {"name": test.name, "hidden": test.hidden, "points": test.points, "score": 0.0,
                     "message": ""}
            if setup_error or timed_out:
                entry["message"] = setup_error or f"timed out after {timeout:g} s"
                results.append(entry)
                continue
            namespace: dict[str, Any] = {}
            fn_name = test.function

            def proxy(*args, _name=fn_name, **kwargs):
                return student.call(_name, args, kwargs)
            filename = f"<test {test.name}>"
            linecache.cache[filename] = (len(test.code), None, test.code.splitlines(True), filename)
            try:
                exec(compile(test.code, filename, "exec"), namespace)
                namespace[test.name](proxy, np)
                entry["score"], entry["message"] = test.points, "passed"
            except _TimedOut:
                timed_out = True
                entry["message"] = f"timed out after {timeout:g} s"
            except GradingError as exc:
                setup_error = str(exc)
                entry["message"] = setup_error
            except Exception as exc:  # a failed assertion, or an error of the student's function
                entry["message"] = _failure_message(exc, test)
            results.append(entry)
    finally:
        if student is not None:
            student.close()
        shutil.rmtree(scratch, ignore_errors=True)
    for entry in results:
        if entry["hidden"] and entry["score"] < entry["points"] and "timed out" not in entry["message"]:
            entry["message"] = "failed (hidden test: its inputs and message are not shown)"
    return {"score": float(sum(e["score"] for e in results)),
            "max_score": float(sum(e["points"] for e in results)), "tests": results,
            "timed_out": timed_out}


def feedback_lines(result: dict) -> list[str]:
    """One line per test (name, hidden or public, score / points, message), then the total."""
    lines = []
    for t in result["tests"]:
        kind = "hidden" if t["hidden"] else "public"
        lines.append(f"  {t['name']} ({kind}): {t['score']:g} / {t['points']:g} — {t['message']}")
    lines.append(f"total: {result['score']:g} / {result['max_score']:g}"
                 + (" (timed out)" if result.get("timed_out") else ""))
    return lines
