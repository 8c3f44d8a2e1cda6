"""Peak memory of each chapter's run over its whole process tree, against Binder's budget.

Each chapter runs as ``poselab run NN [--fast] --out TMP`` (papermill → a kernel → the kernel's
training workers); ``_process_memory.TreeSampler`` sums RSS and PSS over every process of that tree
at each sample and keeps the largest sum (see that module for what each counts). The verdict is
on PSS (pages shared between the processes counted once, as a container's limit charges them),
RSS shown beside; the budget is the 1.6 GB a chapter may use of Binder's 2 GB (issue 31). Memory
does not depend on machine load; the wall time shown does.

By default the runs use an **empty** run cache (a fresh temporary ``POSELAB_CACHE_DIR``), so every
recipe trains as on a student's first open; ``--cache`` keeps the environment's cache (re-opening a
chapter). ``--quick`` lists the chapters and runs none.

    python benchmarks/chapter_memory.py [--quick] [--only 00 04] [--default] [--interval 0.2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _process_memory import MIB, run_sampled  # noqa: E402

BUDGET_BYTES = 1.6e9                 # 1.6 GB of Binder's 2 GB (issue 31)
BUDGET_MIB = BUDGET_BYTES / MIB      # ≈ 1526 MiB


def chapters() -> list[str]:
    from poselab.labs import list_chapters
    return [p.stem for p in list_chapters()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="list the chapters, run none")
    ap.add_argument("--only", nargs="+", default=None, help="chapter numbers or stems")
    ap.add_argument("--default", action="store_true", help="the student's default preset (minutes a chapter)"
                                                           " instead of --fast")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    ap.add_argument("--cache", action="store_true", help="keep POSELAB_CACHE_DIR (cached runs load, "
                                                         "not train) instead of an empty cache")
    args = ap.parse_args(argv)
    names = chapters()
    if args.only:
        names = [n for n in names if any(n == o or n.startswith(o.zfill(2) + "_") for o in args.only)]
    mode = "default" if args.default else "fast"
    print(f"Peak memory over each chapter's process tree (poselab run, kernel, workers), {mode} preset, "
          f"{'the environment cache' if args.cache else 'an empty run cache'}, sampled every "
          f"{args.interval:g} s; budget {BUDGET_BYTES / 1e9:g} GB = {BUDGET_MIB:.0f} MiB (verdict on PSS). "
          "Wall time depends on machine load.")
    print()
    if args.quick:
        print(f"--quick: chapter runs skipped; chapters found: {', '.join(names)}")
        return
    print("| chapter | preset | status | peak PSS MiB | peak RSS MiB | processes | samples | wall s | budget MiB | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cli = [sys.executable, "-m", "poselab.cli"]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.cache:
            env["POSELAB_CACHE_DIR"] = str(Path(tmp) / "cache")
        for name in names:
            command = [*cli, "run", name, *([] if args.default else ["--fast"]), "--out", str(Path(tmp) / name)]
            w0 = time.perf_counter()
            code, peak, tail = run_sampled(command, interval=args.interval, env=env)
            wall = time.perf_counter() - w0
            if code != 0:
                failed.append((name, tail))
            judged = peak.pss if peak.pss is not None else peak.rss
            verdict = "within" if judged <= BUDGET_BYTES else "OVER"
            pss = "—" if peak.pss_mib is None else f"{peak.pss_mib:.0f}" + (
                f" ({peak.pss_missed} of {peak.samples} samples unreadable)" if peak.pss_missed else "")
            print(f"| {name} | {mode} | {'ok' if code == 0 else 'FAILED'} | {pss} | {peak.rss_mib:.0f} | "
                  f"{peak.processes} | {peak.samples} | {wall:.0f} | {BUDGET_MIB:.0f} | {verdict} |", flush=True)
    for name, tail in failed:
        print(f"\n{name} failed: " + " / ".join(tail.splitlines()))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
