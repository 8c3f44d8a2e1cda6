"""Wall and CPU time of each chapter in fast mode (``poselab run NN --fast``), against the budgets.

Budgets (issue 17, an idle 2-core machine): every chapter's fast mode ≤ 60 s, all together ≤ 6 min.
Each chapter runs in its own ``poselab run`` process (papermill + kernel) into a temp folder; the
CPU time is that of the child processes (user + system), which machine load inflates little, so
the verdict uses CPU time on a loaded machine and the wall time is shown beside it. The default
mode (up to 10 min a chapter on a CPU) and the README test command (≤ 15 min) are not run here:
they would take too long on this shared machine — run ``poselab run NN`` by hand for those.
``--quick`` skips the runs (a chapter's fast mode alone is up to a minute) and lists the chapters.

    python benchmarks/chapters.py [--quick] [--only 00 05]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAST_BUDGET_S = 60.0
ALL_BUDGET_S = 360.0


def chapters() -> list[str]:
    from poselab.cli import list_chapters
    return [p.stem for p in list_chapters()]


def children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="list the chapters, run none")
    ap.add_argument("--only", nargs="+", default=None, help="chapter numbers or stems")
    args = ap.parse_args(argv)
    names = chapters()
    if args.only:
        names = [n for n in names if any(n == o or n.startswith(o.zfill(2) + "_") for o in args.only)]
    print("Default mode and the README test command are not timed here (too long on this shared "
          "machine); fast mode only. Verdict on CPU time (machine loaded), wall shown beside it.")
    print()
    if args.quick:
        print(f"--quick: chapter runs skipped; chapters found: {', '.join(names)}")
        return
    print("| chapter | status | wall s | CPU s | budget (fast) | verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cli = [sys.executable, "-m", "poselab.cli"]
    total_cpu = total_wall = 0.0
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            c0, w0 = children_cpu(), time.perf_counter()
            proc = subprocess.run([*cli, "run", name, "--fast", "--out", str(Path(tmp) / name)],
                                  capture_output=True, text=True, env=env)
            cpu, wall = children_cpu() - c0, time.perf_counter() - w0
            total_cpu += cpu
            total_wall += wall
            ok = proc.returncode == 0
            if not ok:
                failed.append((name, proc.stderr.strip().splitlines()[-3:]))
            verdict = "PASS" if cpu <= FAST_BUDGET_S else "MISS"
            print(f"| {name} | {'ok' if ok else 'FAILED'} | {wall:.1f} | {cpu:.1f} | ≤ {FAST_BUDGET_S:g} s | {verdict} |",
                  flush=True)
    verdict = "PASS" if total_cpu <= ALL_BUDGET_S else "MISS"
    print(f"| all | {'ok' if not failed else 'FAILED'} | {total_wall:.1f} | {total_cpu:.1f} | ≤ {ALL_BUDGET_S:g} s | {verdict} |")
    if failed:
        for name, tail in failed:
            print(f"\n{name} failed: " + " / ".join(tail))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
