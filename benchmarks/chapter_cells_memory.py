"""Where a chapter's kernel memory goes: each code cell's peak RSS (this process) and the peak over
its process tree (RSS and PSS, with any training workers), running the chapter's code cells in
this process at the ``default`` preset's geometry with every training cut to ``--steps`` steps.

``benchmarks/chapter_memory.py --default`` measures the real thing (a whole default run, minutes
of training per recipe); this one finds *which cell* holds the peak in a few minutes: the
analyses run at the sizes a student's run uses (the same evaluation set, 64×48 maps), only the
trainings are short (their memory does not grow with the step count beyond a few steps; the
histories they keep are small). Use an empty ``POSELAB_CACHE_DIR`` to train as on a first open.
After each cell the freed heap is given back (:func:`poselab.viz.kernel.release_memory`), as a
chapter's IPython kernel does after every cell (the hook :func:`poselab.claims.start` registers).
Peaks are sampled (every 2 ms in the kernel, 50 ms over the tree): lower bounds.

    POSELAB_CACHE_DIR=$(mktemp -d) OMP_NUM_THREADS=1 python benchmarks/chapter_cells_memory.py 04 [--steps 12]
    python benchmarks/chapter_cells_memory.py --quick      # list the chapters, run none
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _process_memory import TreeSampler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class _Peak:
    """This process's largest RSS while alive (a sampling thread)."""

    def __init__(self):
        self.peak, self._run = _rss_mib(), True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while self._run:
            self.peak = max(self.peak, _rss_mib())
            time.sleep(0.002)

    def stop(self) -> float:
        self._run = False
        self._thread.join()
        return max(self.peak, _rss_mib())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapter", nargs="?", default="04", help="chapter number or stem")
    ap.add_argument("--steps", type=int, default=12, help="training steps of every run (default preset geometry)")
    ap.add_argument("--quick", action="store_true", help="list the chapters, run none")
    args = ap.parse_args(argv)
    labs = sorted((ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))
    if args.quick:
        print("--quick: no chapter run; chapters: " + ", ".join(p.stem for p in labs))
        return 0
    path = next(p for p in labs if p.stem == args.chapter or p.stem.startswith(args.chapter.zfill(2) + "_"))
    from poselab.experiments import presets
    from poselab.viz.kernel import release_memory
    presets.PRESETS["default"] = presets.PRESETS["default"].replace(max_steps=int(args.steps))
    nb = json.loads(path.read_text())
    print(f"{path.stem}: code cells at the default preset's geometry, trainings cut to {args.steps} steps; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"POSELAB_CACHE_DIR={os.environ.get('POSELAB_CACHE_DIR', 'unset')}\n")
    print("| cell | first line | kernel RSS at start (MiB) | kernel peak RSS | tree peak RSS | tree peak PSS | processes | CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    namespace: dict = {}
    overall = _Peak()
    tree_peak = 0.0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src += "\nout_dir = ''\n"
        start, peak, c0 = _rss_mib(), _Peak(), time.process_time()
        with TreeSampler(os.getpid(), 0.05) as tree, contextlib.redirect_stdout(io.StringIO()):
            exec(compile(src, f"{path.stem} cell {i}", "exec"), namespace)
        release_memory()            # the kernel's post_run_cell hook
        kernel = peak.stop()
        tree_peak = max(tree_peak, tree.peak.pss_mib or 0.0)
        first = src.strip().splitlines()[0][:60].replace("|", "/")
        print(f"| {i} | `{first}` | {start:.0f} | {kernel:.0f} | {tree.peak.rss_mib:.0f} | "
              f"{tree.peak.pss_mib or float('nan'):.0f} | {tree.peak.processes} | {time.process_time() - c0:.1f} |",
              flush=True)
    print(f"\nkernel peak RSS {overall.stop():.0f} MiB; tree peak PSS {tree_peak:.0f} MiB "
          "(Binder budget 1526 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
