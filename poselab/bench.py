"""``poselab bench``: run every ``benchmarks/*.py`` script and write ``benchmarks/results.md``.

Each script runs in its own process (``python <script> [options]``) with its stdout captured;
``--quick`` passes each script its own small-size options (``QUICK_ARGS``: ``--quick`` for the
scripts that take it, smaller repeat counts for the others). The results file starts with the
machine (platform, CPU count, load average), torch version and threads, date and git commit, then
each script's printed table and its wall and CPU time. A script that exits non-zero (or runs past
``timeout``) is reported as FAILED with the end of its stderr, and :func:`run_suite` returns 1.

    poselab bench [--quick] [--only NAME ...] [--out benchmarks/results.md]
"""
from __future__ import annotations

import datetime as _dt
import math
import numbers
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from poselab.paths import writable_folder

#: Small-size options per script for ``--quick`` (scripts not listed get ``--quick`` if their
#: source defines that flag, else run as they are).
QUICK_ARGS: dict[str, list[str]] = {
    "emd": ["--reps", "2", "--no-train"],
    "ranking": ["--repeats", "3", "--loop-repeats", "1", "--threads", "1", "--step-sizes"],
    "train_step": ["--repeats", "5", "--precision", "both"],
    "sar_step": ["--repeats", "4"],
    "synth_speed": ["--images", "20", "--repeats", "1"],
    "train_throughput": ["--steps", "4", "--warmup", "1"],
    "time_to_ap": ["--only", "default"],
}
#: Scripts skipped by ``--quick`` and why (they train to an AP target: many minutes).
QUICK_SKIP: dict[str, str] = {
    "time_to_ap": "trains to AP 0.5 (several minutes of CPU); run without --quick",
}


@dataclass
class ScriptResult:
    name: str
    command: list[str]
    returncode: int | None  # None: skipped
    wall_s: float
    cpu_s: float
    stdout: str
    stderr: str
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode in (0, None)


def benchmarks_dir() -> Path:
    """``benchmarks/`` of the checkout (next to the ``poselab`` package), else ./benchmarks."""
    checkout = Path(__file__).resolve().parent.parent / "benchmarks"
    return checkout if checkout.is_dir() else Path.cwd() / "benchmarks"


def list_scripts(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.py") if not p.name.startswith("_"))


def script_args(path: Path, quick: bool) -> list[str]:
    if not quick:
        return []
    if path.stem in QUICK_ARGS:
        return list(QUICK_ARGS[path.stem])
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return ["--quick"] if '"--quick"' in source or "'--quick'" in source else []


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _check_timeout(timeout) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError(f"timeout must be None or a finite number of seconds > 0, got {timeout!r}")


def run_script(path: Path, quick: bool, timeout: float | None = None) -> ScriptResult:
    _check_timeout(timeout)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no benchmark script at {path}")
    if quick and path.stem in QUICK_SKIP and path.parent.resolve() == benchmarks_dir().resolve():
        return ScriptResult(path.stem, [], None, 0.0, 0.0, "", "", f"skipped: {QUICK_SKIP[path.stem]}")
    cmd = [sys.executable, str(path), *script_args(path, quick)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cpu0, t0 = _children_cpu(), time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        code, out, err, note = proc.returncode, proc.stdout, proc.stderr, ""
    except subprocess.TimeoutExpired as exc:
        code, note = -1, f"timed out after {timeout:g} s"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    return ScriptResult(path.stem, cmd, code, time.perf_counter() - t0, _children_cpu() - cpu0,
                        out, err, note)


def _git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + (" (uncommitted changes in the tree)" if dirty else "")


def machine_header(quick: bool) -> str:
    try:
        import torch  # deferred: `poselab --help` imports this module
        torch_line = f"torch {torch.__version__}, {torch.get_num_threads()} threads by default"
    except ImportError:
        torch_line = "torch not installed"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    root = Path(__file__).resolve().parent.parent
    return "\n".join([
        "# Benchmark results (`poselab bench" + (" --quick" if quick else "") + "`)",
        "",
        f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- commit: {_git_commit(root)}",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load} at the start",
        f"- python {platform.python_version()}, {torch_line}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "- timings inside the scripts are CPU-time (process_time) medians and ratios measured side "
        "by side in one process; wall times below include start-up and machine load.",
        "",
    ])


def format_results(results: list[ScriptResult], quick: bool) -> str:
    lines = [machine_header(quick), "| script | status | wall s | CPU s |", "| --- | --- | --- | --- |"]
    for r in results:
        status = "skipped" if r.returncode is None else ("ok" if r.ok else "FAILED")
        lines.append(f"| {r.name} | {status} | {r.wall_s:.1f} | {r.cpu_s:.1f} |")
    lines.append("")
    for r in results:
        lines.append(f"## {r.name}")
        lines.append("")
        if r.returncode is None:
            lines += [r.note, ""]
            continue
        shown = " ".join(["python", f"benchmarks/{Path(r.command[1]).name}", *r.command[2:]])
        lines.append(f"`{shown}`"
                     f" — wall {r.wall_s:.1f} s, CPU {r.cpu_s:.1f} s"
                     + ("" if r.ok else f" — **FAILED** (exit {r.returncode}{', ' + r.note if r.note else ''})"))
        lines.append("")
        if r.stdout.strip():
            lines += [r.stdout.rstrip(), ""]
        if not r.ok:
            tail = "\n".join(r.stderr.strip().splitlines()[-15:])
            lines += ["```", tail or "(no stderr)", "```", ""]
    return "\n".join(lines) + "\n"


def run_suite(folder: Path | None = None, out: Path | None = None, quick: bool = False,
              only: list[str] | None = None, timeout: float | None = None,
              echo: bool = True) -> int:
    """Run the scripts of ``folder``, write ``out`` (default ``<folder>/results.md``); 0 iff all ran."""
    folder = benchmarks_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder={str(folder)!r} is not a directory; pass the benchmarks folder")
    _check_timeout(timeout)
    if isinstance(only, str):
        only = [only]
    if only is not None and (not only or not all(isinstance(n, str) for n in only)):
        raise ValueError(f"only must be None (every script) or script names, got {only!r}")
    scripts = list_scripts(folder)
    if not scripts:
        raise ValueError(f"no benchmark scripts (*.py) in {folder}")
    if only:
        unknown = sorted(set(only) - {p.stem for p in scripts})
        if unknown:
            raise ValueError(f"only={unknown} not in {folder}; choose from {[p.stem for p in scripts]}")
        scripts = [p for p in scripts if p.stem in only]
    out = folder / "results.md" if out is None else Path(out)
    if out.is_dir() or any(p.exists() and not p.is_dir() for p in out.parents):
        raise ValueError(f"out={str(out)!r} must be a results file (e.g. benchmarks/results.md), "
                         "not a folder or a path under a file")
    writable_folder(out.parent, "the results file's folder")  # before the scripts run
    results = []
    for path in scripts:
        if echo:
            print(f"bench: {path.name} ...", flush=True)
        r = run_script(path, quick, timeout)
        results.append(r)
        if echo:
            status = "skipped" if r.returncode is None else ("ok" if r.ok else "FAILED")
            print(f"bench: {path.name} {status} ({r.wall_s:.1f} s wall, {r.cpu_s:.1f} s CPU)", flush=True)
        out.write_text(format_results(results, quick), encoding="utf-8")  # partial results survive
    out.write_text(format_results(results, quick), encoding="utf-8")
    if echo:
        print(f"bench: wrote {out}")
    return 0 if all(r.ok for r in results) else 1
